"""What every stage entrypoint shares: strict params, one-line errors, seeding, device choice."""

from __future__ import annotations

import functools
import json
import random
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from tcompress.config import ConfigError, Params, load_params

PARAMS_FILE = "params.yaml"


class StageError(Exception):
    """A failure the user can act on; printed as one line, exit status 2."""


def stage(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a click command body: ``fn(params, **options)`` with params loaded and validated first,
    so a bad value stops the stage before it writes anything."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from tcompress.data.corpora import CorpusError

        try:
            params = load_params(PARAMS_FILE)
            return fn(params, *args, **kwargs)
        except (ConfigError, CorpusError, StageError) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise StageError("train.device: 'cuda' was asked for but no CUDA device is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def write_json(path: str | Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
