"""GPTQ, AWQ, SmoothQuant and AdaRound against reference computations, and the calibration
statistics they read against a direct collection without padding.

References: round-to-nearest per row (``quantize_tensor``), a loop that re-inverts the Hessian of
the columns still unquantized at every step (the OBQ update GPTQ reorganizes), output errors
computed from the input rows themselves (not from the Gram matrix the methods use), and the papers'
formulas for the scales.
"""

import pytest
import torch
from torch import nn

from tcompress.compress.artifact import save_compressed
from tcompress.compress.calibration import LinearStats, collect, load, save
from tcompress.compress.int8_inference import Int8Linear, to_int8_inference
from tcompress.compress.linear_quant import QuantSpec, dequantize, quantize, quantize_tensor
from tcompress.compress.quantized import InputScaledModule, QuantizedModule
from tcompress.config import ModelConfig
from tcompress.loader import load_model
from tcompress.methods.adaround import AdaRoundParams, adaround
from tcompress.methods.awq import awq_scales, awq_search, rounded
from tcompress.methods.gptq import gptq_quantize
from tcompress.methods.smoothquant import smooth_quantize, smoothing_scales
from tcompress.model import PAD, Vocab, make_model

SPEC4 = QuantSpec(4, "asym", per_channel=True)


def stats_of(x: torch.Tensor) -> LinearStats:
    """The calibration statistics of input rows ``x`` (n, d_in), as the calibrate stage computes them."""
    x64 = x.double()
    return LinearStats(x64.T @ x64, x.abs().mean(0), x.abs().amax(0), x.shape[0])


def inputs(n: int, d: int, seed: int, outliers: tuple[int, ...] = ()) -> torch.Tensor:
    """Correlated input rows (a random mixing of independent ones), a few channels much larger."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) @ (torch.eye(d) + 0.5 * torch.randn(d, d, generator=g) / d ** 0.5)
    x[:, list(outliers)] *= 20
    return x


def output_error(w_hat: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> float:
    return float(((x.double() @ (w_hat.double() - w.double()).T) ** 2).sum())


def rtn(w: torch.Tensor, spec: QuantSpec = SPEC4) -> torch.Tensor:
    t = quantize_tensor(w, spec)
    return dequantize(t["q"], t["scale"], t["zero_point"])


# ------------------------------------------------------------------------------------------ GPTQ

def obq_reference(w: torch.Tensor, h: torch.Tensor, spec: QuantSpec, order: torch.Tensor) -> torch.Tensor:
    """Columns quantized in ``order``; after each, the remaining columns absorb its error through the
    inverse Hessian of the columns still unquantized, re-inverted from H at every step."""
    t = quantize_tensor(w, spec)   # the per-row grid GPTQ keeps
    scale, zero_point = t["scale"], t["zero_point"]
    w = w.double().clone()
    codes = torch.zeros(w.shape, dtype=spec.storage_dtype)
    left = list(order.tolist())
    while left:
        j, rest = left[0], left
        hinv = torch.linalg.inv(h[rest][:, rest].double())                 # (|rest|, |rest|), j first
        q = quantize(w[:, j], scale, zero_point, spec)
        codes[:, j] = q
        err = (w[:, j] - dequantize(q, scale, zero_point).double()) / hinv[0, 0]
        w[:, rest] -= err[:, None] * hinv[0][None, :]
        left = left[1:]
    return codes


def test_gptq_with_an_identity_hessian_is_round_to_nearest():
    w = torch.randn(12, 20, generator=torch.Generator().manual_seed(0))
    for spec in (SPEC4, QuantSpec(3, "sym", per_channel=True)):
        codes, scale, zero_point = gptq_quantize(w, 3.0 * torch.eye(20), spec, block_size=7)
        expected = quantize_tensor(w, spec)
        assert torch.equal(codes, expected["q"])
        assert torch.equal(scale, expected["scale"]) and torch.equal(zero_point, expected["zero_point"])


def test_gptq_equals_the_column_by_column_reference_in_any_blocking_and_order():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 9, generator=g)
    x = inputs(64, 9, seed=2)
    h = 2 * x.double().T @ x.double() / 64
    expected = obq_reference(w, h, SPEC4, torch.arange(9))
    for block in (1, 2, 4, 9, 128):
        codes, _, _ = gptq_quantize(w, h, SPEC4, block_size=block, damp=0.0)
        assert torch.equal(codes, expected), block
    order = torch.argsort(torch.diag(h), descending=True, stable=True)
    codes, _, _ = gptq_quantize(w, h, SPEC4, block_size=4, damp=0.0, act_order=True)
    assert torch.equal(codes, obq_reference(w, h, SPEC4, order))
    assert not torch.equal(codes, expected)   # the order matters: the test can tell the two apart


def test_gptq_has_less_output_error_than_round_to_nearest():
    w = torch.randn(32, 48, generator=torch.Generator().manual_seed(3))
    x = inputs(400, 48, seed=4)
    codes, scale, zero_point = gptq_quantize(w, 2 * stats_of(x).gram / 400, SPEC4, block_size=16)
    gptq_error, rtn_error = output_error(dequantize(codes, scale, zero_point), w, x), output_error(rtn(w), w, x)
    assert gptq_error < 0.8 * rtn_error


def test_gptq_zeroes_a_column_no_input_uses():
    w = torch.randn(4, 6, generator=torch.Generator().manual_seed(5))
    x = inputs(50, 6, seed=6)
    x[:, 2] = 0
    codes, scale, zero_point = gptq_quantize(w, stats_of(x).gram, SPEC4)
    assert torch.equal(dequantize(codes, scale, zero_point)[:, 2], torch.zeros(4))


# ------------------------------------------------------------------------------------------- AWQ

def test_awq_scales_follow_the_formula():
    mean_abs = torch.tensor([0.5, 2.0, 8.0, 1.0])
    s = awq_scales(mean_abs, 0.5)
    raw = mean_abs.double() ** 0.5
    assert torch.allclose(s.double(), raw / (raw.max() * raw.min()).sqrt())
    assert torch.equal(awq_scales(mean_abs, 0.0), torch.ones(4))


def test_awq_with_alpha_zero_is_round_to_nearest():
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(7))
    alpha, s, _ = awq_search(w, stats_of(inputs(100, 16, seed=8, outliers=(3,))), SPEC4, grid=1)
    assert alpha == 0.0 and torch.equal(s, torch.ones(16))
    codes, _, _, w_hat = rounded(w * s, SPEC4)
    assert torch.equal(codes, quantize_tensor(w, SPEC4)["q"]) and torch.equal(w_hat / s, rtn(w))


def test_awq_search_picks_the_alpha_with_least_error_on_the_rows():
    w = torch.randn(24, 32, generator=torch.Generator().manual_seed(9))
    x = inputs(300, 32, seed=10, outliers=(1, 7, 20))
    alpha, s, errors = awq_search(w, stats_of(x), SPEC4, grid=10)
    direct = [output_error(rounded(w * awq_scales(x.abs().mean(0), k / 10), SPEC4)[3]
                           / awq_scales(x.abs().mean(0), k / 10), w, x) for k in range(10)]
    assert torch.allclose(errors.double() * 300, torch.tensor(direct, dtype=torch.float64), rtol=1e-4)
    assert alpha == min(range(10), key=lambda k: direct[k]) / 10
    assert alpha > 0 and direct[round(alpha * 10)] < direct[0]   # outlier channels: scaling pays here


# ----------------------------------------------------------------------------------- SmoothQuant

def test_smoothquant_scales_follow_the_formula_and_keep_the_product():
    w = torch.randn(10, 12, generator=torch.Generator().manual_seed(11))
    x = inputs(60, 12, seed=12, outliers=(4,))
    s = smoothing_scales(x.abs().amax(0), w, 0.5)
    for j in range(12):
        expected = x[:, j].abs().max().item() ** 0.5 / w[:, j].abs().max().item() ** 0.5
        assert abs(s[j].item() - expected) <= 1e-5 * expected
    assert torch.allclose((x / s) @ (w * s).T, x @ w.T, rtol=1e-5, atol=1e-4)
    assert (x / s).abs().amax(0).std() < x.abs().amax(0).std()   # flatter inputs


def test_smoothquant_module_is_w8a8_on_the_smoothed_input():
    linear = nn.Linear(12, 10)
    w, b = linear.weight.detach().clone(), linear.bias.detach().clone()   # the module takes the Linear over
    x = inputs(60, 12, seed=13, outliers=(4,))
    module = smooth_quantize(linear, stats_of(x), 8, 0.5)
    s = module.input_scale
    xs = x / s
    m = xs.abs().max()
    x_scale = m / 127
    xq = torch.clamp(torch.round(xs / x_scale), -127, 127) * x_scale
    t = quantize_tensor(w * s, QuantSpec(8, "sym", per_channel=True))
    expected = xq @ dequantize(t["q"], t["scale"], t["zero_point"]).T + b
    assert torch.allclose(module(x), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(module.inner.weight_q, t["q"])


def test_smoothquant_w4a8_keeps_8_bit_inputs_through_the_file_and_the_int8_path(tmp_path):
    """W4A8: 4-bit per-row codes of W·diag(s), the smoothed input on an 8-bit static grid; the file
    records the inputs' width and the loader rebuilds it; fbgemm's static int8 Linear (VNNI) takes
    the 4-bit codes as int8 values and the same 8-bit input range: the same numbers."""
    from tcompress.compress.int8_inference import StaticInt8Linear, fbgemm_static_available

    model = tiny_model(1)
    src, tgt = padded(sentences(18))
    stats = collect(model, [(src, tgt)])
    name = "decoder.layers.0.feed_forward.w_1"
    linear = model.get_submodule(name)
    w, b = linear.weight.detach().clone(), linear.bias.detach().clone()
    module = smooth_quantize(linear, stats[name], 4, 0.5)
    model.decoder.layers[0].feed_forward.w_1 = module
    s = module.input_scale
    t = quantize_tensor(w * s, QuantSpec(4, "sym", per_channel=True))
    assert torch.equal(module.inner.weight_q, t["q"]) and int(t["q"].abs().max()) <= 7
    x = torch.randn(40, w.shape[1])
    m = float((stats[name].max_abs / s).max())
    xq = torch.clamp(torch.round((x / s) / (m / 127)), -127, 127) * (m / 127)   # 8-bit inputs, not 4-bit
    with torch.no_grad():
        assert torch.allclose(module(x), xq @ dequantize(t["q"], t["scale"], t["zero_point"]).T + b,
                              rtol=1e-5, atol=1e-5)
        expected = model(src, tgt)
    save_compressed(model, tmp_path / "m.safetensors")
    loaded, payload = load_model(tmp_path / "m.safetensors")
    assert payload["compression"]["quantized"][f"{name}.inner"]["act_bits"] == 8
    assert payload["compression"]["quantized"][f"{name}.inner"]["bits"] == 4
    with torch.no_grad():
        assert torch.equal(loaded(src, tgt), expected)
    if fbgemm_static_available(8):
        facts = to_int8_inference(loaded, quiet=True, activation_bits=8)
        assert facts["int8_static_linears"] == 1
        assert isinstance(loaded.get_submodule(f"{name}.inner.inner"), StaticInt8Linear)
        with torch.no_grad():
            diff = (loaded.get_submodule(name)(x) - module(x)).abs()
        # fbgemm rounds x / step its own way: an input code may land one step away, never more
        w_smooth = dequantize(t["q"], t["scale"], t["zero_point"])   # what multiplies the codes of x / s
        assert float(diff.max()) <= (m / 127) * float(w_smooth.abs().sum(1).max()) + 1e-5
        assert (diff < 1e-5).float().mean() > 0.5


# -------------------------------------------------------------------------------------- AdaRound

def test_adaround_codes_are_floor_or_ceil_and_reconstruct_better():
    w = torch.randn(16, 24, generator=torch.Generator().manual_seed(14))
    x = inputs(200, 24, seed=15)
    codes, scale, zero_point = adaround(w, stats_of(x), SPEC4, AdaRoundParams(iterations=300))
    t = quantize_tensor(w, SPEC4)
    assert torch.equal(scale, t["scale"]) and torch.equal(zero_point, t["zero_point"])
    ratio = w / scale[:, None]
    lo = torch.clamp(torch.floor(ratio) + zero_point[:, None], SPEC4.qmin, SPEC4.qmax)
    hi = torch.clamp(torch.ceil(ratio) + zero_point[:, None], SPEC4.qmin, SPEC4.qmax)
    c = codes.to(torch.int64)
    assert bool(((c == lo) | (c == hi)).all())
    assert not torch.equal(codes, t["q"])   # it rounded some weights the other way
    assert output_error(dequantize(codes, scale, zero_point), w, x) < output_error(rtn(w), w, x)


def adaround_reference(w, x, spec, params):
    """AdaRound with the output error taken from the input rows themselves and differentiated by
    autograd: the same objective and optimizer as the method's Gram-matrix form."""
    from tcompress.methods.adaround import GAMMA, ZETA, rectified_sigmoid

    t = quantize_tensor(w, spec)
    s, z = t["scale"][:, None], t["zero_point"][:, None].float()
    floor = torch.floor(w / s)
    rest = (w / s - floor).clamp(1e-4, 1 - 1e-4)
    v = (-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1)).requires_grad_()
    x = x.double()
    optimizer = torch.optim.Adam([v], lr=params.lr)
    warm = int(params.warmup * params.iterations)
    for step in range(params.iterations):
        h = rectified_sigmoid(v)
        delta = s * (torch.clamp(floor + h + z, spec.qmin, spec.qmax) - z) - w
        loss = ((x @ delta.double().T) ** 2).sum().float() / (x.shape[0] * w.shape[0])
        if step >= warm:
            beta = params.beta_end + (params.beta_start - params.beta_end) * (1 - (step - warm) / (params.iterations - warm))
            loss = loss + params.reg * (1 - (2 * h - 1).abs().pow(beta)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.clamp(floor + (v.detach() >= 0).float() + z, spec.qmin, spec.qmax)


def test_adaround_matches_the_objective_on_the_input_rows():
    w = torch.randn(12, 20, generator=torch.Generator().manual_seed(16))
    x = inputs(150, 20, seed=17)
    params = AdaRoundParams(iterations=120)
    codes, _, _ = adaround(w, stats_of(x), SPEC4, params)
    reference = adaround_reference(w, x, SPEC4, params)
    assert (codes.float() == reference).float().mean() >= 0.99   # a weight at the boundary may tip either way


# ------------------------------------------------------------------- statistics and stored form

TINY = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0)


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return make_model(TINY, Vocab(src_size=30, tgt_size=30)).eval()


def sentences(seed: int):
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(5):
        n, m = int(torch.randint(3, 8, (1,), generator=g)), int(torch.randint(3, 8, (1,), generator=g))
        pairs.append((torch.randint(4, 30, (n,), generator=g), torch.randint(4, 30, (m,), generator=g)))
    return pairs


def padded(pairs):
    def pad(rows):
        out = torch.full((len(rows), max(len(r) for r in rows)), PAD)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out
    return pad([s for s, _ in pairs]), pad([t for _, t in pairs])


def test_statistics_equal_those_of_each_sentence_alone():
    """Padded batches (one with target and source equally long) give the statistics of every real
    token's input and nothing else: the same as running each sentence unpadded."""
    model, pairs = tiny_model(), sentences(16)
    g = torch.Generator().manual_seed(19)
    # The first batch's source and target are equally long, with padding in different places.
    pairs[:2] = [(torch.randint(4, 30, (5,), generator=g), torch.randint(4, 30, (3,), generator=g)),
                 (torch.randint(4, 30, (3,), generator=g), torch.randint(4, 30, (5,), generator=g))]
    assert padded(pairs[:2])[0].shape == padded(pairs[:2])[1].shape
    stats = collect(model, [padded(pairs[:2]), padded(pairs[2:])])
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = [m.register_forward_hook(lambda mod, a, o, name=name: seen.setdefault(name, []).append(a[0][0]))
             for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for src, tgt in pairs:
            model(src[None], tgt[None])
    for h in hooks:
        h.remove()
    assert set(stats) == set(seen) and "decoder.layers.0.src_attn.k_proj" in stats
    for name, rows in seen.items():
        x = torch.cat(rows).double()
        assert stats[name].count == x.shape[0], name
        assert torch.allclose(stats[name].gram, x.T @ x, rtol=1e-5, atol=1e-5), name
        assert torch.allclose(stats[name].mean_abs, x.abs().mean(0).float(), rtol=1e-5, atol=1e-6), name
        assert torch.allclose(stats[name].max_abs, x.abs().amax(0).float(), rtol=1e-5, atol=1e-6), name


def test_statistics_file_round_trip(tmp_path):
    stats = collect(tiny_model(), [padded(sentences(17))])
    save(stats, tmp_path / "stats.safetensors", {"batches": 1})
    back = load(tmp_path / "stats.safetensors")
    assert set(back) == set(stats)
    for name, s in stats.items():
        assert torch.equal(back[name].gram, s.gram) and back[name].count == s.count
        assert torch.equal(back[name].max_abs, s.max_abs) and torch.equal(back[name].mean_abs, s.mean_abs)


def test_input_scaled_form_packs_loads_and_decodes_in_int8(tmp_path):
    """AWQ's and SmoothQuant's stored form: the file holds per-row codes and the scale vector; the
    one loader rebuilds both forms and computes the same outputs; --int8 keeps the division."""
    model = tiny_model(1)
    src, tgt = padded(sentences(18))
    stats = collect(model, [(src, tgt)])
    awq_name, sq_name = "encoder.layers.0.feed_forward.w_1", "decoder.layers.0.self_attn.q_proj"
    linear = model.get_submodule(awq_name)
    _, s, _ = awq_search(linear.weight, stats[awq_name], SPEC4, grid=5)
    s = s * torch.linspace(0.5, 2.0, s.numel())    # a scale vector that is surely not all ones
    codes, scale, zero_point, _ = rounded(linear.weight * s, SPEC4)
    wrapped = InputScaledModule.wrap(QuantizedModule.from_codes(linear, SPEC4, codes, scale, zero_point), s)
    model.encoder.layers[0].feed_forward.w_1 = wrapped
    sq = smooth_quantize(model.get_submodule(sq_name), stats[sq_name], 8, 0.5)
    model.decoder.layers[0].self_attn.q_proj = sq
    with torch.no_grad():
        x = torch.randn(3, 16)
        assert torch.allclose(wrapped(x), (x / s) @ dequantize(codes, scale, zero_point).T + linear.bias, atol=1e-6)
        expected = model(src, tgt)
    save_compressed(model, tmp_path / "m.safetensors")
    loaded, payload = load_model(tmp_path / "m.safetensors")
    assert set(payload["compression"]) == {"input_scaled", "quantized"}
    assert set(payload["compression"]["quantized"]) == {f"{awq_name}.inner", f"{sq_name}.inner"}
    back = loaded.get_submodule(awq_name)
    assert isinstance(back, InputScaledModule) and torch.equal(back.input_scale, s)
    assert torch.equal(back.inner.weight_q, codes)
    with torch.no_grad():
        assert torch.equal(loaded(src, tgt), expected)
    to_int8_inference(loaded, kernel="float", quiet=True, activation_bits=8)
    assert isinstance(loaded.get_submodule(awq_name), InputScaledModule)
    assert isinstance(loaded.get_submodule(f"{awq_name}.inner"), Int8Linear)
    with torch.no_grad():
        int8 = loaded(src, tgt)
    assert (int8 - expected).abs().max() < 0.05 * expected.abs().max()


# ------------------------------------------------------------------------------- the pipeline

def _params(tmp_path, **overrides):
    import yaml

    from conftest import tiny_params
    from tcompress.params import load_params

    catalog = {"gptq": {"modes": ["asym"], "bits": [4, 3], "groups": ["full"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(**overrides, catalog=catalog)))
    return load_params(tmp_path / "params.yaml")


def test_the_calibrate_stage_is_on_only_for_a_calibrated_cell_and_ignores_the_bits(tmp_path):
    from tcompress.plan import resolve

    assert resolve(_params(tmp_path, methods=["ptq"]))["calibrate"] == {"enabled": False}
    four = resolve(_params(tmp_path, methods=["ptq", "gptq"], gptq={"bits": [4]}))
    three = resolve(_params(tmp_path, methods=["ptq", "gptq"], gptq={"bits": [3]}))
    assert four["calibrate"] == three["calibrate"] == {"enabled": True, "batches": 8, "batch_tokens": 3000,
                                                      "seed": 1234}
    assert "gptq-asym-4-full" in four["cells"]["cells"] and "gptq-asym-3-full" in three["cells"]["cells"]


@pytest.mark.slow
def test_calibrated_cells_through_dvc_repro(tmp_path_factory, shared_cache):
    """The four methods' cells on the tiny project: the calibrate stage runs once, each cell's plan
    holds its statistics' hash, each artifact holds the method's stored form and is scored; a changed
    bit width then reruns that cell and neither the statistics nor the others."""
    import json

    import yaml

    from conftest import dvc, ran_stages, repro_committed, scored_cells, tiny_catalog, tiny_params

    grid = {"gptq": {"modes": ["asym"], "bits": [4], "groups": ["full"]},
            "awq": {"modes": ["asym"], "bits": [4], "groups": ["full"]},
            "smoothquant": {"bits": [8], "groups": ["full"]},
            "adaround": {"modes": ["asym"], "bits": [4], "groups": ["att"]}}
    catalog = tiny_catalog(**{**grid, "gptq": {**grid["gptq"], "bits": [4, 3]}})
    params = tiny_params(methods=list(grid), **{**grid, "adaround": {**grid["adaround"], "iterations": 20}},
                         catalog=catalog, calibration={"batches": 2, "batch_tokens": 400})
    project = repro_committed(tmp_path_factory, shared_cache, "ptq_sota", params)
    cells = {"gptq-asym-4-full", "awq-asym-4-full", "smoothquant-8-full", "adaround-asym-4-att"}
    assert scored_cells(project) == cells
    stats = project / "data/calibration/stats.safetensors"
    assert json.loads((project / "data/calibration/calibration.json").read_text())["batches_run"] == 2
    for cell in cells:
        plan = json.loads((project / f"data/plan/cells/{cell}.json").read_text())
        assert plan["calibration_file"] == "data/calibration/stats.safetensors"
        from tcompress.closure import file_digest
        assert plan["inputs"]["calibration"] == file_digest(stats)
    forms = {cell: set(load_model(project / f"data/cells/{cell}/model.safetensors")[1]["compression"])
             for cell in cells}
    assert forms["awq-asym-4-full"] == forms["smoothquant-8-full"] == {"input_scaled", "quantized"}
    assert forms["gptq-asym-4-full"] == forms["adaround-asym-4-att"] == {"quantized"}
    assert "bleu_int8" in json.loads((project / "metrics/cells/smoothquant-8-full.json").read_text())

    params["gptq"]["bits"] = [3]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = ran_stages(dvc(["repro"], project).stdout)
    assert {s for s in stages if s.startswith("cell@")} == {"cell@gptq-asym-4-full", "cell@gptq-asym-3-full"}
    assert "calibrate" not in stages
