"""Q8BERT's quantizer: symmetric, S_W = M / max|W|, S_x = M / EMA(max|x|), checked against PyTorch's
own fake quantization and against the formula by hand."""

import torch
from torch import nn

from tcompress.compress.linear_quant import QuantSpec
from tcompress.compress.qat import FakeQuantModule, export_quantized
from tcompress.compress.quantized import QuantizedModule
from tcompress.methods.q8bert import _abs_max_wrapper


def _wrapped(momentum=0.9):
    torch.manual_seed(0)
    return _abs_max_wrapper()(nn.Linear(6, 4), QuantSpec(8, "sym"), ("input",), momentum, params=("weight",))


def test_activation_range_is_an_ema_of_the_largest_magnitude():
    m = _wrapped()
    a = torch.tensor([[-3.0, 1.0, 0.5, 0.0, 0.2, 0.1]])
    b = torch.tensor([[0.5, 2.0, -0.1, 0.0, 0.2, 0.1]])
    m.train()
    m(a)
    assert m.input_hi.item() == 3.0 and m.input_lo.item() == -3.0   # first batch: max|x| outright
    m(b)
    assert torch.isclose(m.input_hi, torch.tensor(0.9 * 3.0 + 0.1 * 2.0))
    assert torch.equal(m.input_lo, -m.input_hi)
    # The qat method's statistic differs: it averages min (−3, then −0.1) and max (1, then 2) apart.
    qat = FakeQuantModule(nn.Linear(6, 4), QuantSpec(8, "sym"), ("input",), 0.9)
    qat.train()
    qat(a), qat(b)
    assert max(abs(qat.input_lo.item()), abs(qat.input_hi.item())) != m.input_hi.item()


def test_forward_matches_pytorch_fake_quantization_with_q8bert_scales():
    m = _wrapped()
    x = torch.randn(5, 6)
    m.train()
    out = m(x)
    s_x = x.abs().max() / 127                    # 1 / S_x with S_x = M / max|x|, M = 127
    s_w = m.inner.weight.detach().abs().max() / 127
    xq = torch.fake_quantize_per_tensor_affine(x, s_x.item(), 0, -127, 127)
    wq = torch.fake_quantize_per_tensor_affine(m.inner.weight.detach(), s_w.item(), 0, -127, 127)
    assert torch.allclose(out, nn.functional.linear(xq, wq, m.inner.bias), atol=1e-6)
    assert m.inner.bias.requires_grad                                  # biases stay float


def test_export_keeps_float_biases_and_computes_what_evaluation_did():
    m = _wrapped()
    m.train()
    m(torch.randn(8, 6))
    model = nn.Sequential(m).eval()
    x = torch.randn(3, 6)
    out = model(x)
    export_quantized(model)
    assert isinstance(model[0], QuantizedModule) and model[0].param_names == ("weight",)
    assert torch.equal(model[0].weight_zero_point, torch.zeros((), dtype=torch.int64))
    assert torch.allclose(model(x), out, atol=1e-6)
