"""Store a state dict in as few bytes as its values allow, losslessly.

Every tensor is stored in the smallest of the layouts that hold it exactly:

- ``dense``: its own bytes (float32 weights that nothing compressed), or float16 / bfloat16 bytes
  where every value is exactly one of those (weights a half-precision method rounded);
- ``constant``: an integer tensor whose entries are all equal (the zero points of symmetric
  quantization) costs no bytes, only its value in the header;
- ``bits``: integer codes bit-packed at w = bit length of (max − min) bits each, after subtracting
  the minimum; b-bit codes take at most b bits, LSB first, 8 to a byte, whatever b is (3 included);
- ``masked``: a bitmask of the nonzero entries (1 bit each) plus the nonzero values alone, those
  again in ``dense`` or ``bits`` layout: a pruned tensor. Zero means all bits zero, so −0.0 stays
  −0.0. A bitmask costs n/8 bytes: it beats dense float32 once more than 1/32 of the entries are
  zero, while indices (CSR, int64) would cost 8 bytes per nonzero, more than dense float32 itself.

Scales stay float32 tensors (``dense``): storing them in fp16 would change the model's numbers.
The layout of each tensor is JSON in the file's header; ``decode`` reverses ``encode`` bit for bit.
"""

from __future__ import annotations

import math

import torch

LAYOUT_KEY = "layout"


def pack_bits(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Non-negative integers < 2**bits -> uint8 bytes, ``bits`` bits each, least significant first."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bits: {bits} is out of range 1..32")
    u = values.reshape(-1).to(torch.int64)
    if u.numel() and (int(u.min()) < 0 or int(u.max()) >= 2 ** bits):
        raise ValueError(f"values must lie in [0, 2**{bits})")
    if bits == 8:
        return u.to(torch.uint8)
    planes = ((u[:, None] >> torch.arange(bits)) & 1).to(torch.uint8).reshape(-1)  # (n·bits,) LSB first
    planes = torch.cat([planes, planes.new_zeros(-planes.numel() % 8)]).reshape(-1, 8)
    return (planes.to(torch.int32) << torch.arange(8, dtype=torch.int32)).sum(1).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """The ``n`` integers (int64) that ``pack_bits`` stored at ``bits`` bits each."""
    if bits == 8:
        return packed[:n].to(torch.int64)
    planes = ((packed.to(torch.int64)[:, None] >> torch.arange(8)) & 1).reshape(-1)[: n * bits]
    return (planes.reshape(n, bits) << torch.arange(bits)).sum(1)


def packed_bytes(n: int, bits: int) -> int:
    return math.ceil(n * bits / 8)


def _int_view(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bit patterns as integers of the same width (floats: so −0.0 is nonzero)."""
    if not t.is_floating_point():
        return t
    return t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def _encode_values(flat: torch.Tensor, name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """``flat`` (1-D) as dense, constant or bits: whichever takes fewest bytes."""
    dense = ({"kind": "dense"}, {name: flat.clone()})
    if flat.is_floating_point():
        for narrow in (torch.float16, torch.bfloat16):  # values a half-precision method left behind
            if narrow.itemsize < flat.element_size() and torch.equal(_int_view(flat.to(narrow).to(flat.dtype)),
                                                                     _int_view(flat)):
                return {"kind": "dense", "stored": str(narrow).removeprefix("torch.")}, {name: flat.to(narrow)}
        return dense
    if flat.numel() == 0:
        return dense
    as_int = flat.to(torch.int64)
    lo, hi = int(as_int.min()), int(as_int.max())
    if lo == hi:
        return {"kind": "constant", "value": lo}, {}
    width = (hi - lo).bit_length()
    if packed_bytes(flat.numel(), width) < flat.numel() * flat.element_size():
        return {"kind": "bits", "bits": width, "offset": lo}, {name: pack_bits(as_int - lo, width)}
    return dense


def _size(stored: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in stored.values())


def encode(name: str, t: torch.Tensor) -> tuple[dict, dict[str, torch.Tensor]]:
    """The layout (JSON-able) and the tensors to store for ``t``; stored names start with ``name``."""
    flat = t.detach().cpu().reshape(-1)
    layout, stored = _encode_values(flat, name)
    nonzero = _int_view(flat) != 0
    nnz = int(nonzero.sum())
    if layout["kind"] != "constant" and nnz < flat.numel():
        inner, values = _encode_values(flat[nonzero], name)
        masked = ({"kind": "masked", "values": inner}, {f"{name}.mask": pack_bits(nonzero, 1), **values})
        if _size(masked[1]) < _size(stored):
            layout, stored = masked
    if layout["kind"] == "dense":  # in its own shape, as any safetensors reader expects a weight
        stored = {name: stored[name].reshape(t.shape)}
    return {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape), **layout}, stored


def _decode_values(layout: dict, stored: dict[str, torch.Tensor], name: str, n: int, dtype: torch.dtype) -> torch.Tensor:
    kind = layout["kind"]
    if kind == "dense":
        return stored[name].reshape(-1).to(dtype)
    if kind == "constant":
        return torch.full((n,), layout["value"], dtype=dtype)
    if kind == "bits":
        return (unpack_bits(stored[name], layout["bits"], n) + layout["offset"]).to(dtype)
    raise ValueError(f"{name}: unknown layout kind {kind!r}")


def decode(name: str, layout: dict, stored: dict[str, torch.Tensor]) -> torch.Tensor:
    """The tensor ``encode`` stored, bit for bit."""
    dtype = getattr(torch, layout["dtype"])
    shape = layout["shape"]
    n = math.prod(shape)
    if layout["kind"] == "masked":
        nonzero = unpack_bits(stored[f"{name}.mask"], 1, n).bool()
        values = _decode_values(layout["values"], stored, name, int(nonzero.sum()), dtype)
        out = torch.zeros(n, dtype=dtype)
        out[nonzero] = values
        return out.reshape(shape)
    return _decode_values(layout, stored, name, n, dtype).reshape(shape)


def _identity(t: torch.Tensor) -> tuple:
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)


def encode_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, dict], dict[str, torch.Tensor]]:
    """Every tensor of a state dict: the layouts by name and all tensors to store. A tensor the
    state dict lists under several names (a shared embedding table) is stored once; the other
    names are ``alias`` entries."""
    layouts, stored, first = {}, {}, {}
    for name, t in state.items():
        key = _identity(t)
        if t.numel() and key in first:
            layouts[name] = {"kind": "alias", "of": first[key]}
            continue
        first[key] = name
        layouts[name], own = encode(name, t)
        stored.update(own)
    return layouts, stored


def decode_state(layouts: dict[str, dict], stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {name: decode(name, layout, stored) for name, layout in layouts.items() if layout["kind"] != "alias"}
    return {name: out[layout["of"]] if layout["kind"] == "alias" else out[name] for name, layout in layouts.items()}
