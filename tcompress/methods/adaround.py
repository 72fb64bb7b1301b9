"""AdaRound (Nagel et al., 2020): learned rounding, up or down, per weight, per Linear.

Round-to-nearest is not the rounding that best preserves a layer's output. AdaRound keeps
round-to-nearest's grid (one step s and zero point z per output row, from the row's range) and
learns for each weight whether to round its floor up, through a continuous variable V:

    W̃ = s · (clamp(⌊W/s⌋ + h(V) + z, q_min, q_max) − z),   h(V) = clamp(σ(V)·(ζ − γ) + γ, 0, 1)

(the rectified sigmoid, ζ = 1.1, γ = −0.1), minimizing the layer's output error on the calibration
inputs plus a regularizer that drives every h(V) to 0 or 1:

    ‖(W̃ − W)·Xᵀ‖² / (n·d_out)  +  λ · Σ (1 − |2h(V) − 1|^β),

β annealed linearly from ``beta_start`` to ``beta_end`` after the first ``warmup`` fraction of
``iterations`` (Adam, learning rate ``lr``), during which the regularizer is off. V starts where
h(V) equals the fractional part of W/s. The output error is computed exactly over every calibration
token from the ``calibrate`` stage's Gram matrix XᵀX, so an iteration costs one d_out·d_in² product
(the error's gradient, 2ΔG, reuses it) whatever the number of tokens. The final codes are
⌊W/s⌋ + z + [V ≥ 0], clamped: each within one step of round-to-nearest's (its floor or its ceiling).

The result is an ordinary ``QuantizedModule`` (per-row codes, bias float), so packing, the loader,
``--int8`` decoding and export take it as PTQ's. Each Linear is optimized alone on the baseline's
inputs (not on inputs already passed through quantized layers, and without AdaRound's asymmetric
reconstruction variant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcompress.methods.base import BITS, LINEAR_GROUP, MODE, Method, register
from tcompress.schema import setting

ZETA, GAMMA = 1.1, -0.1


@dataclass(frozen=True)
class AdaRoundParams:
    modes: Optional[tuple[str, ...]] = setting(("asym",), doc="grid key; null: the top-level modes")
    bits: Optional[tuple[int, ...]] = setting((4, 3), doc="grid key; null: the top-level bits")
    groups: Optional[tuple[str, ...]] = setting(("full",), doc="grid key; null: the top-level groups")
    iterations: int = setting(300, lo=1, doc="Adam steps per Linear")
    lr: float = setting(0.01, lo=0.0, lo_open=True)
    reg: float = setting(0.01, lo=0.0, doc="λ, the rounding regularizer's weight")
    beta_start: float = setting(20.0, lo=0.0, lo_open=True)
    beta_end: float = setting(2.0, lo=0.0, lo_open=True)
    warmup: float = setting(0.2, lo=0.0, hi=1.0, doc="fraction of the iterations without the regularizer")


def rectified_sigmoid(v):
    import torch

    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def adaround(weight, stats, spec, params: AdaRoundParams):
    """AdaRound's codes of ``weight`` (d_out, d_in) for the Linear's calibration ``stats``; returns
    (codes, scale, zero_point), the step sizes and zero points round-to-nearest's."""
    import torch

    from tcompress.compress.linear_quant import qparams, tensor_range

    w = weight.detach().float()
    scale, zero_point = qparams(*tensor_range(w, per_channel=True), spec)
    s, z = scale[:, None], zero_point[:, None].float()
    floor = torch.floor(w / s)
    rest = (w / s - floor).clamp(1e-4, 1 - 1e-4)
    v = (-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1)).requires_grad_()   # h(v) = rest
    g = stats.gram
    gram = ((g + g.T) / 2).float() / (stats.count * w.shape[0])   # the error per token and row; exactly symmetric
    optimizer = torch.optim.Adam([v], lr=params.lr)
    warm = int(params.warmup * params.iterations)
    with torch.enable_grad():
        for step in range(params.iterations):
            h = rectified_sigmoid(v)
            delta = s * (torch.clamp(floor + h + z, spec.qmin, spec.qmax) - z) - w
            # d/dΔ of the error Σ(ΔG)∘Δ is 2ΔG (G symmetric): one product per step, not autograd's two
            loss = (delta * (2 * (delta.detach() @ gram))).sum()
            if step >= warm:
                progress = (step - warm) / max(params.iterations - warm, 1)
                beta = params.beta_end + (params.beta_start - params.beta_end) * (1 - progress)
                loss = loss + params.reg * (1 - (2 * h - 1).abs().pow(beta)).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    up = (v.detach() >= 0).float()
    codes = torch.clamp(floor + up + z, spec.qmin, spec.qmax).to(spec.storage_dtype)
    return codes, scale, zero_point


def compress(model, cell, params: AdaRoundParams, ctx) -> dict:
    from tcompress.compress.linear_quant import QuantSpec
    from tcompress.compress.quantized import round_linears

    stats = ctx.calibration()
    spec = QuantSpec(cell["bits"], cell["mode"], per_channel=True)
    return round_linears(model, cell["group"], spec,
                         lambda name, linear: adaround(linear.weight, stats[name], spec, params))


METHOD = register(Method(
    name="adaround", title="AdaRound: learned rounding per Linear", params=AdaRoundParams,
    axes=(MODE, BITS, LINEAR_GROUP), catalog={"modes": ("asym",), "bits": (4, 3), "groups": ("full",)},
    compress=compress, row_axes=("bits", "mode"),
    row_label=lambda v: f"{v['bits']}-bit {'Sym.' if v['mode'] == 'sym' else 'Asym.'} AdaRound",
    series=lambda v: f"adaround/{v['mode']}", order=93, calibrated=True, keeps_zeros=False,
))
