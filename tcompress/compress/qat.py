"""Quantization-aware training (experiment three of the thesis, §3.4.3 and §4.4; FullyQT, seed 001).

``FakeQuantModule`` keeps the float module and its parameters as the full-precision shadow weights
the optimizer updates; its forward uses them fake-quantized (weights and biases from their own
current range, float inputs and outputs from ranges tracked by an exponential moving average), with
the straight-through gradient. Until ``start_step`` the forward stays float while the ranges warm up
(FullyQT's delayed quantization, seed 001 Table 4). ``export_quantized`` turns every wrapper into
the same ``QuantizedModule`` PTQ produces, so both are evaluated and stored alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from tcompress.compress.linear_quant import QuantSpec, fake_quantize_ste, qparams, tensor_range
from tcompress.compress.walker import group_modules, replace_module
from tcompress.compress.quantized import ACTIVATION_SITES, SITES, QuantizedModule
from tcompress.training import Hook


@dataclass(frozen=True)
class QATConfig:
    bits: int
    mode: str = "sym"
    per_channel: bool = False
    activations: str = "none"  # none | inputs | both; see QATParams in config.py
    ema_momentum: float = 0.9   # FullyQT's value
    start_step: int = 0         # quantize from this optimizer step on; float (ranges tracked) before


class FakeQuantModule(nn.Module):
    def __init__(self, inner: nn.Module, spec: QuantSpec, sites: tuple[str, ...], momentum: float,
                 params: tuple[str, ...] | None = None):
        """``params``: the parameters that are quantized (all by default; FullyQT leaves biases float)."""
        super().__init__()
        self.inner, self.spec, self.momentum, self.params = inner, spec, momentum, params
        self.act_spec = QuantSpec(spec.bits, spec.mode)  # activations: one range per tensor
        self.sites = tuple(s for s in SITES if s in sites)
        self.enabled = True
        for site in self.sites:
            self.register_buffer(f"{site}_lo", torch.zeros(()))
            self.register_buffer(f"{site}_hi", torch.zeros(()))
            self.register_buffer(f"{site}_seen", torch.zeros((), dtype=torch.bool))

    def _track(self, site: str, x: torch.Tensor) -> None:
        lo, hi = torch.aminmax(x.detach().float())
        old_lo, old_hi, seen = (getattr(self, f"{site}_{k}") for k in ("lo", "hi", "seen"))
        m = self.momentum if bool(seen) else 0.0  # the first batch sets the range outright
        old_lo.copy_(m * old_lo + (1 - m) * lo)
        old_hi.copy_(m * old_hi + (1 - m) * hi)
        seen.fill_(True)

    def _activation(self, site: str, x: torch.Tensor) -> torch.Tensor:
        if self.training or not bool(getattr(self, f"{site}_seen")):
            self._track(site, x)
        if not self.enabled:
            return x
        scale, zero_point = qparams(getattr(self, f"{site}_lo"), getattr(self, f"{site}_hi"), self.act_spec)
        return fake_quantize_ste(x, scale.to(x.device), zero_point.to(x.device), self.act_spec)

    def _weights(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, p in self.inner.named_parameters(recurse=False):
            if self.params is not None and name not in self.params:
                continue
            per_channel = self.spec.per_channel and p.dim() > 1
            scale, zero_point = qparams(*tensor_range(p, per_channel), self.spec)
            out[name] = fake_quantize_ste(p, scale, zero_point, self.spec)
        return out

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if "input" in self.sites and x.is_floating_point():
            x = self._activation("input", x)
        if self.enabled:
            out = functional_call(self.inner, self._weights(), (x, *args), kwargs)
        else:
            out = self.inner(x, *args, **kwargs)
        if "output" in self.sites:
            out = self._activation("output", out)
        return out

    def to_quantized(self) -> QuantizedModule:
        """The integer form: parameters from their own range (as in training), activations from the EMA."""
        ranges = {site: (getattr(self, f"{site}_lo").item(), getattr(self, f"{site}_hi").item())
                  for site in self.sites if bool(getattr(self, f"{site}_seen"))}
        return QuantizedModule.from_float(self.inner, self.spec, ranges, self.params)


class DelayedStart(Hook):
    """Switches fake quantization on at ``start_step``; derived from the step, so resumes agree."""

    def __init__(self, modules: list[FakeQuantModule], start_step: int):
        self.modules, self.start_step = modules, start_step

    def _apply(self, step: int) -> None:
        for m in self.modules:
            m.enabled = step >= self.start_step

    def on_train_start(self, model, state) -> None:
        self._apply(state.step)

    def on_step_end(self, model, state) -> None:
        self._apply(state.step)


def export_quantized(model: nn.Module) -> int:
    """Replace every FakeQuantModule by its QuantizedModule; returns how many."""
    wrappers = [m for m in model.modules() if isinstance(m, FakeQuantModule)]
    for m in wrappers:
        m.enabled = True
        replace_module(model, m, m.to_quantized())
    return len(wrappers)


def quantization_aware(model: nn.Module, config: QATConfig, group: str) -> dict:
    """Wrap the modules of ``group`` in ``FakeQuantModule``s, in place. Returns the ``hooks`` the
    caller passes to the training loop and ``finalize``, which exports the trained wrappers."""
    spec = QuantSpec(config.bits, config.mode, config.per_channel)
    wrappers = []
    for module in group_modules(model, group).values():
        wrapper = FakeQuantModule(module, spec, ACTIVATION_SITES[config.activations], config.ema_momentum)
        replace_module(model, module, wrapper)
        wrappers.append(wrapper)
    return {"hooks": [DelayedStart(wrappers, config.start_step)], "finalize": export_quantized}
