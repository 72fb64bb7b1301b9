"""FullyQT (seed 001 §3): where the quantization points are, how each behaves (eq. 1–3, EMA ranges,
padding, ReLU floor, the LayerNorm denominator's gradient), the start step, and the artifact."""

import pytest
import torch
from torch import nn

from tcompress.compress.artifact import parameter_bits, save_compressed
from tcompress.compress.qat import FakeQuantModule
from tcompress.compress.quantized import QuantizedModule
from tcompress.config import ModelConfig
from tcompress.loader import load_model
from tcompress.methods.fullyqt import spec_of
from tcompress.methods.fullyqt.modules import ActQuant, FullyQTSpec, freeze, fully_quantize, set_active
from tcompress.model import BOS, PAD, Vocab, make_model

LN = ["ln_num", "ln_den", "ln_quot", "ln_out"]
ATT = ["qkv_q", "qkv_k", "qkv_v", "softmax_num", "softmax_den", "softmax_out", "att_out"]
# §3.2, spelled out for a one-layer model: every point, by module, in forward order.
EXPECTED = (
    [("src_pos", "emb_pos")]
    + [("encoder.layers.0.norm_1", p) for p in LN] + [("encoder.layers.0.self_attn", p) for p in ATT]
    + [("encoder.layers.0.norm_2", p) for p in LN] + [("encoder.layers.0.feed_forward", p) for p in ("relu_out", "ff_out")]
    + [("encoder.norm", p) for p in LN]
    + [("tgt_pos", "emb_pos")]
    + [("decoder.layers.0.norm_1", p) for p in LN] + [("decoder.layers.0.self_attn", p) for p in ATT]
    + [("decoder.layers.0.norm_2", p) for p in LN] + [("decoder.layers.0.src_attn", p) for p in ATT]
    + [("decoder.layers.0.norm_3", p) for p in LN] + [("decoder.layers.0.feed_forward", p) for p in ("relu_out", "ff_out")]
    + [("decoder.norm", p) for p in LN]
)


def tiny_model(dropout=0.0, layers=1, share=True):
    torch.manual_seed(0)
    return make_model(ModelConfig(d_model=16, n_layers=layers, n_heads=2, d_ff=32, dropout=dropout,
                                  share_embeddings=share), Vocab(40, 40))


def batch(pad_src=0, pad_tgt=0):
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, 40, (3, 6), generator=g)
    tgt = torch.randint(4, 40, (3, 5), generator=g)
    tgt[:, 0] = BOS
    src[1, 4:] = PAD   # one sentence shorter than its batch mates
    tgt[2, 3:] = PAD
    return (torch.cat([src, torch.full((3, pad_src), PAD)], 1), torch.cat([tgt, torch.full((3, pad_tgt), PAD)], 1))


def quantizers(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, ActQuant)}


def _owner(name: str) -> tuple[str, str]:
    owner, _, point = name.rpartition(".points.")
    return owner.replace(".inner", ""), point


def test_one_forward_pass_quantizes_exactly_the_points_of_section_3_2():
    model = tiny_model()
    fully_quantize(model, FullyQTSpec())
    order = []
    for name, q in quantizers(model).items():
        q.trace = []
        q.register_forward_hook(lambda m, _a, _o, name=name: order.append(_owner(name)) if m.trace else None)
    model.train()
    model(*batch())
    assert order == EXPECTED
    # Weights: every Linear, Embedding and LayerNorm γ, per output row where it is a matrix; no bias.
    wrappers = [m for m in model.modules() if isinstance(m, FakeQuantModule)]
    kinds = sorted(type(w.inner).__name__ for w in wrappers)
    assert kinds.count("Linear") == 6 + 10 + 1 and kinds.count("Embedding") == 1 and kinds.count("LayerNorm") == 7
    assert all(w.params == ("weight",) for w in wrappers)
    assert all(w.spec.per_channel == (not isinstance(w.inner, nn.LayerNorm)) for w in wrappers)


def test_activation_quantizer_is_equation_3_and_torch_fake_quantize_where_x_min_is_on_the_grid():
    q = ActQuant("ln_out", FullyQTSpec(bits=4, bucketing=False), 8)
    q.lo.fill_(-1.5), q.hi.fill_(3.0), q.seen.fill_(True)   # step 0.3: x_min = −5 steps
    q.eval()
    x = torch.linspace(-3, 5, 101)
    s = (3.0 - -1.5) / 15
    eq3 = torch.round((x.clamp(-1.5, 3.0) + 1.5) / s) * s - 1.5
    assert torch.allclose(q(x), eq3, atol=1e-6)
    ref = torch.fake_quantize_per_tensor_affine(x, s, 5, 0, 15)
    assert torch.allclose(q(x), ref, atol=1e-6)


def test_ranges_are_an_ema_with_momentum_0_9_per_feature_where_bucketed():
    q = ActQuant("qkv", FullyQTSpec(), 3)
    q.train()
    a, b = torch.randn(4, 5, 3), 2 * torch.randn(4, 5, 3)
    q(a)
    assert torch.equal(q.lo, a.reshape(-1, 3).amin(0)) and q.lo.shape == (3,)
    q(b)
    assert torch.allclose(q.hi, 0.9 * a.reshape(-1, 3).amax(0) + 0.1 * b.reshape(-1, 3).amax(0))
    flat = ActQuant("softmax_num", FullyQTSpec(), 3)      # §3.3 does not bucket the softmax
    flat.train(), flat(a)
    assert flat.lo.shape == () and flat.hi == a.max()
    q.eval(), q(10 * b)                                   # frozen outside training
    assert torch.allclose(q.hi, 0.9 * a.reshape(-1, 3).amax(0) + 0.1 * b.reshape(-1, 3).amax(0))


def test_relu_output_keeps_x_min_at_zero_and_the_naive_scheme_does_not():
    x = torch.rand(2, 4, 6) + 0.5
    fixed, naive = ActQuant("relu_out", FullyQTSpec(), 6), ActQuant("relu_out", FullyQTSpec(naive=True), 6)
    for q in (fixed, naive):
        q.train(), q(x)
    assert fixed.lo.item() == 0.0 and naive.lo.item() == pytest.approx(x.min().item())


def test_layernorm_denominator_gradient_is_never_zeroed_other_points_zero_it_where_clamped():
    x = torch.tensor([0.5, 1.2, 1.7, 9.0], requires_grad=True)
    for point, expected in (("ln_den", [1.0, 1.0, 1.0, 1.0]), ("ln_quot", [0.0, 1.0, 1.0, 0.0])):
        q = ActQuant(point, FullyQTSpec(bucketing=False), 4)
        q.lo.fill_(1.0), q.hi.fill_(2.0), q.seen.fill_(True)
        q.eval()
        x.grad = None
        q(x).sum().backward()
        assert x.grad.tolist() == expected, point
    naive = ActQuant("ln_den", FullyQTSpec(naive=True), 4)
    naive.lo.fill_(1.0), naive.hi.fill_(2.0), naive.seen.fill_(True)
    x.grad = None
    naive(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]


def ranges(model):
    return {name: (q.lo.clone(), q.hi.clone()) for name, q in quantizers(model).items()}


@pytest.mark.parametrize("naive", [False, True])
def test_padding_positions_do_not_move_the_ranges(naive):
    runs = []
    for pads in ((0, 0), (3, 2)):
        model = tiny_model()
        fully_quantize(model, FullyQTSpec(naive=naive))
        set_active([q for q in model.modules() if isinstance(q, ActQuant)],
                   [w for w in model.modules() if isinstance(w, FakeQuantModule)], True)
        model.train()
        model(*batch(*pads))
        runs.append(ranges(model))
    same = all(torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1], b[1], atol=1e-5)
               for a, b in zip(runs[0].values(), runs[1].values()))
    assert same != naive    # excluded by the scheme; the naive one counts padding, and its ranges move


def test_before_the_start_step_the_model_is_the_float_one():
    model, ref = tiny_model(), tiny_model()
    quants, weights = fully_quantize(model, FullyQTSpec())
    set_active(quants, weights, False)
    model.train(), ref.train()
    # the same function; written out (softmax, LayerNorm) it rounds differently from torch's fused kernels
    assert torch.allclose(model(*batch()), ref(*batch()), atol=1e-5)
    assert not any(bool(q.seen) for q in quants)           # no range tracked either
    set_active(quants, weights, True)
    assert not torch.allclose(model(*batch()), ref(*batch()), atol=1e-3)


def test_frozen_artifact_holds_codes_and_ranges_and_reloads_to_the_same_logits(tmp_path):
    model = tiny_model(layers=2, share=False)
    fully_quantize(model, FullyQTSpec())
    model.train()
    for _ in range(3):
        model(*batch())
    model.eval()
    before = model(*batch())
    freeze(model)
    assert torch.equal(model(*batch()), before)            # export changes nothing the forward computes
    coded = [m for m in model.modules() if isinstance(m, QuantizedModule)]
    assert coded and all(m.param_names == ("weight",) and m.spec.bits == 8 for m in coded)
    assert all(isinstance(m.inner.bias, nn.Parameter) for m in coded if getattr(m.inner, "bias", None) is not None)
    save_compressed(model, tmp_path / "m.safetensors")
    loaded, payload = load_model(tmp_path / "m.safetensors")
    assert torch.equal(loaded(*batch()), before)
    assert set(payload["compression"]) >= {"quantized", "fq_attention", "fq_layernorm", "fq_feedforward", "fq_positional"}
    assert parameter_bits(loaded) < parameter_bits(tiny_model(layers=2, share=False)) / 3


def test_freeze_refuses_a_point_that_never_saw_data():
    model = tiny_model()
    quants, weights = fully_quantize(model, FullyQTSpec())
    with pytest.raises(ValueError, match="never saw data"):
        freeze(model)


@pytest.mark.parametrize("ops, points, bucketing, naive", [
    ("all", 14, True, False), ("all_flat", 14, False, False), ("naive", 14, False, True),
    ("qkv", 1, True, False), ("qkv_flat", 1, False, False), ("ln_den", 1, True, False)])
def test_ops_axis_values_name_the_scheme_and_the_single_operation_ablation(ops, points, bucketing, naive):
    spec = spec_of(8, ops, 0.9)
    assert (len(spec.points), spec.bucketing, spec.naive) == (points, bucketing, naive)
    model = tiny_model()
    fully_quantize(model, spec)
    used = {q.point for q in quantizers(model).values() if q.used}
    assert used == (set(spec.points) - {"weights", "pos"})
    assert any(isinstance(m, FakeQuantModule) for m in model.modules()) == (points == 14)
