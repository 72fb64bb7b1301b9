"""What every stage entrypoint shares: its own repository's code, one-line errors, resolved configs,
runtime settings.

Only ``resolve`` reads params.yaml's values; every other stage reads the resolved config file it
depends on (``data/config/<stage>.json`` or a cell's plan), plus ``runtime`` (device, threads,
checkpoint frequency), which changes how a stage runs and not what it computes.

DVC hashes the code of the repository a stage runs in, so a stage must run that repository's
``tcompress`` and no other copy's (an editable install of another clone, or of the main workspace
when DVC's experiment queue runs the stage in a temporary copy): each script under ``stages/`` puts
its own repository first on ``sys.path`` before it imports the package (tests/test_stage_code.py).

Nothing here imports torch at module level: a grid cell that the plan switched off must finish in
a fraction of a second, and importing torch alone takes longer than that.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

from tcompress.schema import ConfigError, UserError  # noqa: F401  (ConfigError: re-exported)

PARAMS_FILE = "params.yaml"


class StageError(UserError):
    """A failure the user can act on; printed as one line, exit status 2."""


def configure_logging(verbosity: int = 0) -> None:
    """One logging setup for stages and commands: progress messages (a download, say) on stderr;
    ``verbosity`` -1 shows warnings only, 1 adds debug messages."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a stage's ``main``, turning the errors a user can act on into one line on stderr and
    exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        configure_logging()
        try:
            return fn(*args, **kwargs)
        except UserError as err:  # bad params, corpus, checkpoint or stage input
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def read_config(path: str | Path) -> dict:
    """A resolved config or plan file written by the resolve or plan stage."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise StageError(f"{path}: not found; run `dvc repro` (the resolve and plan stages write it)") from None


def runtime() -> "RuntimeConfig":
    """params.yaml's ``runtime`` section, checked; not a stage dependency."""
    from tcompress.config import RuntimeConfig, load_section

    return load_section("runtime", RuntimeConfig, PARAMS_FILE)


def setup_torch(rt: "RuntimeConfig") -> "torch.device":
    """Apply the runtime's thread count and return its device."""
    import torch

    if rt.threads:
        torch.set_num_threads(rt.threads)
    return pick_device(rt.device)


def pick_device(choice: str) -> "torch.device":
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise StageError("runtime.device: 'cuda' was asked for but no CUDA device is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def write_json(path: str | Path, obj: Any) -> None:
    """Write atomically (temporary file, then rename): an interrupted stage leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
