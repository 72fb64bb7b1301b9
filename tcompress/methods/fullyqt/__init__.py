"""FullyQT, the Fully Quantized Transformer (Prato, Charlaix & Rezagholizadeh; seed 001).

``fullyqt`` trains with every matrix multiplication's inputs quantized (this package's ``modules``
wraps the model's modules and lists the points: weights, positional encodings, the embedding sums,
Q/K/V, the softmax's numerator, denominator and output, the attention output, ReLU and
feed-forward outputs, and LayerNorm's numerator, denominator, quotient and output), from ``start_step`` on (Table 4), as a fine-tune of the
baseline or, with ``from_scratch: true``, from a fresh model over the baseline's whole budget.
``fullyqt_ptq`` computes the same ranges over calibration batches of a frozen model (Table 2's
"post-quantization" row).

The ``ops`` axis says what is quantized:

- ``all``: the paper's scheme; ``all_flat``: the same without bucketing;
- ``naive``: the paper's "default approach" (Table 2): every point, no bucketing, padding counted,
  no ReLU floor, the LayerNorm denominator's gradient clamped;
- one activation alone (Table 3's ablation: ``qkv``, ``ln_den``, …), bucketed where §3.3 buckets it,
  and ``<point>_flat`` for the bucketed ones without bucketing. Weights stay float in those.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcompress.methods.base import BITS, Axis, FinetuneParams, Method, one_of, register
from tcompress.schema import setting

# Torch-free copies of the names in .modules (plan and resolve must not import torch).
ACTIVATIONS = ("emb_pos", "qkv", "softmax_num", "softmax_den", "softmax_out", "att_out", "relu_out", "ff_out",
               "ln_num", "ln_den", "ln_quot", "ln_out")
BUCKETED = ("emb_pos", "qkv", "att_out", "ff_out", "ln_num", "ln_quot", "ln_out")
OPS = ("all", "all_flat", "naive", *ACTIVATIONS, *(f"{p}_flat" for p in BUCKETED))


OPS_AXIS = Axis("ops", "ops", str, "what is quantized: all (the paper's scheme), all_flat, naive, or one "
                "activation (Table 3), with _flat for no bucketing", one_of(OPS))


@dataclass(frozen=True)
class FullyQTPTQParams:
    bits: tuple[int, ...] = setting((8,), doc="grid key (the paper: 8)")
    ops: tuple[str, ...] = setting(("all",), doc="grid key; " + OPS_AXIS.doc)
    ema_momentum: float = setting(0.9, lo=0.0, hi=1.0, doc="activation ranges: EMA of min/max (§3.1)")
    calibration_batches: int = setting(50, lo=1, doc="post-training: batches whose activations set the ranges")
    calibration_batch_tokens: int = setting(3000, lo=16)


@dataclass(frozen=True)
class FullyQTParams(FinetuneParams):
    bits: tuple[int, ...] = setting((8,), doc="grid key (the paper: 8)")
    ops: tuple[str, ...] = setting(("all", "naive"), doc="grid key; " + OPS_AXIS.doc)
    ema_momentum: float = setting(0.9, lo=0.0, hi=1.0, doc="activation ranges: EMA of min/max (§3.1)")
    start_step: int = setting(0, lo=0, doc="quantize (and track ranges) from this optimizer step on (Table 4)")


def spec_of(bits: int, ops: str, momentum: float):
    from tcompress.methods.fullyqt.modules import POINTS, FullyQTSpec

    if ops in ("all", "all_flat", "naive"):
        return FullyQTSpec(bits, frozenset(POINTS), bucketing=ops == "all", naive=ops == "naive", momentum=momentum)
    point, flat = (ops[:-5], True) if ops.endswith("_flat") else (ops, False)
    return FullyQTSpec(bits, frozenset({point}), bucketing=not flat, momentum=momentum)


def _facts(model, n_model: int, spec) -> dict:
    from tcompress.compress.artifact import parameter_bits
    from tcompress.methods.fullyqt.modules import ActQuant

    points = sorted({q.point for q in model.modules() if isinstance(q, ActQuant) and q.used})
    # The formula ratio counts parameters: weights in b bits, biases and β at 32 (ranges not counted).
    return {"n_model": n_model, "quantized_points": points, "bucketing": spec.bucketing and not spec.naive,
            "compression_ratio": round(n_model * 32 / parameter_bits(model), 4)}


def compress(model, cell, params: FullyQTParams, ctx) -> dict:
    from tcompress.compress.qat import DelayedStart
    from tcompress.methods.fullyqt.modules import freeze, fully_quantize
    from tcompress.model import count_parameters

    n_model = count_parameters(model)
    spec = spec_of(cell["bits"], cell["ops"], params.ema_momentum)
    quantizers, weights = fully_quantize(model, spec)
    facts = ctx.finetune(model, [DelayedStart([*quantizers, *weights], params.start_step)])
    freeze(model)
    return {**facts, **_facts(model, n_model, spec), "start_step": params.start_step}


def compress_ptq(model, cell, params: FullyQTPTQParams, ctx) -> dict:
    import torch

    from tcompress.methods.fullyqt.modules import freeze, fully_quantize
    from tcompress.model import count_parameters

    n_model = count_parameters(model)
    spec = spec_of(cell["bits"], cell["ops"], params.ema_momentum)
    quantizers, _ = fully_quantize(model, spec)
    batches = ctx.calibration_batches(params.calibration_batches, params.calibration_batch_tokens)
    model.eval()
    for q in quantizers:
        q.calibrating = True
    with torch.no_grad():
        for src, tgt_in in batches:
            model(src, tgt_in)
    freeze(model)
    return {**_facts(model, n_model, spec), "calibration_batches": len(batches)}


def _row_label(values) -> str:
    return f"{values['bits']}-bit, {values['ops']}"


CATALOG = {"bits": (8,), "ops": OPS}
FULLYQT = register(Method(
    name="fullyqt", title="FullyQT: every matmul input quantized (seed 001)", params=FullyQTParams,
    axes=(BITS, OPS_AXIS), catalog=CATALOG, compress=compress, row_axes=("bits", "ops"), row_label=_row_label,
    order=42,
))
FULLYQT_PTQ = register(Method(
    name="fullyqt_ptq", title="FullyQT's points, post-training (ranges from calibration)", params=FullyQTPTQParams,
    axes=(BITS, OPS_AXIS), catalog={"bits": (8,), "ops": ("all", "all_flat", "naive")}, compress=compress_ptq,
    row_axes=("bits", "ops"), row_label=_row_label, order=43,
))
