"""AWQ (Lin et al., 2024): activation-aware weight quantization, weight-only.

Input channels that carry large activations matter more to a Linear's output, so their weights are
scaled up before rounding and the input scaled down by the same factor: with s = mean|x|^α per
input channel (normalized by √(max s · min s), as the reference code does),

    y = Q(W·diag(s)) · diag(s)⁻¹ x,

which protects the salient channels' weights from rounding error at the cost of the others. α is
searched over a grid 0, 1/grid, …, (grid−1)/grid per Linear, minimizing the output error on the
calibration inputs, ‖(Q(W·diag(s))·diag(s)⁻¹ − W)·Xᵀ‖², computed exactly over every calibration
token from the ``calibrate`` stage's Gram matrix XᵀX; mean|x| is that stage's too. α = 0 is s = 1,
round-to-nearest itself, so the search never does worse than round-to-nearest on those inputs.

Stored form: the effective weight Q(W·diag(s))·diag(s)⁻¹ has a different step per column, which
per-row codes cannot hold, and folding diag(s)⁻¹ into the op before (a LayerNorm shared by q, k and
v, or the previous Linear) would tie Linears together. So each Linear becomes an
``InputScaledModule``: per-row codes of W·diag(s) (a ``QuantizedModule``, bias float) and the
vector s, by which it divides its input. Packing, the loader and ``--int8`` decoding take it as is
(the int8 Linear computes on x / s). A CTranslate2 export folds 1/s into the dequantized weight's
columns and writes them as float (its manifest names the fold), so the codes are not carried over.

Simplifications: scales are searched per Linear, not per block of Linears sharing an input; no
weight-clipping search; step sizes per output row (no per-group steps); each Linear's inputs are
the baseline's (computed once), not those of a model whose earlier layers are already quantized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcompress.methods.base import BITS, LINEAR_GROUP, MODE, Method, register
from tcompress.schema import setting


@dataclass(frozen=True)
class AWQParams:
    modes: Optional[tuple[str, ...]] = setting(("asym",), doc="grid key; null: the top-level modes")
    bits: Optional[tuple[int, ...]] = setting((4, 3), doc="grid key; null: the top-level bits")
    groups: Optional[tuple[str, ...]] = setting(("full",), doc="grid key; null: the top-level groups")
    grid: int = setting(20, lo=1, doc="α searched over 0, 1/grid, …, (grid − 1)/grid")


def awq_scales(mean_abs, alpha: float):
    """s = mean|x|^α per input channel, normalized so that max(s)·min(s) = 1."""
    s = mean_abs.double().pow(alpha).clamp(min=1e-4)
    return (s / (s.max() * s.min()).sqrt()).float()


def rounded(weight, spec):
    """Round-to-nearest of ``weight`` with one step per output row: (codes, scale, zero_point, dequantized)."""
    from tcompress.compress.linear_quant import dequantize, quantize_tensor

    t = quantize_tensor(weight.detach().float(), spec)
    return t["q"], t["scale"], t["zero_point"], dequantize(t["q"], t["scale"], t["zero_point"])


def awq_search(weight, stats, spec, grid: int):
    """The α of the grid whose scaled rounding has the least output error on the calibration inputs;
    returns (α, s, the error of every α in grid order)."""
    import torch

    errors = []
    for k in range(grid):
        s = awq_scales(stats.mean_abs, k / grid)
        w_hat = rounded(weight * s, spec)[3] / s
        errors.append(float(stats.output_error(w_hat - weight.detach())))
    best = min(range(grid), key=lambda k: errors[k])   # the first of equal errors: the smallest α
    return best / grid, awq_scales(stats.mean_abs, best / grid), torch.tensor(errors)


def compress(model, cell, params: AWQParams, ctx) -> dict:
    from tcompress.compress.linear_quant import QuantSpec
    from tcompress.compress.quantized import InputScaledModule, QuantizedModule
    from tcompress.compress.ratio import quantization_ratio
    from tcompress.compress.walker import group_linears, replace_module
    from tcompress.model import count_parameters

    stats = ctx.calibration()
    spec = QuantSpec(cell["bits"], cell["mode"], per_channel=True)
    linears = group_linears(model, cell["group"])
    n_model, coded = count_parameters(model), sum(linear.weight.numel() for linear in linears.values())
    alphas = {}
    for name, linear in linears.items():
        alphas[name], s, _ = awq_search(linear.weight, stats[name], spec, params.grid)
        codes, scale, zero_point, _ = rounded(linear.weight * s, spec)
        stored = QuantizedModule.from_codes(linear, spec, codes, scale, zero_point)
        replace_module(model, linear, InputScaledModule.wrap(stored, s))
    return {"n_model": n_model, "n_compressed": coded, "linears": len(linears), "alphas": alphas,
            "mean_alpha": round(sum(alphas.values()) / len(alphas), 4),
            "compression_ratio": round(quantization_ratio(n_model, coded, cell["bits"]), 4)}


METHOD = register(Method(
    name="awq", title="AWQ: activation-aware scaling, then rounding", params=AWQParams,
    axes=(MODE, BITS, LINEAR_GROUP), catalog={"modes": ("asym",), "bits": (4, 3), "groups": ("full",)},
    compress=compress, row_axes=("bits", "mode"),
    row_label=lambda v: f"{v['bits']}-bit {'Sym.' if v['mode'] == 'sym' else 'Asym.'} AWQ",
    series=lambda v: f"awq/{v['mode']}", order=91, calibrated=True,
))
