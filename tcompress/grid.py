"""The compression grid as files: one small plan file per cell of the catalog.

dvc.yaml expands one stage per catalog combination (a ``matrix`` over ``catalog.*``, which are
always lists), and each such stage depends on nothing from params.yaml but its own plan file.
The plan stage writes every file: a selected cell's file holds everything its computation uses,
an unselected cell's file says only that it is off. Hence:

- ``dvc exp run -S bits=4`` works although ``bits`` is now a scalar (the matrix never sees it);
- a changed grid value changes exactly the files of the cells it affects, so DVC reruns only those;
- a cell that comes back gets its old file back, so DVC's run-cache restores its outputs.

This module must not import torch: an unselected cell reads its plan and exits in milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from tcompress.config import METHODS, Params

OFF_MARKER = "off.json"


@dataclass(frozen=True)
class Cell:
    method: str
    mode: str
    bits: int
    group: str

    @property
    def id(self) -> str:
        """Also the DVC stage suffix: ``compress-ptq@sym-8-ff+emb+gen`` computes ``ptq-sym-8-ff+emb+gen``."""
        return f"{self.method}-{self.mode}-{self.bits}-{self.group}"

    @property
    def stem(self) -> str:
        return f"{self.mode}-{self.bits}-{self.group}"


def catalog_cells(params: Params, method: str) -> list[Cell]:
    c = params.catalog
    return [Cell(method, m, b, g) for m in c.modes for b in c.bits for g in c.groups]


def is_selected(params: Params, cell: Cell) -> bool:
    return (cell.method in params.methods and cell.mode in params.modes and cell.bits in params.bits
            and cell.group in params.groups)


def plan_entry(params: Params, cell: Cell) -> dict:
    """The complete input of one cell's stages besides the baseline model and the data."""
    if not is_selected(params, cell):
        return {"cell": cell.id, "selected": False}
    return {"cell": cell.id, "selected": True, **dataclasses.asdict(cell),
            "config": dataclasses.asdict(getattr(params, cell.method)),
            "seed": params.seed, "device": params.train.device}


def write_plan(params: Params, out_dir: str | Path) -> list[dict]:
    """One ``<method>/<mode>-<bits>-<group>.json`` per catalog cell; returns the entries."""
    entries = []
    for method in METHODS:
        for cell in catalog_cells(params, method):
            entry = plan_entry(params, cell)
            path = Path(out_dir) / method / f"{cell.stem}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
            entries.append(entry)
    return entries


def read_plan(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def write_off(out_dir: str | Path, entry: dict) -> None:
    """The output of a cell the plan switched off: a marker, so the stage has its declared output."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        stale.unlink()
    (out / OFF_MARKER).write_text(json.dumps({"cell": entry["cell"], "selected": False}) + "\n")


def is_off(cell_dir: str | Path) -> bool:
    return (Path(cell_dir) / OFF_MARKER).exists()
