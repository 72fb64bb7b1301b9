"""Post-training quantization (experiment one of the thesis, §3.4.1 and §4.2).

Weights and biases of the selected modules are quantized from their own ranges; their float inputs
and outputs from ranges observed on calibration batches of the training split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

from tcompress.compress.calibration import ClipConfig, calibrate
from tcompress.compress.linear_quant import QuantSpec
from tcompress.compress.walker import group_modules, replace_module
from tcompress.compress.quantized import ACTIVATION_SITES, QuantizedModule


@dataclass(frozen=True)
class PTQConfig:
    bits: int
    mode: str = "sym"
    per_channel: bool = False
    activations: str = "both"   # none | inputs | both (inputs and outputs, as Distiller's PTQ)
    clip: ClipConfig = field(default_factory=ClipConfig)


def post_training_quantize(model: nn.Module, config: PTQConfig, group: str,
                           calibration_batches: Iterable[tuple[torch.Tensor, torch.Tensor]] = ()) -> dict:
    """Replace the modules of ``group`` by their ``QuantizedModule``s, in place; activation ranges
    come from ``calibration_batches`` of (src, tgt_in). Returns how many modules and their ranges."""
    modules = group_modules(model, group)
    spec = QuantSpec(config.bits, config.mode, config.per_channel)
    sites = ACTIVATION_SITES[config.activations]
    ranges = calibrate(model, modules, calibration_batches, config.clip) if sites else {}
    ranges = {name: {s: r for s, r in found.items() if s in sites} for name, found in ranges.items()}
    for name, module in modules.items():
        replace_module(model, module, QuantizedModule.from_float(module, spec, ranges.get(name)))
    return {"modules": len(modules), "activation_ranges": {n: r for n, r in ranges.items()}}
