"""Post-training quantization (the thesis's experiment one, §3.4.1 and §4.2; Tables 4.1–4.2).

Weights and biases of the selected modules are quantized from their own ranges; their float inputs
and outputs from ranges observed on calibration batches of the training split (this package's
``post_training``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcompress.methods.base import BITS, GROUP, MODE, QUANT_GROUPS, Method, register
from tcompress.schema import setting

ACTIVATIONS = ("none", "inputs", "both")
CLIP_MODES = ("none", "percentile", "std")


@dataclass(frozen=True)
class PTQParams:
    bits: Optional[tuple[int, ...]] = setting(None, doc="grid key; null: the top-level bits")
    modes: Optional[tuple[str, ...]] = setting(None, doc="grid key; null: the top-level modes")
    groups: Optional[tuple[str, ...]] = setting(None, doc="grid key; null: the top-level groups")
    calibration_batches: int = setting(8, lo=1, doc="training batches whose activations set the ranges")
    calibration_batch_tokens: int = setting(3000, lo=16)
    per_channel: bool = setting(False, doc="one weight range per output channel instead of per tensor")
    activations: str = setting("both", choices=ACTIVATIONS, doc="quantized float activations of each module: "
                               "none, inputs, or both (inputs and outputs, as Distiller's PTQ)")
    clip: str = setting("none", choices=CLIP_MODES, doc="activation range: min/max, percentiles or mean ± n·std")
    clip_percentile: float = setting(99.99, lo=50.0, hi=100.0)
    clip_std: float = setting(3.0, lo=0.0, lo_open=True)


def compress(model, cell, params: PTQParams, ctx) -> dict:
    from tcompress.compress.ratio import quantization_ratio
    from tcompress.layer_groups import group_parameter_count
    from tcompress.methods.ptq.post_training import ClipConfig, PTQConfig, post_training_quantize
    from tcompress.model import count_parameters

    n_model, n_compressed = count_parameters(model), group_parameter_count(model, cell["group"])
    config = PTQConfig(bits=cell["bits"], mode=cell["mode"], per_channel=params.per_channel,
                       activations=params.activations,
                       clip=ClipConfig(params.clip, params.clip_percentile, params.clip_std))
    batches = ctx.calibration_batches(params.calibration_batches, params.calibration_batch_tokens) \
        if config.activations != "none" else []
    post_training_quantize(model, config, cell["group"], calibration_batches=batches)
    return {"n_model": n_model, "n_compressed": n_compressed, "calibration_batches": len(batches),
            "compression_ratio": round(quantization_ratio(n_model, n_compressed, cell["bits"]), 4)}


def quant_row_label(values) -> str:
    return f"{values['bits']}-bit {'Sym.' if values['mode'] == 'sym' else 'Asym.'}"


METHOD = register(Method(
    name="ptq", title="Post-training quantization", params=PTQParams, axes=(MODE, BITS, GROUP),
    catalog={"modes": ("sym", "asym"), "bits": (16, 8, 4, 3), "groups": QUANT_GROUPS},
    compress=compress, row_axes=("bits", "mode"), row_label=quant_row_label,
    series=lambda v: f"ptq/{v['mode']}", order=10,
))
