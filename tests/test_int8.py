"""int8 inference from a cell's codes: exact integer arithmetic, batch independence, clear refusals."""

import pytest
import torch

from tcompress.compress.int8_inference import (Int8Linear, RowQuantizer, StaticInt8Linear, choose_kernel,
                                               fbgemm_static_available, int8_candidates, int_mm_error,
                                               to_int8_inference)
from tcompress.compress.linear_quant import QuantSpec, quantize_tensor
from tcompress.config import ModelConfig
from tcompress.decode import beam_search, greedy
from tcompress.methods.ptq.post_training import PTQConfig, post_training_quantize
from tcompress.model import Vocab, make_model
from tcompress.schema import UserError


INT_MM = int_mm_error() is None  # a scalar loop without VNNI (slow, still exact): fine at these tests' sizes


def _kernels(bits: int) -> list:
    """(bits, kernel) for every kernel, those this machine cannot run skipped, saying why."""
    return [pytest.param(bits, "float"),
            pytest.param(bits, "int_mm", marks=pytest.mark.skipif(not INT_MM, reason="torch._int_mm does not run here")),
            pytest.param(bits, "fbgemm", marks=pytest.mark.skipif(
                not fbgemm_static_available(bits), reason=f"no fbgemm for {bits}-bit activations on this CPU"))]


def _reference(x, q, scale, zero_point, bias, bits=8):
    """The formula in float64: per-row activation codes times (codes − zero point), rescaled. The
    codes are rounded as fbgemm rounds them: x / s + z in float32, half to even, minus z."""
    levels = 2 ** (bits - 1) - 1
    row_scale = x.abs().amax(1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny) / levels
    xq = torch.round(x / row_scale + (levels + 1)) - (levels + 1)
    acc = xq.double() @ (q.double() - zero_point.double().reshape(-1, 1)).t()
    return acc * row_scale.double() * scale.double() + bias.double()


@pytest.mark.parametrize("mode,per_channel", [("sym", True), ("asym", True), ("sym", False), ("asym", False)])
@pytest.mark.parametrize("bits,kernel", _kernels(8) + _kernels(7))
def test_int8_linear_computes_the_formula_from_the_codes(mode, per_channel, bits, kernel):
    torch.manual_seed(0)
    w, b, x = torch.randn(40, 64), torch.randn(40), torch.randn(3, 7, 64)
    codes = quantize_tensor(w, QuantSpec(8, mode, per_channel))
    layer = Int8Linear(codes["q"], codes["scale"], codes["zero_point"], b, kernel, rows=RowQuantizer(bits))
    out = layer(x)
    assert out.shape == (3, 7, 40)
    ref = _reference(x.reshape(-1, 64), codes["q"], codes["scale"].expand(40), codes["zero_point"].expand(40), b, bits)
    assert torch.allclose(out.reshape(-1, 40).double(), ref, rtol=1e-5, atol=1e-5)
    dequantized = torch.nn.functional.linear(x, (codes["q"].double() - codes["zero_point"].double().reshape(-1, 1)
                                                 if per_channel else codes["q"].double() - codes["zero_point"].double())
                                             .float() * codes["scale"].reshape(-1, 1), b)
    # 8- or 7-bit activations: close to the float product, the narrower ones less so
    assert (out - dequantized).abs().max() < (0.05 if bits == 8 else 0.1) * dequantized.abs().max()


@pytest.mark.parametrize("bits", [8, 7])
@pytest.mark.parametrize("mode,per_channel", [("asym", True), ("sym", True), ("asym", False)])
def test_integer_and_float_kernels_agree_bit_for_bit(mode, per_channel, bits):
    torch.manual_seed(1)
    w, b, x = torch.randn(64, 1024), torch.randn(64), torch.randn(50, 1024)
    codes = quantize_tensor(w, QuantSpec(8, mode, per_channel))
    f = Int8Linear(codes["q"], codes["scale"], codes["zero_point"], b, "float", rows=RowQuantizer(bits))(x)
    kernels = [k for k, ok in (("int_mm", INT_MM), ("fbgemm", fbgemm_static_available(bits))) if ok]
    if not kernels:
        pytest.skip(f"no integer kernel for {bits}-bit activations runs on this CPU")
    for kernel in kernels:
        # every partial sum < 2**24: float32 holds the integers exactly; the rescaling rounds alike
        out = Int8Linear(codes["q"], codes["scale"], codes["zero_point"], b, kernel, rows=RowQuantizer(bits))(x)
        assert torch.equal(out, f), kernel


@pytest.mark.parametrize("bits,kernel", _kernels(8) + _kernels(7))
def test_every_kernel_rounds_a_near_half_activation_as_fbgemm_does(bits, kernel):
    # Row maximum L: s_x = 1, so x / s_x is x. Just below k + ½, x + (L + 1) rounds in float32 up
    # onto the half, which rounds to even: code k + 1 where round(x) gives k. fbgemm computes it so
    # (about 1 Gaussian activation in 166,000); the other kernels must agree, or a cell's int8 BLEU would
    # depend on the machine's kernel.
    levels = 2 ** (bits - 1) - 1
    near = torch.nextafter(torch.tensor(levels / 2), torch.tensor(0.0))  # 63.4999924 or 31.4999981
    assert torch.round(near) == levels // 2 and torch.round(near + levels + 1) - (levels + 1) == levels // 2 + 1
    w = torch.zeros(3, 4, dtype=torch.int8)
    w[:, 1] = 1  # the output reads the code of the second input
    layer = Int8Linear(w, torch.ones(()), torch.zeros((), dtype=torch.int64), None, kernel, rows=RowQuantizer(bits))
    out = layer(torch.tensor([[float(levels), float(near), 0.0, 0.0]]))
    assert out.tolist() == [[levels // 2 + 1] * 3]


@pytest.mark.skipif(not fbgemm_static_available(7), reason="no fbgemm on this CPU")
def test_7bit_activations_cannot_saturate_fbgemms_16bit_pair_sums():
    # The worst case for vpmaddubsw (AVX2): every activation code at +63 (u8 127 after the zero
    # point) against weights at -128: pairs sum to -32,512, inside int16. Exact, on any x86 CPU.
    n_in = 512
    x = torch.full((4, n_in), 3.0)
    x[1] = -3.0                                                           # codes -63 (u8 1)
    q = torch.full((8, n_in), -128, dtype=torch.int8)
    q[1::2] = 127
    scale, zero = torch.full((8,), 0.01), torch.zeros(8, dtype=torch.long)
    f = Int8Linear(q, scale, zero, None, "float", rows=RowQuantizer(7))(x)
    assert torch.equal(Int8Linear(q, scale, zero, None, "fbgemm", rows=RowQuantizer(7))(x), f)
    assert torch.allclose(f[0, 0], torch.tensor(3.0 * -128 * 0.01 * n_in))


def test_fbgemm_kernel_is_refused_and_not_chosen_without_vnni(monkeypatch):
    import tcompress.compress.int8_inference as int8
    monkeypatch.setattr(int8, "cpu_has_vnni", lambda: False)  # an AVX2-only CPU
    codes = quantize_tensor(torch.randn(8, 16), QuantSpec(8, "sym", True))
    with pytest.raises(ValueError, match="VNNI"):  # fbgemm would saturate 16-bit pair sums there
        Int8Linear(codes["q"], codes["scale"], codes["zero_point"], None, "fbgemm")
    assert int8.choose_kernel()[0] == "float"  # 8-bit activations: exact float matmuls, same numbers
    has_fbgemm = "fbgemm" in torch.backends.quantized.supported_engines
    # 7-bit activations run fbgemm's integer GEMM there, and are the fastest width on such a CPU
    assert int8.choose_kernel(activation_bits=7)[0] == ("fbgemm" if has_fbgemm else "float")
    assert int8.fastest_activation_bits() == (7 if has_fbgemm else 8)
    assert int8.fastest_activation_bits("meta") == 8  # not a CPU: float matmuls of the 8-bit formula
    monkeypatch.setattr(int8, "cpu_has_vnni", lambda: True)
    assert int8.fastest_activation_bits() == 8


def test_one_row_quantization_serves_every_projection_of_the_same_input():
    rows = RowQuantizer(8)
    x = torch.randn(2, 5, 16)
    first = rows(x)
    assert all(a is b for a, b in zip(rows(x), first))           # q, k, v of one input: computed once
    assert not any(a is b for a, b in zip(rows(x.clone()), first))  # equal values, another tensor: recomputed
    x.mul_(2)                                                      # changed in place: its version moved on
    scaled, row_scale = rows(x)
    assert torch.equal(row_scale, 2 * first[1]) and torch.allclose(scaled, first[0])
    with pytest.raises(ValueError, match="activation_bits 6"):
        RowQuantizer(6)
    layer = Int8Linear(torch.zeros(4, 16, dtype=torch.int8), torch.ones(4), torch.zeros(4, dtype=torch.long), None,
                       "float", rows=RowQuantizer(7))
    assert layer.rows.bits == 7 and "activations=7 bits" in repr(layer)  # the width is the quantizer's


def _int8_model(bits=8, mode="sym", per_channel=True, activations="none"):
    torch.manual_seed(0)
    model = make_model(ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, dropout=0.0), Vocab(60, 60))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    batches = [(torch.randint(4, 60, (8, 12)), torch.randint(4, 60, (8, 10))) for _ in range(3)]
    post_training_quantize(model, PTQConfig(bits, mode, per_channel=per_channel, activations=activations), "full",
              calibration_batches=batches)
    return model.eval()


def test_every_linear_is_converted_and_nothing_else():
    model = _int8_model()
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    facts = to_int8_inference(model, quiet=True)
    # encoder layers: 4 attention + 2 feed-forward; decoder layers: 8 attention + 2; the generator
    assert facts["int8_linears"] == n_linear == 2 * (4 + 2) + 2 * (8 + 2) + 1
    assert facts["float_linears"] == 0
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) == n_linear


@pytest.mark.parametrize("activations,bits", [("none", 8), ("none", 7), ("both", 8)])
def test_translations_do_not_depend_on_batch_mates(activations, bits):
    model = _int8_model(activations=activations)
    assert to_int8_inference(model, quiet=True, activation_bits=bits)["int8_activation_bits"] == bits
    torch.manual_seed(3)
    sentences = [torch.randint(4, 60, (int(n),)).tolist() + [2] for n in torch.randint(3, 15, (64,))]
    src = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in sentences], batch_first=True)
    together = greedy(model, src, 20)
    alone = [greedy(model, torch.tensor([s]), 20)[0] for s in sentences]
    assert together == alone
    beams = beam_search(model, src[:8], 4, 0.6, 20)
    assert beams == [beam_search(model, torch.tensor([s]), 4, 0.6, 20)[0] for s in sentences[:8]]


def test_a_float_model_is_refused_in_one_line():
    model = make_model(ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64), Vocab(60, 60))
    with pytest.raises(UserError, match="needs a cell artifact whose Linear layers are quantized") as err:
        to_int8_inference(model)
    assert "\n" not in str(err.value)
    assert int8_candidates(_int8_model(bits=4))  # 4-bit codes fit int8 as well


def test_embeddings_look_up_their_codes_and_give_the_same_floats():
    model = _int8_model()
    tokens = torch.randint(0, 60, (3, 11))
    before = (model.src_embed(tokens), model.tgt_embed(tokens))
    facts = to_int8_inference(model, quiet=True)
    assert facts["code_embeddings"] == 1  # the shared source/target table
    assert torch.equal(model.src_embed(tokens), before[0]) and torch.equal(model.tgt_embed(tokens), before[1])
    floats = [name for name, b in model.named_buffers() if b.is_floating_point() and b.numel() >= 60 * 32]
    assert floats == ["src_pos.pe", "tgt_pos.pe"]  # the sinusoids; no float table or weight matrix any more


STATIC = choose_kernel()[0] != "float" and fbgemm_static_available(8)


@pytest.mark.skipif(not STATIC, reason="no VNNI / fbgemm on this CPU: calibrated cells decode in float")
@pytest.mark.parametrize("mode,per_channel", [("sym", False), ("asym", False), ("sym", True), ("asym", True)])
def test_calibrated_cells_run_fbgemm_with_their_own_input_ranges(mode, per_channel):
    cell = _int8_model(mode=mode, per_channel=per_channel, activations="both")
    int8 = _int8_model(mode=mode, per_channel=per_channel, activations="both")
    facts = to_int8_inference(int8, quiet=True)
    assert facts["int8_static_linears"] == facts["int8_linears"] == 33 and facts["float_linears"] == 0
    wrapper = int8.encoder.layers[0].feed_forward.w_1
    assert isinstance(wrapper.inner, StaticInt8Linear) and wrapper.sites == ("output",)
    x = torch.randn(5, 7, 32)
    with torch.no_grad():
        cell_out, int8_out = cell.encoder.layers[0].feed_forward.w_1(x), wrapper(x)
    step = float(wrapper.output_scale)  # both are quantized to the cell's output grid
    assert (cell_out - int8_out).abs().max() <= 2 * step + 1e-6
    assert (cell_out == int8_out).float().mean() > 0.9  # the same input codes and weight codes
