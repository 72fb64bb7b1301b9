"""What every stage entrypoint shares: strict params, one-line errors, seeding, device choice.

Nothing here imports torch at module level: a grid cell that the plan switched off must finish in
a fraction of a second, and importing torch alone takes longer than that.
"""

from __future__ import annotations

import functools
import json
import random
import sys
from pathlib import Path
from typing import Any, Callable

from tcompress.config import ConfigError, Params, load_params

PARAMS_FILE = "params.yaml"


class StageError(Exception):
    """A failure the user can act on; printed as one line, exit status 2."""


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can act on into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from tcompress.data.corpora import CorpusError

        try:
            return fn(*args, **kwargs)
        except (ConfigError, CorpusError, StageError) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def stage(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a click command body: ``fn(params, **options)`` with params loaded and validated first,
    so a bad value stops the stage before it writes anything."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(load_params(PARAMS_FILE), *args, **kwargs)

    return guarded(wrapper)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def pick_device(choice: str) -> "torch.device":
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise StageError("train.device: 'cuda' was asked for but no CUDA device is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def write_json(path: str | Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
