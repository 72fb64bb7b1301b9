"""The float baseline, rebuilt from its torch checkpoint: for the stages that only ever read the
baseline (teacher, calibrate), so that no stored form, and so no method's code, is among their
dependencies. ``tcompress.loader`` builds every model file through ``float_model`` and adds the
stored forms of a compressed one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tcompress.checkpoint import CheckpointError, load_safe
from tcompress.config import ModelConfig
from tcompress.model import EncoderDecoder, Vocab, make_model
from tcompress.schema import build


def float_model(payload: dict[str, Any], path: str | Path) -> EncoderDecoder:
    """The float model a checkpoint's payload describes, its weights not loaded yet."""
    if "model" not in payload or "model_config" not in payload:
        raise CheckpointError(f"{path}: not a model checkpoint (no weights and model config in it)")
    return make_model(build(ModelConfig, payload["model_config"], "model_config"), Vocab(**payload["vocab"]))


def load_baseline(path: str | Path, device: str | torch.device = "cpu") -> tuple[EncoderDecoder, dict[str, Any]]:
    """A float baseline from its torch checkpoint (eval mode) and the raw payload; a compressed cell's
    file is refused with a line naming the loader that reads it."""
    payload = load_safe(path, "cpu")
    if payload.get("compression"):
        raise CheckpointError(f"{path}: a compressed model, not a float baseline (tcompress.loader reads it)")
    model = float_model(payload, path)
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), payload
