"""A cell's output folder when the cell computes nothing: a marker, nothing else.

Two kinds: a cell the plan switched off, and a control that another control's stage trains (the
plan's ``same_as``: the same budget, so the same model). Torch-free and tiny, because every catalog
cell that is not selected runs through it.
"""

from __future__ import annotations

import json
from pathlib import Path

OFF_MARKER = "off.json"
SHARED_MARKER = "same_as.json"


def _write_marker(out_dir: str | Path, name: str, content: dict) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        stale.unlink()
    (out / name).write_text(json.dumps(content) + "\n")


def write_off(out_dir: str | Path, entry: dict) -> None:
    """The output of a cell the plan switched off, so the stage has its declared output."""
    _write_marker(out_dir, OFF_MARKER, {"cell": entry["cell"], "selected": False})


def write_shared(out_dir: str | Path, entry: dict) -> dict:
    """The output of a control whose model another control's stage computes; returns its metrics,
    which name that control (the aggregate reads its results for both)."""
    shared = {k: entry[k] for k in ("cell", "method", "control", "same_as")}
    _write_marker(out_dir, SHARED_MARKER, shared)
    return shared
