"""Read and write the safetensors file format, with torch alone.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw little-endian bytes of every tensor back to back
(https://github.com/huggingface/safetensors). It holds no code, so opening it cannot run any;
anyone can open ours with the ``safetensors`` package (``safe_open(path, "pt")``) and read the
layout this project writes into the header's ``__metadata__`` (string keys and string values only).
Writing copies each tensor's own elements, never a view's whole base storage.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

from tcompress.schema import UserError

DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
          torch.uint16: "U16", torch.uint8: "U8", torch.bool: "BOOL"}
TORCH_DTYPES = {code: dtype for dtype, code in DTYPES.items()}
MAGIC_LIMIT = 100 * 2**20  # a header longer than this is not one we wrote
ALIGN = 8


class SafetensorsError(UserError, ValueError):
    """A file that is not a readable safetensors file; ``str(err)`` is one line naming the file and why."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: not a readable safetensors file ({reason})")
        self.path, self.reason = path, reason


def tensor_bytes(t: torch.Tensor) -> bytes:
    # .contiguous().clone() holds exactly the tensor's elements, whatever storage it views.
    flat = t.detach().cpu().contiguous().clone().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def write(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> int:
    """Write ``tensors`` and ``metadata`` atomically (temporary file, then rename); returns the file's bytes."""
    header: dict = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, t in tensors.items():
        if t.dtype not in DTYPES:
            raise TypeError(f"{name}: dtype {t.dtype} has no safetensors code")
        data = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % ALIGN)  # the reference writer pads so tensor data starts aligned
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
    os.replace(tmp, path)
    return path.stat().st_size


def read_header(path: str | Path) -> tuple[dict, int]:
    """The JSON header and the byte offset where tensor data starts."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise SafetensorsError(path, "shorter than its 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, MAGIC_LIMIT):
                raise SafetensorsError(path, f"header length {n} does not fit the file")
            header = json.loads(f.read(n))
    except FileNotFoundError:
        raise SafetensorsError(path, "no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SafetensorsError(path, "its header is not JSON") from None
    if not isinstance(header, dict):
        raise SafetensorsError(path, "its header is not a JSON object")
    return header, 8 + n


def read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor (fresh, writable) and the ``__metadata__`` of a safetensors file."""
    header, start = read_header(path)
    data = Path(path).read_bytes()[start:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        try:
            dtype = TORCH_DTYPES[info["dtype"]]
            shape = [int(d) for d in info["shape"]]
            lo, hi = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(path, f"tensor {name!r} has a malformed header entry") from None
        numel = 1
        for d in shape:
            numel *= d
        itemsize = torch.empty((), dtype=dtype).element_size()
        if not 0 <= lo <= hi <= len(data) or hi - lo != numel * itemsize:
            raise SafetensorsError(path, f"tensor {name!r}: byte range [{lo}, {hi}) does not hold "
                                   f"{numel} {info['dtype']} values within the file's {len(data)} data bytes")
        raw = torch.frombuffer(bytearray(data[lo:hi]), dtype=torch.uint8) if hi > lo else torch.empty(0, dtype=torch.uint8)
        tensors[name] = raw.view(dtype).reshape(shape)
    return tensors, metadata
