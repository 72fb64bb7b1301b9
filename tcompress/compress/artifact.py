"""Compressed-model checkpoints: the float model's recipe plus what replaced which module.

Like baseline checkpoints they hold only tensors and plain values, so they load with
``weights_only=True``; ``load_model`` opens either kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tcompress.checkpoint import CheckpointError, load_safe, model_payload, save_atomic
from tcompress.compress.linear_quant import QuantSpec
from tcompress.compress.walker import replace_module
from tcompress.compress.quantized import QuantizedModule
from tcompress.config import ModelConfig
from tcompress.model import EncoderDecoder, Vocab, make_model
from tcompress.schema import build


def save_compressed(model: EncoderDecoder, path: str | Path, **extra: Any) -> None:
    wrapped = {name: m.describe() for name, m in model.named_modules() if isinstance(m, QuantizedModule)}
    save_atomic(model_payload(model, compression={"quantized": wrapped}, **extra), path)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[EncoderDecoder, dict[str, Any]]:
    """Rebuild a baseline or a compressed cell's model from its checkpoint alone; returns it (eval
    mode) and the raw payload. The one loader for every checkpoint the project writes."""
    payload = load_safe(path, "cpu")
    if "model" not in payload or "model_config" not in payload:
        raise CheckpointError(f"{path}: not a model checkpoint (no weights and model config in it)")
    cfg = build(ModelConfig, payload["model_config"], "model_config")
    model = make_model(cfg, Vocab(**payload["vocab"]))
    if payload.get("compression"):
        rebuild_wrappers(model, payload["compression"])
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), payload


def rebuild_wrappers(model: EncoderDecoder, compression: dict[str, Any]) -> None:
    """Put the empty quantized shells a compressed checkpoint describes into a fresh float model,
    so that its state dict loads into them."""
    for name, info in compression.get("quantized", {}).items():
        old = model.get_submodule(name)
        spec = QuantSpec(info["bits"], info["mode"], info["per_channel"])
        replace_module(model, old, QuantizedModule(old, spec, tuple(info["sites"])))


def stored_bits(model: nn.Module) -> int:
    """Bits the model's parameters need as stored: codes at their width, the rest (and every step
    size and zero point) at 32."""
    total = 0
    for module in model.modules():
        if isinstance(module, QuantizedModule):
            for pname in module.param_names:
                total += getattr(module, f"{pname}_q").numel() * module.spec.bits
                total += 32 * (getattr(module, f"{pname}_scale").numel() + getattr(module, f"{pname}_zero_point").numel())
        else:
            total += 32 * sum(p.numel() for p in module.parameters(recurse=False))
    return total
