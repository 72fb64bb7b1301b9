"""The quantized form of any module: integer parameters, fake-quantized float activations.

``QuantizedModule`` wraps the original float module (Linear, Embedding, LayerNorm, …) in place.
Each parameter becomes integer codes plus step size and zero point (``<name>_q``, ``<name>_scale``,
``<name>_zero_point`` buffers: the artifact), and the wrapped module computes with their
dequantized values, kept as a non-persistent buffer so decoding does not dequantize every step.
Float inputs and outputs are quantized with ranges fixed by calibration (PTQ) or tracked during
training (QAT), so the next layer sees exactly what an integer pipeline would hand it.
"""

from __future__ import annotations

import torch
from torch import nn

from tcompress.compress.artifact import StoredForm
from tcompress.compress.linear_quant import QuantSpec, dequantize, fake_quantize, qparams, quantize_tensor

SITES = ("input", "output")
# `activations` of PTQ and QAT: which float activations of a selected module are quantized.
ACTIVATION_SITES = {"none": (), "inputs": ("input",), "both": SITES}


class QuantizedModule(StoredForm, nn.Module, kind="quantized"):
    def __init__(self, inner: nn.Module, spec: QuantSpec, sites: tuple[str, ...] = (),
                 params: tuple[str, ...] | None = None, act_bits: int | None = None):
        """An empty shell shaped like ``inner``'s quantized form; fill it with ``from_float`` or
        ``load_state_dict``. ``sites`` are the activations that get quantized, at ``act_bits`` (the
        parameters' ``spec.bits`` by default; SmoothQuant's W4A8 keeps 8-bit inputs beside 4-bit
        weights); ``params`` the parameters that become codes (all by default; the others stay float)."""
        super().__init__()
        self.spec = spec
        self.act_bits = act_bits or spec.bits
        self.param_names = tuple(name for name, _ in inner.named_parameters(recurse=False)
                                 if params is None or name in params)
        self.sites = tuple(s for s in SITES if s in sites)
        for pname in self.param_names:
            p = getattr(inner, pname)
            channels = (p.shape[0],) if spec.per_channel and p.dim() > 1 else ()
            self.register_buffer(f"{pname}_q", torch.zeros(p.shape, dtype=spec.storage_dtype))
            self.register_buffer(f"{pname}_scale", torch.ones(channels))
            self.register_buffer(f"{pname}_zero_point", torch.zeros(channels, dtype=torch.int64))
            # The float module keeps computing; its parameter becomes a derived, unsaved buffer.
            del inner._parameters[pname]
            inner.register_buffer(pname, p.detach().clone(), persistent=False)
        for site in self.sites:
            self.register_buffer(f"{site}_scale", torch.ones(()))
            self.register_buffer(f"{site}_zero_point", torch.zeros((), dtype=torch.int64))
        self.inner = inner
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh())

    @classmethod
    def from_float(cls, inner: nn.Module, spec: QuantSpec, act_ranges: dict[str, tuple[float, float]] | None = None,
                   params: tuple[str, ...] | None = None) -> "QuantizedModule":
        """Quantize ``inner``'s parameters (``params``: those only) from their own ranges and its
        activations from ``act_ranges``."""
        act_ranges = act_ranges or {}
        floats = {name: p.detach().float() for name, p in inner.named_parameters(recurse=False)
                  if params is None or name in params}
        module = cls(inner, spec, tuple(act_ranges), params)
        with torch.no_grad():
            for pname, value in floats.items():
                for key, t in quantize_tensor(value, spec).items():
                    getattr(module, f"{pname}_{key}").copy_(t)
        module.set_ranges(act_ranges)
        return module

    def set_ranges(self, act_ranges: dict[str, tuple[float, float]]) -> None:
        """Each quantized activation's step and zero point from its (low, high) range, then the float
        view of the parameters."""
        with torch.no_grad():
            for site in self.sites:
                scale, zero_point = qparams(*map(torch.tensor, act_ranges[site]), self.act_spec)
                getattr(self, f"{site}_scale").copy_(scale)
                getattr(self, f"{site}_zero_point").copy_(zero_point)
        self.refresh()

    @property
    def act_spec(self) -> QuantSpec:
        """Activations: one range per tensor, at ``act_bits``, in the parameters' mode."""
        return QuantSpec(self.act_bits, self.spec.mode)

    @classmethod
    def from_codes(cls, inner: nn.Module, spec: QuantSpec, codes: torch.Tensor, scale: torch.Tensor,
                   zero_point: torch.Tensor, act_ranges: dict[str, tuple[float, float]] | None = None,
                   act_bits: int | None = None) -> "QuantizedModule":
        """``inner``'s weight as codes a method chose itself (GPTQ's, AdaRound's rounding), with their
        step sizes and zero points; its other parameters stay float, its activations in ``act_ranges``
        are quantized as ``from_float``'s, at ``act_bits`` (the weight's bits by default)."""
        act_ranges = act_ranges or {}
        module = cls(inner, spec, tuple(act_ranges), params=("weight",), act_bits=act_bits)
        with torch.no_grad():
            module.weight_q.copy_(codes.to(spec.storage_dtype))
            module.weight_scale.copy_(scale.reshape(module.weight_scale.shape))
            module.weight_zero_point.copy_(zero_point.reshape(module.weight_zero_point.shape))
        module.set_ranges(act_ranges)
        return module

    def refresh(self) -> None:
        """Recompute the float view of every parameter from its integer codes."""
        for pname in self.param_names:
            value = dequantize(getattr(self, f"{pname}_q"), getattr(self, f"{pname}_scale"),
                               getattr(self, f"{pname}_zero_point"))
            setattr(self.inner, pname, value.to(getattr(self.inner, pname).device))

    def _quantize_activation(self, site: str, x: torch.Tensor) -> torch.Tensor:
        # Activation ranges are one per tensor even when weights are per channel.
        return fake_quantize(x, getattr(self, f"{site}_scale"), getattr(self, f"{site}_zero_point"), self.act_spec)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if "input" in self.sites and x.is_floating_point():
            x = self._quantize_activation("input", x)
        out = self.inner(x, *args, **kwargs)
        if "output" in self.sites:
            out = self._quantize_activation("output", out)
        return out

    @classmethod
    def shell(cls, inner: nn.Module, info: dict) -> "QuantizedModule":
        """The empty shell ``describe()``'s record rebuilds (the artifact's loader)."""
        params = info.get("params")
        return cls(inner, QuantSpec(info["bits"], info["mode"], info["per_channel"]), tuple(info["sites"]),
                   None if params is None else tuple(params), info.get("act_bits"))

    def describe(self) -> dict:
        """What the artifact records to rebuild this shell before loading its state (``act_bits``
        only where the activations' width differs from the parameters')."""
        record = {"bits": self.spec.bits, "mode": self.spec.mode, "per_channel": self.spec.per_channel,
                  "sites": list(self.sites), "params": list(self.param_names)}
        if self.act_bits != self.spec.bits:
            record["act_bits"] = self.act_bits
        return record

    def parameter_bits(self) -> int:
        """Every code at its width; step sizes and zero points are not counted."""
        return sum(getattr(self, f"{p}_q").numel() for p in self.param_names) * self.spec.bits

    def nonzero_bits(self) -> int:
        """Nonzero parameters at the code width (the formula ratio of a pruned, then quantized model)."""
        return sum(int(torch.count_nonzero(getattr(self.inner, p))) for p in self.param_names) * self.spec.bits

    def stored_bits(self) -> int:
        """Codes at their width, every step size and zero point at 32 bits."""
        total = 0
        for pname in self.param_names:
            total += getattr(self, f"{pname}_q").numel() * self.spec.bits
            total += 32 * (getattr(self, f"{pname}_scale").numel() + getattr(self, f"{pname}_zero_point").numel())
        return total

    def extra_repr(self) -> str:
        acts = "+".join(self.sites) or "none"
        if self.sites and self.act_bits != self.spec.bits:
            acts += f" at {self.act_bits} bits"
        return f"bits={self.spec.bits}, mode={self.spec.mode}, per_channel={self.spec.per_channel}, activations={acts}"


class InputScaledModule(StoredForm, nn.Module, kind="input_scaled"):
    """A quantized Linear whose input is first divided by a per-input-channel scale s:

        y = Q(W·diag(s)) · (x / s) + b

    where ``inner`` is the ``QuantizedModule`` holding the codes of W·diag(s) (one step size per
    output row) and ``input_scale`` is s (d_in, float32). AWQ (weight-only) and SmoothQuant (W8A8,
    whose inner module also quantizes the scaled input x / s with a static range) store this. The
    effective weight Q(W·diag(s))·diag(s)⁻¹ has a different step per column, which per-row codes
    cannot hold, so s is kept beside them instead of being folded into the preceding LayerNorm or
    Linear (where a shared input, q/k/v's, would need one s for all three).

    The inner module is an ordinary quantized Linear, so integer decoding (``--int8``) turns it into
    an int8 Linear as any other and this wrapper still divides its input by s first: the same
    numbers. The artifact records this form and its inner one separately (``<name>`` and
    ``<name>.inner``); the loader rebuilds the outer one first.
    """

    def __init__(self, inner: nn.Module, in_features: int):
        super().__init__()
        self.inner = inner
        self.register_buffer("input_scale", torch.ones(in_features))

    @classmethod
    def wrap(cls, inner: nn.Module, scale: torch.Tensor) -> "InputScaledModule":
        module = cls(inner, scale.numel())
        with torch.no_grad():
            module.input_scale.copy_(scale.float())
        return module

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.inner(x / self.input_scale, *args, **kwargs)

    @classmethod
    def shell(cls, inner: nn.Module, info: dict) -> "InputScaledModule":
        return cls(inner, info["in_features"])

    def describe(self) -> dict:
        return {"in_features": self.input_scale.numel()}

    def parameter_bits(self) -> int:
        """None of its own: its inner form counts the codes (the formula counts no scale)."""
        return 0

    def stored_bits(self) -> int:
        """The scale vector at 32 bits; the codes are the inner form's."""
        return 32 * self.input_scale.numel()

    def nonzero_bits(self) -> int:
        return 0

    def extra_repr(self) -> str:
        return f"in_features={self.input_scale.numel()}"


def round_linears(model: nn.Module, group: str, spec: QuantSpec, rounding) -> dict:
    """Every Linear of layer group ``group`` replaced, in place, by per-row codes that ``rounding``
    chooses (``rounding(name, linear) -> (codes, scale, zero_point)``, on round-to-nearest's grid:
    GPTQ's and AdaRound's rules), stored as an ordinary ``QuantizedModule``. Returns the cell's facts."""
    from tcompress.compress.ratio import quantization_ratio
    from tcompress.compress.walker import group_linears, replace_module
    from tcompress.model import count_parameters

    linears = group_linears(model, group)
    n_model, coded = count_parameters(model), sum(linear.weight.numel() for linear in linears.values())
    for name, linear in linears.items():
        codes, scale, zero_point = rounding(name, linear)
        replace_module(model, linear, QuantizedModule.from_codes(linear, spec, codes, scale, zero_point))
    return {"n_model": n_model, "n_compressed": coded, "linears": len(linears),
            "compression_ratio": round(quantization_ratio(n_model, coded, spec.bits), 4)}
