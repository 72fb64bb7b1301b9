"""GPTQ (Frantar et al., 2023): weight-only rounding that corrects each column's error on the columns
not yet quantized, using the layer's input Hessian.

For a Linear with weight W (d_out, d_in) and calibration inputs X (n, d_in), the layer-wise objective
‖W·Xᵀ − Ŵ·Xᵀ‖² has Hessian H = 2·XᵀX/n, the same for every output row. Columns are quantized one at
a time (in order, or with ``act_order`` by decreasing diag(H)); the error e_j = (w_j − q_j)/[H⁻¹]_jj of
column j is then spread over the columns after it, w_k −= e_j·[H⁻¹]_jk, where H⁻¹ is that of the
columns still unquantized. The upper Cholesky factor of H⁻¹ holds every one of those rows at once,
and updates are applied lazily per block of ``block_size`` columns (the paper's §4 steps 1–3).
H gets ``damp``·mean(diag H) added to its diagonal; a column no input ever used (diag 0) is set to
zero, as the reference code does.

Step sizes and zero points are those of round-to-nearest, one per output row from the row's own
range (``per_channel`` PTQ's), fixed before any column is quantized, so GPTQ changes the codes, not
the grid: with H a multiple of the identity it gives round-to-nearest's codes exactly (tested).
The result is an ordinary ``QuantizedModule`` (per-row codes, the bias kept float), so packing,
the loader, ``--int8`` decoding and export take it as they take PTQ's.

Deviation from the paper: each layer's H comes from the baseline's own inputs (the ``calibrate``
stage's Gram matrices, computed once for every cell), not from inputs that have already passed
through the layers quantized before it. Per-group step sizes (a step per 128 columns) would need a
stored form of their own and are not offered. Embeddings and LayerNorms stay float.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcompress.compress.gptq import gptq_quantize  # noqa: F401  (the rounding itself; mixed uses it too)
from tcompress.methods.base import BITS, LINEAR_GROUP, MODE, Method, register
from tcompress.schema import setting


@dataclass(frozen=True)
class GPTQParams:
    modes: Optional[tuple[str, ...]] = setting(("asym",), doc="grid key; null: the top-level modes")
    bits: Optional[tuple[int, ...]] = setting((4, 3), doc="grid key; null: the top-level bits")
    groups: Optional[tuple[str, ...]] = setting(("full",), doc="grid key; null: the top-level groups")
    block_size: int = setting(128, lo=1, doc="columns per lazy batch of updates (the result does not depend on it)")
    damp: float = setting(0.01, lo=0.0, doc="added to H's diagonal, as a fraction of its mean")
    act_order: bool = setting(False, doc="quantize columns by decreasing diag(H) instead of in order")


def compress(model, cell, params: GPTQParams, ctx) -> dict:
    from tcompress.compress.linear_quant import QuantSpec
    from tcompress.compress.quantized import round_linears

    stats = ctx.calibration()
    spec = QuantSpec(cell["bits"], cell["mode"], per_channel=True)

    def rounding(name, linear):
        hessian = 2 * stats[name].gram / stats[name].count
        return gptq_quantize(linear.weight, hessian, spec, params.block_size, params.damp, params.act_order)

    return round_linears(model, cell["group"], spec, rounding)


METHOD = register(Method(
    name="gptq", title="GPTQ: Hessian-based rounding with error feedback", params=GPTQParams,
    axes=(MODE, BITS, LINEAR_GROUP), catalog={"modes": ("asym",), "bits": (4, 3), "groups": ("full",)},
    compress=compress, row_axes=("bits", "mode"),
    row_label=lambda v: f"{v['bits']}-bit {'Sym.' if v['mode'] == 'sym' else 'Asym.'} GPTQ",
    series=lambda v: f"gptq/{v['mode']}", order=90, calibrated=True, keeps_zeros=False,
))
