"""Quantization checked against PyTorch's own kernels and the definitions of the thesis (§2.3, §3.4.1, §4.1)."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tcompress.checkpoint import model_payload, save_atomic
from tcompress.compress.artifact import save_compressed, stored_bits
from tcompress.compress.linear_quant import QuantSpec, dequantize, fake_quantize, qparams, quantize, tensor_range
from tcompress.compress.quantized import QuantizedModule
from tcompress.compress.ratio import pruning_ratio, quantization_ratio
from tcompress.config import ModelConfig
from tcompress.layer_groups import group_parameter_count, select_modules
from tcompress.loader import load_model
from tcompress.methods.ptq.post_training import ClipConfig, PTQConfig, calibrate, post_training_quantize
from tcompress.model import BOS, EOS, PAD, Embeddings, Vocab, count_parameters, make_model

BITS = (2, 3, 4, 8, 16)
MODES = ("sym", "asym")
EPS = torch.finfo(torch.float32).eps
TINY = ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, share_embeddings=True)
GROUPS = ("ff", "att", "emb", "gen", "ff+emb+gen", "full")


def rand(seed, shape, offset=0.0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3 + offset


def tiny_model():
    torch.manual_seed(0)
    return make_model(TINY, Vocab(50, 50)).eval()


def token_batches(n=3):
    """(src, tgt_in) batches as the data pipeline makes them: ids 4..49, EOS-terminated source, BOS-led target."""
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(n):
        src = torch.randint(4, 50, (4, 9), generator=g)
        src[:, -1] = EOS
        src[0, 5], src[0, 6:] = EOS, PAD  # one shorter, padded sentence
        tgt = torch.randint(4, 50, (4, 8), generator=g)
        tgt[:, 0] = BOS
        tgt[0, 5:] = PAD
        batches.append((src, tgt))
    return batches


def torch_fq(x, lo, hi, spec):
    """Reference: qparams by the docstring's formulas (float32), then PyTorch's per-tensor fake quantization."""
    lo, hi = torch.tensor(float(lo)), torch.tensor(float(hi))
    if spec.mode == "sym":
        scale, zp = torch.maximum(lo.abs(), hi.abs()) / spec.qmax, 0
    else:
        lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
        scale = (hi - lo) / spec.qmax
        zp = int(torch.round(-lo / scale))
    return torch.fake_quantize_per_tensor_affine(x, scale.item(), zp, spec.qmin, spec.qmax)


# 1. Bit-exact agreement with PyTorch's fake quantization.

@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("per_channel", [False, True], ids=["tensor", "channel"])
@pytest.mark.parametrize("seed,shape,offset", [(0, (7, 13), 0.0), (1, (16, 4, 5), 2.5), (2, (5, 64), -4.0),
                                               (3, (3, 1), 0.0), (4, (6, 10), 20.0)])
def test_fake_quantize_equals_torch(bits, mode, per_channel, seed, shape, offset):
    spec = QuantSpec(bits, mode, per_channel)
    x = rand(seed, shape, offset)
    scale, zp = qparams(*tensor_range(x, per_channel), spec)
    for t in (x, 1.5 * x):  # 1.5·x leaves the range, so clamping is compared too
        if per_channel:
            ref = torch.fake_quantize_per_channel_affine(t, scale, zp.to(torch.int32), 0, spec.qmin, spec.qmax)
        else:
            ref = torch.fake_quantize_per_tensor_affine(t, scale.item(), int(zp), spec.qmin, spec.qmax)
        assert torch.equal(fake_quantize(t, scale, zp, spec), ref)
        q = quantize(t, scale, zp, spec)
        assert q.dtype == spec.storage_dtype
        codes = q.to(torch.int64)  # uint16 (16-bit asym codes) has almost no arithmetic in torch
        assert spec.qmin <= codes.min().item() and codes.max().item() <= spec.qmax
        assert torch.equal(dequantize(q, scale, zp), ref)


# 2. Properties stated in linear_quant's docstring.

@pytest.mark.parametrize("bits", BITS)
def test_sym_maps_max_abs_to_qmax_and_is_odd(bits):
    spec = QuantSpec(bits, "sym")
    x = rand(5, (200,), 1.0)
    scale, zp = qparams(*tensor_range(x, False), spec)
    q = quantize(x, scale, zp, spec).long()
    assert zp.item() == 0
    i = x.abs().argmax()
    assert q[i].item() == spec.qmax * int(torch.sign(x[i]))
    assert torch.equal(quantize(-x, scale, zp, spec).long(), -q)  # the range is symmetric: −x ↦ −q


@pytest.mark.parametrize("bits", BITS)
def test_asym_range_is_widened_to_include_zero(bits):
    spec = QuantSpec(bits, "asym")
    pos = rand(6, (200,)).abs() + 1.0  # all positive: the widened range is [0, max]
    scale, zp = qparams(*tensor_range(pos, False), spec)
    assert zp.item() == 0 and torch.isclose(scale, pos.max() / spec.qmax)
    assert quantize(pos, scale, zp, spec)[pos.argmax()].item() == spec.qmax
    neg = -pos  # all negative: the widened range is [min, 0], so 0 is the top code
    scale, zp = qparams(*tensor_range(neg, False), spec)
    assert zp.item() == spec.qmax and quantize(neg, scale, zp, spec)[neg.argmin()].item() == 0
    mixed = rand(7, (200,), 0.5)
    scale, zp = qparams(*tensor_range(mixed, False), spec)
    assert fake_quantize(torch.zeros(4), scale, zp, spec).eq(0).all()  # zero is exactly representable


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("per_channel", [False, True])
def test_error_at_most_half_a_step_and_zeros_round_trip(bits, mode, per_channel):
    spec = QuantSpec(bits, mode, per_channel)
    x = rand(8, (6, 50), 0.7)
    scale, zp = qparams(*tensor_range(x, per_channel), spec)
    step = scale.reshape(-1, 1) if per_channel else scale
    err = (fake_quantize(x, scale, zp, spec) - x).abs()
    assert (err <= step / 2 + 8 * EPS * x.abs().max()).all()  # slack only for float32 rounding
    zeros = torch.zeros(6, 50)
    scale, zp = qparams(*tensor_range(zeros, per_channel), spec)
    out = fake_quantize(zeros, scale, zp, spec)
    assert not out.isnan().any() and out.eq(0).all()
    assert dequantize(quantize(zeros, scale, zp, spec), scale, zp).eq(0).all()


@pytest.mark.parametrize("kwargs,named", [({"bits": 1}, "bits: 1 "), ({"bits": 17}, "bits: 17 "),
                                          ({"bits": 8, "mode": "foo"}, "'foo'")])
def test_quant_spec_rejects(kwargs, named):
    with pytest.raises(ValueError, match=named):
        QuantSpec(**kwargs)


# 3. Compression ratios of the Multi30k-size model (§4.1), from counts written out by hand.

def test_multi30k_group_counts_and_ratios():
    model = make_model(ModelConfig(d_model=256, n_layers=3, n_heads=4, d_ff=1024, share_embeddings=True),
                       Vocab(8000, 8000))
    d, f, v = 256, 1024, 8000
    emb = v * d                               # one table shared by source and target
    att = 9 * 4 * (d * d + d)                 # 3 encoder self + 3 decoder self + 3 cross, each q, k, v, out
    ff = 6 * (d * f + f + f * d + d)          # 3 encoder + 3 decoder feed-forwards
    gen = d * v + v
    norms = 17 * 2 * d                        # 2 per encoder layer, 3 per decoder layer, 2 final
    n_m = emb + att + ff + gen + norms
    counts = {"ff": ff, "att": att, "emb": emb, "gen": gen, "ff+emb+gen": ff + emb + gen, "full": n_m}
    assert {g: group_parameter_count(model, g) for g in counts} == counts
    assert count_parameters(model) == n_m
    for n_c in counts.values():
        for bits in BITS:
            assert quantization_ratio(n_m, n_c, bits) == n_m * 32 / (n_c * bits + (n_m - n_c) * 32)
    assert [quantization_ratio(n_m, n_m, b) for b in (8, 16, 4)] == [4.0, 2.0, 8.0]
    assert quantization_ratio(n_m, 0, 8) == 1.0
    for bad in (-1, n_m + 1):
        with pytest.raises(ValueError):
            quantization_ratio(n_m, bad, 8)
    assert pruning_ratio(n_m, n_m) == 1.0 and pruning_ratio(1000, 250) == 4.0
    for bad in (0, -5):
        with pytest.raises(ValueError):
            pruning_ratio(n_m, bad)


# 4. QuantizedModule against a hand-built reference.

@pytest.mark.parametrize("bits", (4, 8))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("per_channel", [False, True], ids=["tensor", "channel"])
def test_quantized_linear_equals_reference(bits, mode, per_channel):
    torch.manual_seed(0)
    lin = nn.Linear(12, 7)
    w, b = lin.weight.detach().clone(), lin.bias.detach().clone()
    ranges = {"input": (-3.0, 4.0), "output": (-1.5, 2.0)}  # narrower than x's values: clamping is exercised
    spec = QuantSpec(bits, mode, per_channel)
    qm = QuantizedModule.from_float(lin, spec, ranges)
    if per_channel:
        wq = torch.stack([torch_fq(row, row.min(), row.max(), spec) for row in w])
    else:
        wq = torch_fq(w, w.min(), w.max(), spec)
    bq = torch_fq(b, b.min(), b.max(), spec)  # a bias is 1-D, so per tensor even in per-channel mode
    x = rand(9, (5, 12))
    ref = torch_fq(F.linear(torch_fq(x, *ranges["input"], spec), wq, bq), *ranges["output"], spec)
    with torch.no_grad():
        assert torch.equal(qm(x), ref)
    assert list(qm.parameters()) == []
    state = qm.state_dict()
    assert state["weight_q"].dtype == state["bias_q"].dtype == spec.storage_dtype
    assert state["weight_scale"].shape == ((7,) if per_channel else ())
    assert not any(k.startswith("inner.") for k in state)  # the float view is derived, not stored


# 5. Post-training quantization of a layer group.

@pytest.mark.parametrize("group", GROUPS)
def test_ptq_replaces_exactly_the_group(group):
    model = tiny_model()
    float_model = copy.deepcopy(model)
    selected = select_modules(float_model, group)
    report = post_training_quantize(model, PTQConfig(8), group, calibration_batches=token_batches())
    assert report["modules"] == len(selected)
    assert sum(isinstance(m, QuantizedModule) for m in model.modules()) == len(selected)
    for name, old in float_model.named_modules():
        own = dict(old.named_parameters(recurse=False))
        if not own:
            continue
        new = model.get_submodule(name)
        if name in selected:
            assert isinstance(new, QuantizedModule) and type(new.inner) is type(old)
            assert set(new.sites) == ({"output"} if isinstance(old, nn.Embedding) else {"input", "output"})
        else:
            assert not isinstance(new, QuantizedModule)
            assert {n: p for n, p in new.named_parameters(recurse=False)}.keys() == own.keys()
            assert all(torch.equal(getattr(new, n), p) for n, p in own.items())
    assert (model.src_embed.lut is model.tgt_embed.lut) and \
        isinstance(model.src_embed.lut, QuantizedModule) == ("emb" in group or group == "full")


def test_ptq_shared_table_under_two_parents_becomes_one_wrapper():
    model = tiny_model()
    model.tgt_embed = Embeddings(50, TINY.d_model)
    model.tgt_embed.lut = model.src_embed.lut  # one table, two parent modules
    post_training_quantize(model, PTQConfig(8), "emb", calibration_batches=token_batches())
    assert isinstance(model.src_embed.lut, QuantizedModule) and model.tgt_embed.lut is model.src_embed.lut


@pytest.mark.parametrize("mode", MODES)
def test_ptq_error_shrinks_with_bits(mode):
    model, batches = tiny_model(), token_batches()
    src, tgt = batches[0]
    with torch.no_grad():
        ref = model(src, tgt)
    err = {}
    for bits in (16, 2):
        q = copy.deepcopy(model)
        post_training_quantize(q, PTQConfig(bits, mode), "full", calibration_batches=batches)
        with torch.no_grad():
            err[bits] = (q(src, tgt) - ref).abs().max().item()
    scale = ref.abs().max().item()
    assert err[16] < 1e-3 * scale   # 2^15 levels per tensor: a few steps' error over ~20 quantized sites
    assert err[2] > 0.2 * scale     # 3 levels per tensor: the logits are mostly noise


def test_ptq_unknown_group():
    with pytest.raises(ValueError, match="ffn"):
        post_training_quantize(tiny_model(), PTQConfig(8), "ffn", calibration_batches=token_batches())


# 6. Artifacts.

@pytest.mark.parametrize("group,mode,per_channel", [("full", "sym", False), ("ff+emb+gen", "asym", True)])
def test_compressed_artifact_round_trip(tmp_path, group, mode, per_channel):
    model, batches = tiny_model(), token_batches()
    post_training_quantize(model, PTQConfig(8, mode, per_channel), group, calibration_batches=batches)
    save_compressed(model, tmp_path / "c.pt")
    loaded, _ = load_model(tmp_path / "c.pt")  # weights_only=True
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) and want[k].dtype == got[k].dtype for k in want)
    src, tgt = batches[0]
    with torch.no_grad():  # equal logits also need the derived float weights rebuilt from the codes
        assert torch.equal(loaded(src, tgt), model.eval()(src, tgt))


def test_load_model_reads_a_baseline(tmp_path):
    model = tiny_model()
    save_atomic(model_payload(model), tmp_path / "b.pt")
    loaded, _ = load_model(tmp_path / "b.pt")
    assert not any(isinstance(m, QuantizedModule) for m in loaded.modules())
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    src, tgt = token_batches(1)[0]
    with torch.no_grad():
        assert torch.equal(loaded(src, tgt), model(src, tgt))


@pytest.mark.parametrize("group", ["full", "ff+emb+gen"])
def test_stored_bits(group):
    model = tiny_model()
    n_m = count_parameters(model)
    assert stored_bits(model) == 32 * n_m
    tensors = [p for m in select_modules(model, group).values() for p in m.parameters(recurse=False)]
    n_c = sum(p.numel() for p in tensors)
    post_training_quantize(model, PTQConfig(8), group, calibration_batches=token_batches())
    # codes at 8 bits, other parameters at 32, one 32-bit step size and zero point per quantized tensor
    assert stored_bits(model) == 8 * n_c + 32 * (n_m - n_c) + 64 * len(tensors)
    # the thesis's ratio ignores that overhead, a few percent of this tiny model's 8-bit codes
    assert n_m * 32 / stored_bits(model) == pytest.approx(quantization_ratio(n_m, n_c, 8), rel=0.03)


# 7. Calibration ranges.

class Toy(nn.Module):
    """calibrate only needs model(src, tgt_in); this one feeds src through one Linear."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 3)

    def forward(self, src, tgt_in):
        return self.lin(src)


def test_calibrate_none_is_global_min_max():
    model, batches = tiny_model().train(), token_batches()
    modules = select_modules(model, "full")
    seen = {name: {} for name in modules}

    def record(name):
        def hook(module, args, out):
            for site, t in (("input", args[0]), ("output", out)):
                if t.is_floating_point():
                    lo, hi = seen[name].get(site, (float("inf"), float("-inf")))
                    seen[name][site] = (min(lo, t.min().item()), max(hi, t.max().item()))
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in modules.items()]
    ranges = calibrate(model, modules, batches, ClipConfig("none"))
    for h in handles:
        h.remove()
    assert ranges == seen
    assert ranges["src_embed.lut"].keys() == {"output"}  # token ids have no range
    assert model.training  # calibration runs in eval mode and restores the mode


def toy_batches(heavy):
    g = torch.Generator().manual_seed(2)
    xs = [torch.randn(200, 6, generator=g) for _ in range(4)]
    if heavy:  # Cauchy samples: rare huge outliers set min and max
        xs = [torch.tan(torch.pi * (torch.rand(200, 6, generator=g) - 0.5)) for _ in range(4)]
    return [(x, None) for x in xs]


@pytest.mark.parametrize("n_std", [1.0, 100.0])
def test_calibrate_std(n_std):
    model, batches = Toy(), toy_batches(heavy=False)
    ranges = calibrate(model, {"lin": model.lin}, batches, ClipConfig("std", n_std=n_std))["lin"]
    with torch.no_grad():
        values = {"input": torch.cat([x for x, _ in batches]), "output": torch.cat([model(x, None) for x, _ in batches])}
    for site, v in values.items():
        v = v.double()
        mean, std = v.mean().item(), v.std(unbiased=False).item()
        want = (max(v.min().item(), mean - n_std * std), min(v.max().item(), mean + n_std * std))
        assert ranges[site] == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_calibrate_percentile_clips_heavy_tails():
    model, batches = Toy(), toy_batches(heavy=True)
    ranges = calibrate(model, {"lin": model.lin}, batches, ClipConfig("percentile", percentile=99.0))["lin"]
    full = calibrate(model, {"lin": model.lin}, batches, ClipConfig("none"))["lin"]
    for site in ("input", "output"):
        (lo, hi), (mn, mx) = ranges[site], full[site]
        assert mn <= lo < hi <= mx
        assert hi - lo < 0.5 * (mx - mn)
    # The docstring's definition: per-batch nearest-rank 1st and 99th percentiles (k-th smallest and
    # k-th largest, k = ceil(0.01·n)), averaged over batches.
    xs = [np.sort(x.double().numpy().ravel()) for x, _ in batches]
    ks = [int(np.ceil(0.01 * len(x))) for x in xs]
    want = (np.mean([x[k - 1] for x, k in zip(xs, ks)]), np.mean([x[len(x) - k] for x, k in zip(xs, ks)]))
    assert ranges["input"] == pytest.approx(want, rel=1e-5)


def test_ptq_without_calibration_batches_fails_loudly():
    with pytest.raises((RuntimeError, ValueError)):
        post_training_quantize(tiny_model(), PTQConfig(8, activations="both"), "ff", calibration_batches=[])


def test_ptq_activation_choice_sets_the_quantized_sites():
    for choice, sites in (("none", ()), ("inputs", ("input",)), ("both", ("input", "output"))):
        model = tiny_model()
        post_training_quantize(model, PTQConfig(8, activations=choice), "ff", calibration_batches=token_batches())
        wrapped = [m for m in model.modules() if isinstance(m, QuantizedModule)]
        assert wrapped and all(m.sites == sites for m in wrapped)
