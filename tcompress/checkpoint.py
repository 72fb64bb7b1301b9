"""Checkpoints that load with ``torch.load(..., weights_only=True)``.

A checkpoint pulled from a shared DVC remote is data, not code: it holds only tensors and plain
Python values (config dicts, numbers, strings), never pickled objects, so loading it cannot run
anything. Writes are atomic (temporary file, then rename) so a run killed mid-write leaves the
previous checkpoint intact. Reading a model back (baseline or compressed) is
``tcompress.loader.load_model``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from tcompress.model import EncoderDecoder
from tcompress.schema import UserError, plain


def save_atomic(obj: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class CheckpointError(UserError, ValueError):
    """A file that is not a checkpoint this project wrote; ``str(err)`` is one line for the user."""


def load_safe(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load(weights_only=True)``, with a one-line error instead of torch's traceback (whose
    advice, to pass ``weights_only=False``, is the one thing never to do with a shared file)."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):  # a pickled reference to a function or class: loading would run code
            raise CheckpointError(f"{path}: refused: it holds objects other than tensors and plain values, and "
                                  "loading it could run code; tcompress checkpoints never do") from None
        raise CheckpointError(f"{path}: not a tcompress checkpoint (not a PyTorch file)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        if isinstance(err, FileNotFoundError):
            raise CheckpointError(f"{path}: no such file") from None
        raise CheckpointError(f"{path}: not a tcompress checkpoint (torch cannot read it: "
                              f"{str(err).splitlines()[0][:120]})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a tcompress checkpoint (it holds a {type(payload).__name__})")
    return payload


def model_payload(model: EncoderDecoder, **extra: Any) -> dict[str, Any]:
    """What a model checkpoint holds: weights, the model config and the vocabulary sizes."""
    return {
        "model": model.state_dict(),
        "model_config": plain(model.cfg),
        "vocab": {"src_size": model.vocab.src_size, "tgt_size": model.vocab.tgt_size},
        **extra,
    }
