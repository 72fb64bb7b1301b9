"""A resume folder: the parts of a long stage's work done so far, kept outside DVC's outputs and
keyed on what they were computed from (``identity``: the model, the inputs, the settings), so that an
interrupted run continues with the next part and a folder written for anything else is discarded.
The teacher stage keeps its decoded chunks in one, the sensitivity stage its modules' measurements.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

MARKER = "identity.json"


def open_folder(folder: Path, identity: dict) -> None:
    """Make ``folder`` the resume folder of ``identity``: kept as it is when it was written for the same
    identity, emptied when for another."""
    marker = folder / MARKER
    if folder.exists() and not (marker.exists() and json.loads(marker.read_text()) == identity):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(identity, sort_keys=True))


def write_part(path: Path, value: Any) -> None:
    """One part as JSON, on disk whole or not at all."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)
