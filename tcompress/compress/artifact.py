"""Compressed-model artifacts: the file a user ships, and the one loader for every model file.

A cell's artifact is a safetensors file (``tcompress.safetensors_file``): its tensors are the
model's state dict in the smallest lossless layout of each (``tcompress.compress.packing``: codes
bit-packed, pruned tensors as bitmask + nonzeros), its ``__metadata__`` the layouts, the float
model's recipe, what replaced which module and the cell's facts, as JSON. Opening it parses JSON
and copies bytes: it cannot run code. Baseline checkpoints are torch files loaded with
``weights_only=True``; ``load_model`` opens either kind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tcompress import safetensors_file
from tcompress.checkpoint import CheckpointError, load_safe, model_payload
from tcompress.compress.codebook import CodebookModule
from tcompress.compress.fullyqt import FQ_MODULES
from tcompress.compress.node_pruning import NodePrunedFeedForward
from tcompress.compress.packing import decode_state, encode_state
from tcompress.compress.product_quant import ProductCodebookModule
from tcompress.compress.walker import replace_module
from tcompress.compress.quantized import QuantizedModule
from tcompress.config import ModelConfig
from tcompress.model import EncoderDecoder, Vocab, make_model
from tcompress.schema import build


FORMAT = "tcompress.packed/1"
TORCH_ZIP_MAGIC = b"PK\x03\x04"
# The stored forms a compressed model may hold, by the key its artifact lists them under. Each class
# has ``describe()`` (JSON recorded per module), ``shell(inner, info)`` (an empty one to load the
# state into) and ``stored_bits()``.
STORED_FORMS: dict[str, type[nn.Module]] = {"quantized": QuantizedModule, "codebook": CodebookModule,
                                             **{cls.kind: cls for cls in (*FQ_MODULES, NodePrunedFeedForward, ProductCodebookModule)}}


def save_compressed(model: EncoderDecoder, path: str | Path, **extra: Any) -> int:
    """Write ``model`` as a packed safetensors artifact; returns its bytes on disk."""
    compression = {kind: {name: m.describe() for name, m in model.named_modules() if type(m) is cls}
                   for kind, cls in STORED_FORMS.items()}
    payload = model_payload(model, compression={k: v for k, v in compression.items() if v}, **extra)
    layouts, stored = encode_state(payload.pop("model"))
    metadata = {"format": FORMAT, "layout": json.dumps(layouts, separators=(",", ":")),
                "tcompress": json.dumps(payload, separators=(",", ":"))}
    return safetensors_file.write(path, stored, metadata)


def load_packed(path: str | Path) -> dict[str, Any]:
    """A packed artifact as the payload a torch checkpoint holds: ``model`` (the state dict) and the rest."""
    try:
        stored, metadata = safetensors_file.read(path)
    except safetensors_file.SafetensorsError as err:
        raise CheckpointError(f"{path}: not a tcompress checkpoint (not a PyTorch file, and not a safetensors "
                              f"artifact: {err.reason})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not a tcompress artifact (format "
                              f"{metadata.get('format')!r}; expected {FORMAT!r})")
    try:
        payload = json.loads(metadata["tcompress"])
        payload["model"] = decode_state(json.loads(metadata["layout"]), stored)
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{path}: damaged tcompress artifact ({type(err).__name__}: {err})") from None
    return payload


def load_payload(path: str | Path) -> dict[str, Any]:
    """The payload of any model file the project writes: a torch checkpoint or a packed artifact."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    return load_safe(path, "cpu") if magic == TORCH_ZIP_MAGIC else load_packed(path)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[EncoderDecoder, dict[str, Any]]:
    """Rebuild a baseline or a compressed cell's model from its file alone; returns it (eval mode)
    and the raw payload. The one loader for every model file the project writes."""
    payload = load_payload(path)
    if "model" not in payload or "model_config" not in payload:
        raise CheckpointError(f"{path}: not a model checkpoint (no weights and model config in it)")
    cfg = build(ModelConfig, payload["model_config"], "model_config")
    model = make_model(cfg, Vocab(**payload["vocab"]))
    if payload.get("compression"):
        rebuild_wrappers(model, payload["compression"])
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), payload


def rebuild_wrappers(model: EncoderDecoder, compression: dict[str, Any]) -> None:
    """Put the empty shells a compressed checkpoint describes into a fresh float model, so that its
    state dict loads into them."""
    unknown = set(compression) - set(STORED_FORMS)
    if unknown:
        raise CheckpointError(f"compressed modules of unknown kind {sorted(unknown)}; this version reads "
                              f"{', '.join(STORED_FORMS)}")
    # Outer wrappers first: a module wrapped inside another is named through the outer one's ``inner``.
    entries = sorted(((name, kind, info) for kind, modules in compression.items() for name, info in modules.items()),
                     key=lambda e: e[0].count("."))
    for name, kind, info in entries:
        old = model.get_submodule(name)
        replace_module(model, old, STORED_FORMS[kind].shell(old, info))


def stored_bits(model: nn.Module) -> int:
    """Bits the model's parameters need as stored: codes at their width, the rest (and every step
    size and zero point) at 32."""
    total = 0
    for module in model.modules():
        if type(module) in STORED_FORMS.values():
            total += module.stored_bits()
        total += 32 * sum(p.numel() for p in module.parameters(recurse=False))
    return total


def parameter_bits(model: nn.Module) -> int:
    """Bits of the model's parameters: integer codes and codebook indices at their width, float
    parameters at 32; step sizes, zero points, codebooks and activation ranges not counted (the
    thesis's formula, which FullyQT's Table 5 ratios follow)."""
    total = 0
    for module in model.modules():
        if isinstance(module, QuantizedModule):
            total += sum(getattr(module, f"{p}_q").numel() for p in module.param_names) * module.spec.bits
        elif isinstance(module, CodebookModule):
            total += module.weight_codes.numel() * module.bits
        elif isinstance(module, ProductCodebookModule):
            total += module.index_bits()
        total += 32 * sum(p.numel() for p in module.parameters(recurse=False))
    return total


def nonzero_bits(model: nn.Module) -> int:
    """Bits of the model's nonzero parameters as stored: each nonzero at its code width, float ones at
    32; zeros, step sizes and codebooks free. A chain's formula ratio n_m·32 / this combines the
    thesis's two formulas: pruning's n_m / NNZ and quantization's bit widths."""
    total = 0
    for module in model.modules():
        if type(module) in STORED_FORMS.values():
            total += module.nonzero_bits()
        total += 32 * sum(int(torch.count_nonzero(p)) for p in module.parameters(recurse=False))
    return total
