"""Range-based linear quantization (the thesis §2.3 and §3.4.1, Distiller's two modes).

A float tensor x becomes integers q with x ≈ (q − z)·s, where the step size s and the zero point z
come from a range [lo, hi]:

- ``sym``: z = 0 and s = max(|lo|, |hi|) / (2^(b−1) − 1); q ∈ [−(2^(b−1) − 1), 2^(b−1) − 1]. The
  range is restricted to be symmetric (one code unused) so that −x quantizes to −q.
- ``asym`` (unsigned): the range is widened to include 0, then lo ↦ 0 and hi ↦ 2^b − 1:
  s = (hi − lo) / (2^b − 1), z = round(−lo / s); q ∈ [0, 2^b − 1]. Zero is exactly representable,
  which keeps zero padding and ReLU zeros exact.

The arithmetic is PyTorch's own (round half to even of x·(1/s), then + z, then clamp), so
``fake_quantize`` equals ``torch.fake_quantize_per_tensor_affine`` / ``..._per_channel_affine``
bit for bit (tested); it only adds the asymmetric/symmetric parameter choice and integer storage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tcompress.compress import MAX_BITS, MIN_BITS, MODES  # noqa: F401  (torch-free, for the params check)


@dataclass(frozen=True)
class QuantSpec:
    bits: int
    mode: str = "sym"           # sym | asym
    per_channel: bool = False   # one range per output channel (dim 0) instead of one per tensor

    def __post_init__(self) -> None:
        if not MIN_BITS <= self.bits <= MAX_BITS:
            raise ValueError(f"bits: {self.bits} is out of range; expected {MIN_BITS} to {MAX_BITS}")
        if self.mode not in MODES:
            raise ValueError(f"mode: {self.mode!r} is not allowed; expected one of {', '.join(MODES)}")

    @property
    def qmin(self) -> int:
        return 0 if self.mode == "asym" else -(2 ** (self.bits - 1) - 1)

    @property
    def qmax(self) -> int:
        return 2 ** self.bits - 1 if self.mode == "asym" else 2 ** (self.bits - 1) - 1

    @property
    def storage_dtype(self) -> torch.dtype:
        """Smallest integer dtype holding [qmin, qmax] (sub-8-bit codes are not bit-packed)."""
        if self.bits <= 8:
            return torch.uint8 if self.mode == "asym" else torch.int8
        return torch.uint16 if self.mode == "asym" else torch.int16


def qparams(lo: torch.Tensor, hi: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Step size (float32) and zero point (int64) for the range [lo, hi] (tensors, broadcastable)."""
    lo = torch.as_tensor(lo, dtype=torch.float32)
    hi = torch.as_tensor(hi, dtype=torch.float32)
    tiny = torch.finfo(torch.float32).tiny
    if spec.mode == "sym":
        scale = torch.maximum(lo.abs(), hi.abs()) / spec.qmax
        zero_point = torch.zeros_like(scale, dtype=torch.int64)
    else:
        lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
        scale = (hi - lo) / spec.qmax
        zero_point = torch.round(-lo / torch.clamp(scale, min=tiny)).to(torch.int64).clamp(spec.qmin, spec.qmax)
    # An all-zero tensor has no range; any positive step represents it exactly.
    scale = torch.where(scale > tiny, scale, torch.ones_like(scale))
    return scale, zero_point


def tensor_range(x: torch.Tensor, per_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """min and max of ``x``, per tensor or per slice along dim 0."""
    x = x.detach().float()
    if per_channel:
        flat = x.reshape(x.shape[0], -1)  # (channels, everything else)
        return flat.amin(dim=1), flat.amax(dim=1)
    return x.amin(), x.amax()


def _broadcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-channel (C,) parameter shaped to broadcast along dim 0 of ``x``."""
    return t.reshape(-1, *([1] * (x.dim() - 1))) if t.dim() == 1 and x.dim() > 1 else t


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Integer codes of ``x`` in ``spec.storage_dtype``."""
    s, z = _broadcast(scale, x), _broadcast(zero_point, x)
    q = torch.clamp(torch.round(x.float() * (1.0 / s)) + z, spec.qmin, spec.qmax)
    return q.to(spec.storage_dtype)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    s, z = _broadcast(scale, q), _broadcast(zero_point, q)
    return (q.to(torch.int64) - z).float() * s


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """quantize then dequantize, in x's dtype (no gradient rule; QAT adds the straight-through one)."""
    s, z = _broadcast(scale, x), _broadcast(zero_point, x)
    q = torch.clamp(torch.round(x.float() * (1.0 / s)) + z, spec.qmin, spec.qmax)
    return ((q - z) * s).to(x.dtype)


def quantize_tensor(x: torch.Tensor, spec: QuantSpec) -> dict[str, torch.Tensor]:
    """Codes, step sizes and zero points of ``x`` from its own range (how weights and biases are quantized)."""
    per_channel = spec.per_channel and x.dim() > 1
    lo, hi = tensor_range(x, per_channel)
    scale, zero_point = qparams(lo, hi, spec)
    return {"q": quantize(x, scale, zero_point, spec), "scale": scale, "zero_point": zero_point}


def fake_quantize_ste(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """``fake_quantize`` with the straight-through gradient, for quantization-aware training: the
    gradient passes where x fell inside the representable range and is zero where the clamp cut it
    (Bengio et al.; seed 001 §3.2). PyTorch's fused kernels compute exactly this (tested), in one
    pass instead of the half dozen an autograd function of elementwise ops needs."""
    xf = x.float()
    if scale.dim() == 0:
        y = torch.fake_quantize_per_tensor_affine(xf, scale, zero_point.to(torch.int32), spec.qmin, spec.qmax)
    else:
        y = torch.fake_quantize_per_channel_affine(xf, scale, zero_point.to(torch.int32), 0, spec.qmin, spec.qmax)
    return y.to(x.dtype)
