"""A cell's output folder when the plan switched the cell off: a marker, nothing else.

Torch-free and tiny, because every catalog cell that is not selected runs through it.
"""

from __future__ import annotations

import json
from pathlib import Path

OFF_MARKER = "off.json"


def write_off(out_dir: str | Path, entry: dict) -> None:
    """The output of a cell the plan switched off, so the stage has its declared output."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        stale.unlink()
    (out / OFF_MARKER).write_text(json.dumps({"cell": entry["cell"], "selected": False}) + "\n")


def is_off(cell_dir: str | Path) -> bool:
    return (Path(cell_dir) / OFF_MARKER).exists()
