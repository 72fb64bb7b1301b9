"""``tcompress shard --of N --index I``: split the selected cells into N balanced lists of DVC targets.

Each worker (a clone on a shared DVC cache, a machine pushing to one remote, a Slurm array task)
runs ``dvc repro`` on its own list; a final ``dvc repro`` anywhere restores every cell from the
run-cache. A chain's stage depends on the folder of the cell it starts from, so a chain goes to
its root cell's shard, after it: no worker waits for another's output, and none computes a cell
twice. Shards are balanced by estimated cost, longest first (LPT scheduling): the median measured
seconds of the method's cells (``metrics/cells``), or the median over all methods for a method not
measured yet. The split depends only on the selection and those costs, so every worker computes
the same one.

Several seeds: the first seed's baseline is upstream of every shard, as with one seed. Each other
seed is one unit, its baseline's stages then all its cells (each reads that baseline), costed as
the first seed's measured training (``metrics/train.json``) plus its cells.

Torch-free: it runs before any stage, on every worker.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from tcompress.grid import seed_stage_key

# The stages every cell reads: run once (``dvc repro plan``) before the shards start, so that workers
# do not each train the baseline.
UPSTREAM = ("resolve", "prepare", "tokenize", "train", "teacher", "calibrate", "sensitivity", "plan")
# A seed's baseline stages besides the first seed's: each seed's run in one shard, before its cells.
SEED_UPSTREAM = ("seed_train", "seed_evaluate", "seed_teacher", "seed_calibrate", "seed_sensitivity", "seed_plan")


@dataclass
class Unit:
    """A cell and the chains that start from it (directly or through another chain), in run order."""
    targets: list[str] = field(default_factory=list)
    seconds: float = 0.0


def stage_name(cell_id: str, entry: dict) -> str:
    return f"chain@{cell_id}" if "parent" in entry else f"cell@{cell_id}"


def _ancestry(cell_id: str, cells: dict[str, dict]) -> list[str]:
    """The cell itself, then the cell or chain it starts from, back to a plain cell (its root)."""
    line = [cell_id]
    while "parent" in cells[line[-1]] and cells[line[-1]]["parent"] in cells:
        line.append(cells[line[-1]]["parent"])
    return line


def seed_stage_name(cell_id: str, entry: dict, seed: int) -> str:
    return f"{'seed_chain' if 'parent' in entry else 'seed_cell'}@{seed_stage_key(cell_id, seed)}"


def units(cells: dict[str, dict], cost: dict[str, float], seeds: tuple[int, ...] = (),
          baseline_seconds: float | None = None) -> list[Unit]:
    """Selected cells and chains (``resolve``'s entries, parents before their chains) grouped by root
    cell; then, per seed besides the first (``seeds``), one unit: that seed's baseline stages and all
    its cells, since each of them reads that baseline (``baseline_seconds``: its estimated cost)."""
    known = list(cost.values())
    default = statistics.median(known) if known else 1.0
    grouped: dict[str, Unit] = {}
    ancestry = {c: _ancestry(c, cells) for c in cells}
    # A chain after every chain it continues (fewer links first); ids break ties, so the order of
    # ``cells`` does not matter.
    in_order = sorted(cells, key=lambda c: (len(ancestry[c]), c))
    for cell_id in in_order:
        entry = cells[cell_id]
        unit = grouped.setdefault(ancestry[cell_id][-1], Unit())
        unit.targets.append(stage_name(cell_id, entry))
        if "same_as" not in entry:   # a shared control's stage writes a marker: no cost
            unit.seconds += cost.get(entry["method"], default)
    own_cells = sum(u.seconds for u in grouped.values())
    for seed in seeds:
        unit = Unit([f"{stage}@{seed}" for stage in SEED_UPSTREAM],
                    default * 10 if baseline_seconds is None else baseline_seconds)
        unit.targets += [seed_stage_name(c, cells[c], seed) for c in in_order]
        unit.seconds += own_cells
        grouped[f"seed {seed}"] = unit
    return list(grouped.values())


def split(cells: dict[str, dict], cost: dict[str, float], n: int, seeds: tuple[int, ...] = (),
          baseline_seconds: float | None = None) -> list[list[str]]:
    """N lists of targets: each unit, most expensive first, to the shard with the least work so far."""
    if n < 1:
        raise ValueError(f"--of must be at least 1, got {n}")
    shards: list[Unit] = [Unit() for _ in range(n)]
    for unit in sorted(units(cells, cost, seeds, baseline_seconds), key=lambda u: (-u.seconds, u.targets[0])):
        lightest = min(range(n), key=lambda i: (shards[i].seconds, i))
        shards[lightest].targets += unit.targets
        shards[lightest].seconds += unit.seconds
    return [s.targets for s in shards]


def estimated_seconds(cells: dict[str, dict], cost: dict[str, float], targets: list[str], seeds: tuple[int, ...] = (),
                      baseline_seconds: float | None = None) -> float:
    wanted = set(targets)
    return sum(u.seconds for u in units(cells, cost, seeds, baseline_seconds) if u.targets[0] in wanted)
