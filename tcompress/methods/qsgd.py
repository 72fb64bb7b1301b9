"""QSGD-style stochastic quantized training (seed 002 §2.2, after Alistarh et al.'s QSGD).

Each weight matrix of the selected modules is split into vectors v (``bucket: row``, the default:
each output row; or ``tensor``: the whole matrix) and, in every training forward pass, replaced by

    Q_s(v_i) = ‖v‖ · sign(v_i) · ξ_i,   ξ_i = l/s or (l+1)/s,  P[(l+1)/s] = |v_i|/‖v‖ · s − l,

where l = ⌊|v_i|/‖v‖ · s⌋: stochastic rounding between the two nearest of s levels, so that
E[Q_s(v)] = v (tested), and Q_s(0) = 0. The gradient is the straight-through one. ‖v‖ is the
Euclidean norm as in the seed (``norm: l2``) or the largest |v_i| (``norm: max``).

Levels from the bits: s = 2^(b−1) − 1, so a code sign·l ∈ [−s, s] fits b-bit two's complement
(8 bits: s = 127; 4: 7; 2: 1). b = 1 also gets s = 1: codes −1, 0, 1 (ternary), which need 2 bits,
and the file and the formula ratio count 2. At export the codes are nearest rounding (``export:
nearest``, the default) or one seeded draw of Q_s (``export: stochastic``), stored as integer codes with
step ‖v‖/s per bucket (``QuantizedModule``, weights only; biases stay float). With the seed's Euclidean
norm few levels reach few entries: a typical entry of a 256-wide row has |v_i|/‖v‖ near 1/16, so at
s = 7 (4 bits) and s = 1 (2 and 1 bits) nearest rounding sends most entries to level 0, and a draw
keeps E[Q_s(v)] = v but puts each entry at 0 or at one of a few large levels; ``norm: max`` spreads
the levels over the row's largest entry instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcompress.methods.base import GROUP, FinetuneParams, Method, low_bits_axis, register
from tcompress.schema import setting

BUCKETS = ("row", "tensor")
EVAL_SEED = 0   # eval mode's fixed draw
NORMS = ("l2", "max")
EXPORTS = ("nearest", "stochastic")

BITS = low_bits_axis("s = 2^(bits-1) - 1 levels per sign (1 bit: s = 1)")


@dataclass(frozen=True)
class QSGDParams(FinetuneParams):
    bits: Optional[tuple[int, ...]] = setting((8, 4, 2, 1), doc="grid key; null: the top-level bits")
    groups: Optional[tuple[str, ...]] = setting(("att",), doc="grid key; null: the top-level groups")
    bucket: str = setting("row", choices=BUCKETS, doc="the vector v whose norm scales its entries")
    norm: str = setting("l2", choices=NORMS, doc="‖v‖: Euclidean (the seed) or max |v_i|")
    export: str = setting("nearest", choices=EXPORTS, doc="the stored codes: nearest rounding, or one seeded "
                          "draw of Q_s")


def levels(bits: int) -> int:
    """s, the number of nonzero levels per sign, for a bit width."""
    return max(1, 2 ** (bits - 1) - 1)


def code_bits(bits: int) -> int:
    """Bits one code needs: codes are −s…s."""
    return (2 * levels(bits)).bit_length()


def _norms(v, bucket: str, norm: str):
    rows = v.shape[0] if bucket == "row" and v.dim() > 1 else 1
    flat = v.detach().float().reshape(rows, -1)
    n = flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)
    return n.reshape(-1, *([1] * (v.dim() - 1))) if rows > 1 else n.reshape(())


def qsgd_levels(v, s: int, bucket: str = "tensor", norm: str = "l2", stochastic: bool = True, generator=None):
    """Signed level indices q ∈ [−s, s] and the step ‖v‖/s per bucket, so that Q_s(v) = q·step."""
    import torch

    n = _norms(v, bucket, norm)
    a = v.detach().float().abs() / n.clamp(min=torch.finfo(torch.float32).tiny) * s   # |v_i|/‖v‖·s ∈ [0, s]
    if stochastic:
        low = a.floor()
        u = torch.rand(a.shape, generator=generator, device=a.device)
        level = low + (u < a - low).float()
    else:
        level = a.round()
    q = torch.sign(v.detach().float()) * level.clamp(max=s)
    return q, n / s


def qsgd(v, s: int, bucket: str = "tensor", norm: str = "l2", generator=None):
    """One draw of Q_s(v), seed 002's formula (no gradient rule)."""
    q, step = qsgd_levels(v, s, bucket, norm, stochastic=True, generator=generator)
    return (q * step).to(v.dtype)


def _quantizer(s: int, params: QSGDParams):
    """Q_s draws with the straight-through gradient in training; in eval mode (the loop's validation
    decodes) the kind of codes the export stores: one fixed draw (the same generator seed at every
    call, so one model throughout a decode), or nearest rounding."""
    import torch
    from torch import nn

    from tcompress.compress.codebook import straight_through

    class QSGD(nn.Module):
        def forward(self, w):
            if self.training:
                q, step = qsgd_levels(w, s, params.bucket, params.norm, stochastic=True)
            else:
                draw = params.export == "stochastic"
                generator = torch.Generator(device=w.device).manual_seed(EVAL_SEED) if draw else None
                q, step = qsgd_levels(w, s, params.bucket, params.norm, stochastic=draw, generator=generator)
            return straight_through(w, (q * step).to(w.dtype))

        def extra_repr(self) -> str:
            return f"s={s}, bucket={params.bucket}, norm={params.norm}"
    return QSGD()


def export_codes(model, wrappers: list, s: int, bits: int, params: QSGDParams, seed: int) -> None:
    """Each trained wrapper -> a QuantizedModule holding the weight's codes and per-bucket steps."""
    import torch

    from tcompress.compress.linear_quant import QuantSpec
    from tcompress.compress.quantized import QuantizedModule
    from tcompress.compress.walker import replace_module

    generator = torch.Generator().manual_seed(seed)
    spec = QuantSpec(max(2, bits), "sym", per_channel=params.bucket == "row")
    for wrapper in wrappers:
        inner = wrapper.inner
        q, step = qsgd_levels(inner.weight, s, params.bucket, params.norm,
                              stochastic=params.export == "stochastic", generator=generator)
        stored = QuantizedModule(inner, spec, params=("weight",))
        with torch.no_grad():
            stored.weight_q.copy_(q.to(stored.weight_q.dtype))
            stored.weight_scale.copy_(step.reshape(stored.weight_scale.shape))
        stored.refresh()
        replace_module(model, wrapper, stored)


def compress(model, cell, params: QSGDParams, ctx) -> dict:
    from tcompress.compress.codebook import shadow_weights
    from tcompress.compress.ratio import quantization_ratio
    from tcompress.model import count_parameters

    n_model, s = count_parameters(model), levels(cell["bits"])
    wrappers = shadow_weights(model, cell["group"], lambda module: _quantizer(s, params))
    coded = sum(w.inner.weight.numel() for w in wrappers)
    facts = ctx.finetune(model, [])
    export_codes(model, wrappers, s, cell["bits"], params, ctx.seed)
    return {**facts, "n_model": n_model, "n_compressed": coded, "levels": s, "code_bits": code_bits(cell["bits"]),
            "compression_ratio": round(quantization_ratio(n_model, coded, code_bits(cell["bits"])), 4)}


def _row_label(values) -> str:
    return f"{values['bits']}-bit (s = {levels(values['bits'])})"


METHOD = register(Method(
    name="qsgd", title="QSGD-style stochastic quantized training", params=QSGDParams, axes=(BITS, GROUP),
    catalog={"bits": (8, 4, 2, 1), "groups": ("att", "att+emb")}, compress=compress,
    row_axes=("bits",), row_label=_row_label, order=70,
))
