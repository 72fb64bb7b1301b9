"""Quantization-aware training: the straight-through estimator, EMA ranges, delayed start, export."""

import torch
from torch import nn

from tcompress.compress.linear_quant import QuantSpec, fake_quantize, fake_quantize_ste, qparams
from tcompress.compress.qat import FakeQuantModule, QATConfig, export_quantized, quantization_aware
from tcompress.compress.quantized import QuantizedModule
from tcompress.config import ModelConfig
from tcompress.model import Vocab, make_model


def test_ste_passes_gradient_inside_the_range_and_blocks_it_outside():
    spec = QuantSpec(4, "asym")
    scale, zero_point = qparams(torch.tensor(-1.0), torch.tensor(2.0), spec)
    x = torch.tensor([-3.0, -1.0, -0.4, 0.0, 0.7, 1.99, 2.0, 2.3, 5.0], requires_grad=True)
    y = fake_quantize_ste(x, scale, zero_point, spec)
    assert torch.equal(y, fake_quantize(x.detach(), scale, zero_point, spec))
    weights = torch.arange(1.0, 10.0)
    (y * weights).sum().backward()
    # Inside: the code before clamping lies in [qmin, qmax]; the gradient is the upstream one, unchanged.
    codes = torch.round(x.detach() / scale) + zero_point
    inside = (codes >= spec.qmin) & (codes <= spec.qmax)
    assert inside.tolist() == [False, True, True, True, True, True, True, False, False]
    assert torch.equal(x.grad, torch.where(inside, weights, torch.zeros(9)))


def test_ema_ranges_track_training_batches_only():
    torch.manual_seed(0)
    m = FakeQuantModule(nn.Linear(4, 3), QuantSpec(8, "sym"), sites=("input", "output"), momentum=0.9)
    a, b = torch.randn(5, 4), 3 * torch.randn(5, 4)
    m.train()
    m(a)
    assert m.input_lo.item() == a.min().item() and m.input_hi.item() == a.max().item()  # first batch: outright
    m(b)
    assert torch.isclose(m.input_lo, torch.tensor(0.9 * a.min().item() + 0.1 * b.min().item()))
    assert torch.isclose(m.input_hi, torch.tensor(0.9 * a.max().item() + 0.1 * b.max().item()))
    before = m.input_hi.clone()
    m.eval()
    m(10 * b)
    assert torch.equal(m.input_hi, before)  # evaluation never moves the ranges


def test_delayed_start_is_float_then_quantized():
    torch.manual_seed(0)
    linear = nn.Linear(4, 3)
    reference = nn.Linear(4, 3)
    reference.load_state_dict(linear.state_dict())
    m = FakeQuantModule(linear, QuantSpec(3, "sym"), sites=("input", "output"), momentum=0.9)
    x = torch.randn(6, 4)
    m.enabled = False
    assert torch.equal(m(x), reference(x))
    m.enabled = True
    assert not torch.allclose(m(x), reference(x), atol=1e-3)


def _tiny():
    torch.manual_seed(0)
    return make_model(ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64), Vocab(50, 50))


def test_shadow_weights_get_gradients_and_export_matches_the_trained_forward():
    model = _tiny()
    wiring = quantization_aware(model, QATConfig(4, "asym"), "full")
    src, tgt = torch.randint(4, 50, (4, 9)), torch.randint(4, 50, (4, 8))
    model.train()
    model(src, tgt).logsumexp(-1).sum().backward()
    params = list(model.parameters())
    assert params and all(p.grad is not None for p in params)  # the float shadow weights train
    model.eval()
    with torch.no_grad():
        trained = model(src, tgt)
        assert export_quantized(model) == len([m for m in model.modules() if isinstance(m, QuantizedModule)])
        assert not any(isinstance(m, FakeQuantModule) for m in model.modules())
        assert torch.equal(model(src, tgt), trained)  # the artifact computes what QAT evaluated
    assert wiring["finalize"] is export_quantized


def test_ste_per_channel_forward_equals_fake_quantize():
    spec = QuantSpec(3, "sym", per_channel=True)
    w = torch.randn(5, 7, generator=torch.Generator().manual_seed(2))
    lo, hi = w.amin(dim=1), w.amax(dim=1)
    scale, zero_point = qparams(lo, hi, spec)
    assert torch.equal(fake_quantize_ste(w, scale, zero_point, spec), fake_quantize(w, scale, zero_point, spec))


def test_activation_choice_sets_the_quantized_sites():
    for choice, sites in (("none", ()), ("inputs", ("input",)), ("both", ("input", "output"))):
        model = _tiny()
        quantization_aware(model, QATConfig(8, "sym", activations=choice), "ff")
        wrappers = [m for m in model.modules() if isinstance(m, FakeQuantModule)]
        assert wrappers and all(m.sites == sites for m in wrappers)
        model.train()
        model(torch.randint(4, 50, (2, 5)), torch.randint(4, 50, (2, 4)))
        export_quantized(model)
        assert all(m.sites == sites for m in model.modules() if isinstance(m, QuantizedModule))
