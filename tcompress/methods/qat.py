"""Quantization-aware training (the thesis's experiment three, §3.4.3 and §4.4; FullyQT, seed 001).

The selected modules are wrapped in fake-quantizing shadows (straight-through gradient, float
shadow weights, EMA activation ranges) and the baseline is fine-tuned through the one training
loop; the result is exported to the same integer artifact as PTQ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcompress.methods.base import BITS, GROUP, MODE, QUANT_GROUPS, FinetuneParams, Method, register
from tcompress.methods.ptq import ACTIVATIONS, quant_row_label
from tcompress.schema import setting


@dataclass(frozen=True)
class QATParams(FinetuneParams):
    bits: Optional[tuple[int, ...]] = setting((4,), doc="grid key; null: the top-level bits")
    modes: Optional[tuple[str, ...]] = setting(("sym",), doc="grid key; null: the top-level modes")
    groups: Optional[tuple[str, ...]] = setting(("full",), doc="grid key; null: the top-level groups")
    per_channel: bool = setting(True, doc="one weight range per output row ('bucketing', FullyQT §3.3)")
    activations: str = setting("none", choices=ACTIVATIONS, doc="quantized float activations of each module: "
                               "none, inputs (what an integer kernel consumes), or both (inputs and outputs)")
    ema_momentum: float = setting(0.9, lo=0.0, hi=1.0, doc="activation ranges: exponential moving average")
    start_step: int = setting(0, lo=0, doc="delayed start: float forward (ranges tracked) before this step")


def compress(model, cell, params: QATParams, ctx) -> dict:
    from tcompress.compress.qat import QATConfig, quantization_aware
    from tcompress.compress.ratio import quantization_ratio
    from tcompress.layer_groups import group_parameter_count
    from tcompress.model import count_parameters

    n_model, n_compressed = count_parameters(model), group_parameter_count(model, cell["group"])
    config = QATConfig(bits=cell["bits"], mode=cell["mode"], per_channel=params.per_channel,
                       activations=params.activations, ema_momentum=params.ema_momentum,
                       start_step=params.start_step)
    wiring = quantization_aware(model, config, cell["group"])
    facts = ctx.finetune(model, wiring["hooks"])
    wiring["finalize"](model)
    return {**facts, "n_model": n_model, "n_compressed": n_compressed,
            "compression_ratio": round(quantization_ratio(n_model, n_compressed, cell["bits"]), 4)}


METHOD = register(Method(
    name="qat", title="Quantization-aware training", params=QATParams, axes=(MODE, BITS, GROUP),
    catalog={"modes": ("sym", "asym"), "bits": (16, 8, 4, 3), "groups": QUANT_GROUPS},
    compress=compress, row_axes=("bits", "mode"), row_label=quant_row_label,
    series=lambda v: f"qat/{v['mode']}", order=20,
))
