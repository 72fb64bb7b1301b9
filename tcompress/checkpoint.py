"""Checkpoints that load with ``torch.load(..., weights_only=True)``.

A checkpoint pulled from a shared DVC remote is data, not code: it holds only tensors and plain
Python values (config dicts, numbers, strings), never pickled objects, so loading it cannot run
anything. Writes are atomic (temporary file, then rename) so a run killed mid-write leaves the
previous checkpoint intact. Reading a model back (baseline or compressed) is
``tcompress.compress.artifact.load_model``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from tcompress.model import EncoderDecoder
from tcompress.schema import plain


def save_atomic(obj: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_safe(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)


def model_payload(model: EncoderDecoder, **extra: Any) -> dict[str, Any]:
    """What a model checkpoint holds: weights, the model config and the vocabulary sizes."""
    return {
        "model": model.state_dict(),
        "model_config": plain(model.cfg),
        "vocab": {"src_size": model.vocab.src_size, "tgt_size": model.vocab.tgt_size},
        **extra,
    }
