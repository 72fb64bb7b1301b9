"""Checkpoints that load with ``torch.load(..., weights_only=True)``.

A checkpoint pulled from a shared DVC remote is data, not code: it holds only tensors and plain
Python values (config dicts, numbers, strings), never pickled objects, so loading it cannot run
anything. Writes are atomic (temporary file, then rename) so a run killed mid-write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from tcompress.config import ModelConfig, _build
from tcompress.model import EncoderDecoder, Vocab, make_model


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
    import dataclasses

    return {
        "model": model.state_dict(),
        "model_config": dataclasses.asdict(model.cfg),
        "vocab": {"src_size": model.vocab.src_size, "tgt_size": model.vocab.tgt_size},
        **extra,
    }


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[EncoderDecoder, dict[str, Any]]:
    """Rebuild the model from a checkpoint alone; returns it (eval mode) and the raw payload."""
    payload = load_safe(path, device)
    cfg = _build(ModelConfig, payload["model_config"], "model_config")
    model = make_model(cfg, Vocab(**payload["vocab"]))
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), payload
