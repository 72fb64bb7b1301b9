"""The one loader: every model file the project writes, rebuilt from the file alone.

A baseline is a torch checkpoint, loaded with ``weights_only=True``; a cell's artifact is a packed
safetensors file (``tcompress.compress.artifact``), whose opening parses JSON and copies bytes: it
cannot run code. A compressed model's modules are stored forms, each rebuilt as an empty shell of
its kind before the state dict loads into it.

A stored form registers itself when its module is imported, and it lives with what uses it: in
``tcompress.compress`` when methods share it, in its method's package otherwise. So the loader
imports every module of both packages before it reads a kind, and sits above the methods
(tests/test_layers.py): it names no method, and a form in a new method's package is found like any
other.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path
from typing import Any

import torch

import tcompress.compress
import tcompress.methods
from tcompress import safetensors_file
from tcompress.baseline import float_model
from tcompress.checkpoint import CheckpointError, load_safe
from tcompress.compress.artifact import FORMAT, STORED_FORMS, StoredForm
from tcompress.compress.packing import decode_state
from tcompress.compress.walker import replace_module
from tcompress.model import EncoderDecoder

TORCH_ZIP_MAGIC = b"PK\x03\x04"


def stored_forms() -> dict[str, type[StoredForm]]:
    """Every stored form, each module of the shared mechanisms and of every method (its package's
    modules included) imported first: a file may hold forms this process has not used yet."""
    for package in (tcompress.compress, tcompress.methods):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(info.name)
    return STORED_FORMS


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
    model = float_model(payload, path)
    if payload.get("compression"):
        rebuild_wrappers(model, payload["compression"])
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), payload


def rebuild_wrappers(model: EncoderDecoder, compression: dict[str, Any]) -> None:
    """Put the empty shells a compressed checkpoint describes into a fresh float model, so that its
    state dict loads into them."""
    forms = stored_forms()
    unknown = set(compression) - set(forms)
    if unknown:
        raise CheckpointError(f"compressed modules of unknown kind {sorted(unknown)}; this version reads "
                              f"{', '.join(forms)}")
    # Outer wrappers first: a module wrapped inside another is named through the outer one's ``inner``.
    entries = sorted(((name, kind, info) for kind, modules in compression.items() for name, info in modules.items()),
                     key=lambda e: e[0].count("."))
    for name, kind, info in entries:
        old = model.get_submodule(name)
        replace_module(model, old, forms[kind].shell(old, info))

