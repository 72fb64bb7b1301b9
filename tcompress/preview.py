"""``tcompress plan -S …``: what a change would run and roughly how long, before running it.

Applies the overrides to a copy of params.yaml with DVC's own code (so a value DVC would refuse is
refused here too), resolves the grid, and compares each selected cell's resolved entry with the one
the last ``dvc repro`` planned (``data/config/cells.json``): an identical entry means its result
exists (in the workspace or DVC's run-cache) as long as the baseline, data and code are unchanged.
Estimated time per new cell is the median measured cost of that method's cells in
``metrics/cells/`` (compress + evaluate), when there are any.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tcompress.params import load_params
from tcompress.plan import resolve


def measured_seconds(metrics_dir: Path) -> dict[str, float]:
    """Median seconds per cell, by method, from the cells' metrics (compress + decoding the test set)."""
    return seconds_by_method(json.loads(path.read_text()) for path in Path(metrics_dir).glob("*.json"))


def seconds_by_method(metrics: Iterable[dict]) -> dict[str, float]:
    """``measured_seconds`` of the cells' metrics given."""
    by_method: dict[str, list[float]] = {}
    for m in metrics:
        if m and "compress_seconds" in m:
            decode = m["sentences"] / m["sentences_per_second"] if m.get("sentences_per_second") else 0.0
            by_method.setdefault(m["method"], []).append(m["compress_seconds"] + decode)
    return {k: statistics.median(v) for k, v in by_method.items()}


def preview(overrides: list[str], params_file: Path = Path("params.yaml"), config_dir: Path = Path("data/config"),
            metrics_dir: Path = Path("metrics/cells")) -> list[dict]:
    """One row per selected cell: its id, whether its planned entry is unchanged, estimated seconds,
    and for a control another control trains, that control (``same_as``)."""
    from dvc.utils.hydra import apply_overrides

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "params.yaml"
        shutil.copy(params_file, copy)
        if overrides:
            apply_overrides(copy, overrides)
        cells = resolve(load_params(copy))["cells"]["cells"]
    previous = {}
    if (config_dir / "cells.json").exists():
        previous = json.loads((config_dir / "cells.json").read_text())["cells"]
    cost = measured_seconds(metrics_dir) if metrics_dir.exists() else {}
    return [{"cell": cid, "unchanged": previous.get(cid) == entry,
             "seconds": None if previous.get(cid) == entry else _seconds(entry, cost), "same_as": entry.get("same_as")}
            for cid, entry in cells.items()]


def _seconds(entry: dict, cost: dict[str, float]) -> float | None:
    """A cell's estimated cost: its method's measured median; nothing for a control another trains."""
    return 0.0 if "same_as" in entry else cost.get(entry["method"])


def last_entries(plans_dir: Path, cells: dict) -> dict:
    """The resolved part of each cell's last plan (what ``resolve`` writes), for comparison."""
    out = {}
    for cid, entry in cells.items():
        path = plans_dir / f"{cid}.json"
        if path.exists():
            plan = json.loads(path.read_text())
            out[cid] = {k: plan.get(k) for k in entry}
    return out


def estimate_line(previous: dict, cells: dict, cost: dict[str, float]) -> str:
    """One line before long work starts: how many cells changed and what they should take."""
    todo = [entry for cid, entry in cells.items() if previous.get(cid) != entry]
    known = [s for s in (_seconds(e, cost) for e in todo) if s is not None]
    if not todo:
        return "no cell's settings changed since the last plan"
    return (f"{len(todo)} cells with new settings" + (f": about {sum(known) / 60:.1f} min for the {len(known)} whose "
            "method has a measured cost" if known else " (no measured cost yet)")
            + "; cells whose plan comes back are restored from the run-cache instead")


def baseline_line(config_md5: str, model_exists: bool, last_run: dict | None) -> str:
    """What the baseline costs before anything else runs: nothing when its checkpoint is there and was
    trained from this config; else the wall time of its last measured run (``metrics/train.json``),
    said as such, since DVC's run-cache may restore it instead and that run's machine may differ."""
    if model_exists and last_run and last_run.get("config_md5") == config_md5:
        return "the baseline is trained (data/model, this config)"
    if not last_run or "wall_seconds" not in last_run:
        return "the baseline trains first, unless DVC's run-cache restores it (no measured run to estimate it from)"
    same = last_run.get("config_md5") == config_md5
    return (f"the baseline trains first, unless DVC's run-cache restores it: its last measured run "
            f"{'of this config' if same else 'of another config'} took {last_run['wall_seconds'] / 60:.1f} min "
            f"({last_run.get('steps', '?')} steps, {last_run.get('precision', '?')}, metrics/train.json)")
