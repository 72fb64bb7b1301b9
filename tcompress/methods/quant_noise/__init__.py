"""Quant-Noise with int8, int4 and iterative product quantization (Fan et al. 2021; seed 003 §3.2).

One fine-tuning budget, then the model is stored quantized. The ``quantizer`` axis says how:
``int8`` / ``int4`` (scalar codes per weight, ``mode`` and ``per_channel`` below), ``ipq``
(subvectors of ``block`` weights, ``attention_block`` in attention projections, replaced by one
of ``centroids`` codebook entries per matrix, quantized bottom-up in ``stages`` during the budget) or ``ipq_int8`` (the same, codebooks stored
as int8). The ``rate`` axis is the percentage p of blocks quantized in each training step:

- p = 0: the budget runs float (ipq: its own staged fine-tuning only), then quantization: the
  paper's "no noise" rows;
- p = 100: every block, every step: quantization-aware training (ipq: every matrix clustered
  before the first step, its centroids trained for the whole budget);
- 0 < p < 100: Quant-Noise (the paper: p = 0.05 to 0.2).

The control, ``quant_noise-control``, runs the same budget float and stores it float. The ratio
counts the indices, the codebooks and every float parameter left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcompress.methods.base import GROUP, Axis, Budget, FinetuneParams, Method, int_range, one_of, register
from tcompress.schema import ConfigError, setting

QUANTIZERS = ("int8", "int4", "ipq", "ipq_int8")


QUANTIZER = Axis("quantizer", "quantizers", str, "int8 | int4 | ipq | ipq_int8 (codebooks in int8)", one_of(QUANTIZERS))
RATE = Axis("rate", "rates", int, "percent of blocks quantized per training step: 0 none, 100 QAT", int_range(0, 100, "a percentage"))


@dataclass(frozen=True)
class QuantNoiseParams(FinetuneParams):
    quantizers: tuple[str, ...] = setting(("int4", "ipq"), doc="grid key: " + QUANTIZER.doc)
    rates: tuple[int, ...] = setting((0, 10, 100), doc="grid key: " + RATE.doc)
    groups: Optional[tuple[str, ...]] = setting(("full",), doc="grid key; null: the top-level groups")
    block: int = setting(8, lo=1, doc="weights per block (a row's consecutive entries): the noise unit and "
                         "iPQ's subvector; it must divide every selected matrix's columns")
    attention_block: int = setting(4, lo=1, doc="iPQ: the block of attention projections, which clustering hurts "
                                   "most (fairseq's Transformer setting: 4 for attention, 8 elsewhere)")
    centroids: int = setting(256, lo=2, hi=256, doc="iPQ: codebook entries per matrix (log2 of it: bits per block)")
    stages: int = setting(4, lo=1, doc="iPQ: the selected matrices, bottom-up, quantized in this many groups")
    iterations: int = setting(20, lo=1, doc="iPQ: k-means iterations at most")
    mode: str = setting("asym", choices=("sym", "asym"), doc="int8/int4: zero point 0, or the range [min, max]")
    per_channel: bool = setting(True, doc="int8/int4: one range per output row")


def check(params: QuantNoiseParams, budget: Budget) -> None:
    total = budget.steps_per_epoch(params) * params.epochs
    if any(q.startswith("ipq") for q in params.quantizers) and total < params.stages + 1:
        raise ConfigError(f"quant_noise.stages: {params.stages} stages need more than the budget's {total} steps")


def _bits(quantizer: str) -> int:
    return int(quantizer[3:])


def compress(model, cell, params: QuantNoiseParams, ctx) -> dict:
    from tcompress.compress.artifact import stored_bits
    from tcompress.compress.codebook import weight_matrices
    from tcompress.compress.linear_quant import QuantSpec
    from tcompress.compress.ratio import quantization_ratio
    from tcompress.compress.walker import replace_module
    from tcompress.layer_groups import select_modules
    from tcompress.methods.quant_noise.modules import (
        IPQSchedule, IPQTrainingModule, NoisyScalarModule, export, split_stages, stage_starts,
    )
    from tcompress.model import count_parameters

    modules = list(weight_matrices(model, cell["group"]).values())   # model order: bottom-up
    attention = {id(m) for m in select_modules(model, "att").values()}
    if not modules:
        raise ValueError(f"layer group {cell['group']!r} has no weight matrix to quantize")
    n_model = count_parameters(model)
    n_compressed = sum(m.weight.numel() for m in modules)
    rate, quantizer = cell["rate"] / 100, cell["quantizer"]
    ipq = quantizer.startswith("ipq")
    wrappers = []
    for module in modules:
        block = params.attention_block if id(module) in attention else params.block
        wrapper = IPQTrainingModule(module, rate, block, params.centroids) if ipq else \
            NoisyScalarModule(module, QuantSpec(_bits(quantizer), params.mode, params.per_channel), rate, params.block)
        replace_module(model, module, wrapper)
        wrappers.append(wrapper)
    hooks, facts = [], {}
    if ipq:
        total = ctx.steps_per_epoch() * params.epochs
        # p = 1 (QAT): the proxy noise would drop every block; all matrices are clustered at step 0.
        stages = [wrappers] if rate >= 1 else split_stages(wrappers, params.stages)
        starts = [0] if rate >= 1 else stage_starts(total, len(stages))
        hooks.append(IPQSchedule(stages, starts, params.iterations, ctx.seed))
        facts["ipq_stage_steps"] = starts
    facts |= ctx.finetune(model, hooks)
    export(model, codebook_bits=8 if quantizer == "ipq_int8" else 32)
    if ipq:  # indices, codebooks and the float rest, against float32 everywhere
        ratio = n_model * 32 / stored_bits(model)
    else:
        ratio = quantization_ratio(n_model, n_compressed, _bits(quantizer))
    return {**facts, "n_model": n_model, "n_compressed": n_compressed, "compression_ratio": round(ratio, 4)}


def _row_label(values) -> str:
    rate = values["rate"]
    how = "no noise" if rate == 0 else "QAT (p = 1)" if rate == 100 else f"Quant-Noise p = {rate / 100:g}"
    return f"{values['quantizer']}, {how}"


METHOD = register(Method(
    name="quant_noise", title="Quant-Noise: int8, int4 and iPQ with noise rate p", params=QuantNoiseParams,
    axes=(QUANTIZER, RATE, GROUP), check=check,
    catalog={"quantizers": QUANTIZERS, "rates": (0, 10, 100), "groups": ("full",)},
    compress=compress, row_axes=("quantizer", "rate"), row_label=_row_label,
    series=lambda v: f"quant_noise/{v['quantizer']}", order=81,
))
