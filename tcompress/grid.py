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
    group: str
    mode: str | None = None       # quantization cells
    bits: int | None = None
    schedule: str | None = None   # AGP cells

    @property
    def stem(self) -> str:
        """The DVC stage suffix: ``compress-ptq@sym-8-ff+emb+gen``, ``compress-agp@10-70-1-full``."""
        return "-".join(str(v) for v in (self.mode, self.bits, self.schedule, self.group) if v is not None)

    @property
    def id(self) -> str:
        return f"{self.method}-{self.stem}"


def catalog_cells(params: Params, method: str) -> list[Cell]:
    """Every cell dvc.yaml has stages for, in its matrix order."""
    c = params.catalog
    if method in ("ptq", "qat"):
        return [Cell(method, g, m, b) for m in c.modes for b in c.bits for g in c.groups]
    if method == "agp":
        return [Cell(method, g, schedule=s) for s in c.schedules for g in c.pruning_groups]
    return [Cell(method, g) for g in c.pruning_groups]


# Grid keys select cells; they are left out of a cell's plan so that adding a value to a list
# does not change (and rerun) the cells already selected.
GRID_KEYS = {"ptq": (), "qat": ("bits", "modes", "groups"), "agp": ("schedules", "groups"), "imp": ("groups",)}


def is_selected(params: Params, cell: Cell) -> bool:
    if cell.method not in params.methods:
        return False
    if cell.method in ("ptq", "qat"):
        own = params.qat if cell.method == "qat" else None
        bits = (own and own.bits) or params.bits
        modes = (own and own.modes) or params.modes
        groups = (own and own.groups) or params.groups
        return cell.mode in modes and cell.bits in bits and cell.group in groups
    section = getattr(params, cell.method)
    return cell.group in section.groups and (cell.schedule is None or cell.schedule in section.schedules)


def plan_entry(params: Params, cell: Cell) -> dict:
    """The complete input of one cell's stages besides the baseline model and the data."""
    if not is_selected(params, cell):
        return {"cell": cell.id, "selected": False}
    config = {k: v for k, v in dataclasses.asdict(getattr(params, cell.method)).items()
              if k not in GRID_KEYS[cell.method]}
    entry = {"cell": cell.id, "selected": True, **dataclasses.asdict(cell), "config": config,
             "seed": params.seed, "device": params.train.device}
    if cell.method != "ptq":  # trained cells: the baseline's training settings under the method's budget
        entry["train"] = {**dataclasses.asdict(params.train),
                          **{k: config[k] for k in ("epochs", "lr", "warmup_steps")}}
    return entry


def write_plan(params: Params, out_dir: str | Path) -> list[dict]:
    """One ``<method>/<stem>.json`` per catalog cell; returns the entries."""
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
