"""SmoothQuant (Xiao et al., 2023): migrate activation outliers into the weights, then W8A8 (or W4A8).

A few input channels of a Linear carry activations far larger than the rest, which a per-tensor
activation range must cover, wasting its codes on the others. SmoothQuant divides each input
channel j by

    s_j = max|X_j|^α / max|W_j|^(1−α)

and multiplies the weight's column j by it, X·diag(s)⁻¹ · (W·diag(s))ᵀ = X·Wᵀ, so the inputs become
flatter and the weights a little less so (α = 0.5 balances the two). max|X_j| is the ``calibrate``
stage's per-channel maximum over the calibration tokens; max|W_j| the weight's column maximum. A
channel whose maximum is zero on either side keeps s_j = 1.

Then both GEMM operands are quantized symmetrically: the weight W·diag(s) at the cell's ``bits``
with one step per output row (8: SmoothQuant's W8A8; 4: W4A8), the smoothed input always at 8 bits
with one static per-tensor range, as PTQ's ``activations: inputs`` does: [−m, m] with
m = max_j max|X_j| / s_j, the smoothed inputs' exact maximum over the calibration tokens. Outputs
and biases stay float.

Stored form: an ``InputScaledModule`` (s beside a ``QuantizedModule`` holding the weight's codes and
the input's range), as AWQ's, since diag(s)⁻¹ folded into the preceding LayerNorm would be one s
for q, k and v together. ``--int8`` decoding turns the inner module into fbgemm's static int8
Linear with that range (on a CPU with VNNI), which receives x / s; at W4A8 its int8 weights are the
4-bit codes, the same numbers. Simplification: s per Linear, not
per LayerNorm; each Linear's inputs are the baseline's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcompress.methods.base import BITS, LINEAR_GROUP, Method, register
from tcompress.schema import setting

INPUT_BITS = 8   # the smoothed inputs' width, whatever the weights'


@dataclass(frozen=True)
class SmoothQuantParams:
    bits: Optional[tuple[int, ...]] = setting((8, 4), doc="grid key (the weights'; inputs are 8-bit); "
                                                          "null: the top-level bits")
    groups: Optional[tuple[str, ...]] = setting(("full",), doc="grid key; null: the top-level groups")
    alpha: float = setting(0.5, lo=0.0, hi=1.0, doc="migration strength: 0 leaves the inputs, 1 flattens them fully")


def smoothing_scales(input_max, weight, alpha: float):
    """s_j = max|X_j|^α / max|W_j|^(1−α) per input channel (1 where either maximum is zero)."""
    import torch

    x_max = input_max.double()
    w_max = weight.detach().abs().amax(0).double()
    s = x_max.pow(alpha) / w_max.pow(1 - alpha)
    return torch.where((x_max > 0) & (w_max > 0), s, torch.ones_like(s)).float()


def smooth_quantize(linear, stats, bits: int, alpha: float):
    """``linear`` as an ``InputScaledModule``: s, W·diag(s)'s symmetric per-row ``bits``-bit codes and
    the smoothed input's static 8-bit range."""
    from tcompress.compress.linear_quant import QuantSpec, quantize_tensor
    from tcompress.compress.quantized import InputScaledModule, QuantizedModule

    s = smoothing_scales(stats.max_abs, linear.weight, alpha)
    spec = QuantSpec(bits, "sym", per_channel=True)
    t = quantize_tensor(linear.weight.detach().float() * s, spec)
    m = float((stats.max_abs / s).max())
    stored = QuantizedModule.from_codes(linear, spec, t["q"], t["scale"], t["zero_point"], {"input": (-m, m)},
                                        act_bits=INPUT_BITS)
    return InputScaledModule.wrap(stored, s)


def compress(model, cell, params: SmoothQuantParams, ctx) -> dict:
    from tcompress.compress.ratio import quantization_ratio
    from tcompress.compress.walker import group_linears, replace_module
    from tcompress.model import count_parameters

    stats = ctx.calibration()
    linears = group_linears(model, cell["group"])
    n_model, coded = count_parameters(model), sum(linear.weight.numel() for linear in linears.values())
    for name, linear in linears.items():
        replace_module(model, linear, smooth_quantize(linear, stats[name], cell["bits"], params.alpha))
    return {"n_model": n_model, "n_compressed": coded, "linears": len(linears),
            "compression_ratio": round(quantization_ratio(n_model, coded, cell["bits"]), 4)}


METHOD = register(Method(
    name="smoothquant", title="SmoothQuant: outliers migrated into the weights, then W8A8 or W4A8",
    params=SmoothQuantParams,
    axes=(BITS, LINEAR_GROUP), catalog={"bits": (8, 4), "groups": ("full",)},
    compress=compress, row_axes=("bits",), row_label=lambda v: f"W{v['bits']}A{INPUT_BITS} SmoothQuant",
    order=92, calibrated=True,
))
