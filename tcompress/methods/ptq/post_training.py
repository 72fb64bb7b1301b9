"""Post-training quantization of a layer group (the thesis's experiment one, §3.4.1 and §4.2).

Weights and biases of the selected modules are quantized from their own ranges
(``QuantizedModule``); their float inputs and outputs from ranges observed on calibration batches of
the training split. Each selected module gets forward hooks that record its float input and output.
The range used for quantization is chosen by ``clip`` (Distiller's clip modes, seed 000 §3.4.1 and
seed 001 §3.3):

- ``none``: the minimum and maximum seen over all calibration batches;
- ``percentile``: the p-th and (100−p)-th percentiles (nearest rank: the k-th largest and k-th
  smallest value, k = ceil((1 − p/100)·n)), computed per batch and averaged over batches (an
  outlier token then moves the range by 1/batches of its size instead of setting it);
- ``std``: mean ± n·std over all values, never wider than [min, max].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

from tcompress.compress.linear_quant import QuantSpec
from tcompress.compress.quantized import ACTIVATION_SITES, QuantizedModule
from tcompress.compress.walker import group_modules, replace_module

@dataclass(frozen=True)
class ClipConfig:
    mode: str = "none"
    percentile: float = 99.99
    n_std: float = 3.0


@dataclass
class RangeObserver:
    """Running statistics of one activation tensor site."""
    clip: ClipConfig
    lo: float = float("inf")
    hi: float = float("-inf")
    total: float = 0.0
    total_sq: float = 0.0
    count: int = 0
    batch_quantiles: list[tuple[float, float]] = field(default_factory=list)

    def observe(self, x: torch.Tensor) -> None:
        x = x.detach().float().reshape(-1)
        lo, hi = torch.aminmax(x)
        self.lo, self.hi = min(self.lo, lo.item()), max(self.hi, hi.item())
        self.count += x.numel()
        if self.clip.mode == "std":
            self.total += x.sum(dtype=torch.float64).item()
            self.total_sq += torch.dot(x, x).double().item()
        if self.clip.mode == "percentile":
            # Only the tails matter: top-k of k ≪ n is linear time, unlike a sort-based quantile.
            k = max(1, math.ceil(round((100.0 - self.clip.percentile) / 100.0 * x.numel(), 6)))  # no 1e-16 off-by-one
            hi = torch.topk(x, k, sorted=False).values.min()
            lo = torch.topk(x, k, largest=False, sorted=False).values.max()
            self.batch_quantiles.append((lo.item(), hi.item()))

    def range(self) -> tuple[float, float]:
        if self.count == 0:
            raise RuntimeError("no activations were observed; calibration saw no batch through this module")
        if self.clip.mode == "percentile":
            n = len(self.batch_quantiles)
            return (sum(q[0] for q in self.batch_quantiles) / n, sum(q[1] for q in self.batch_quantiles) / n)
        if self.clip.mode == "std":
            mean = self.total / self.count
            std = max(self.total_sq / self.count - mean * mean, 0.0) ** 0.5
            return max(self.lo, mean - self.clip.n_std * std), min(self.hi, mean + self.clip.n_std * std)
        return self.lo, self.hi


def _is_float(x: object) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point()


@torch.no_grad()
def calibrate(model: nn.Module, modules: dict[str, nn.Module], batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
              clip: ClipConfig) -> dict[str, dict[str, tuple[float, float]]]:
    """Run ``model(src, tgt_in)`` over ``batches`` and return each module's input/output ranges.

    Embedding inputs are token ids, so those modules get an output range only.
    """
    observers: dict[str, dict[str, RangeObserver]] = {name: {} for name in modules}
    handles = []
    for name, module in modules.items():
        def hook(mod, args, out, name=name):
            sites = observers[name]
            if args and _is_float(args[0]):
                sites.setdefault("input", RangeObserver(clip)).observe(args[0])
            if _is_float(out):
                sites.setdefault("output", RangeObserver(clip)).observe(out)
        handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        for src, tgt_in in batches:
            model(src, tgt_in)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    silent = [name for name, sites in observers.items() if not sites]
    if silent:
        # Without this, a module would quietly keep float activations in an "activation-quantized" model.
        raise ValueError(f"calibration saw no activation of {silent[0]!r} ({len(silent)} module(s)); "
                         "it needs at least one batch that runs through every selected module")
    return {name: {site: obs.range() for site, obs in sites.items()} for name, sites in observers.items()}


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
