"""``tcompress shard --of N --index I``: split the selected cells into N balanced lists of DVC targets.

Each worker (a clone on a shared DVC cache, a machine pushing to one remote, a Slurm array task)
runs ``dvc repro`` on its own list; a final ``dvc repro`` anywhere restores every cell from the
run-cache. A chain's stage depends on the folder of the cell it starts from, so a chain goes to
its root cell's shard, after it: no worker waits for another's output, and none computes a cell
twice. Shards are balanced by estimated cost, longest first (LPT scheduling): the median measured
seconds of the method's cells (``metrics/cells`` as the last commit holds it), or the median over
all methods for a method not measured yet. The split depends only on the selection and those
costs, so every worker computes the same one, and the same again after it has run some cells (a
worker started again after a crash gets its own list back, the cell it was in included).

Several seeds: the first seed's baseline is upstream of every shard, as with one seed. Each other
seed is one unit, its baseline's stages then all its cells (each reads that baseline), costed as
the first seed's measured training (``metrics/train.json``) plus its cells. With ``--seeds-upstream``
the other seeds' baselines have run first too (``dvc repro seed_plan@S``, say side by side on three
machines), and each seed's cells are split across the shards like the first seed's, so that many
workers share three seeds' grids instead of one worker a seed.

The first seed's baseline evaluation (``evaluate``: no cell reads it, the aggregate does) is a unit
of its own. The catalog's cells, chains and seeds that are off go into the shards too, about a
second each (an "off" marker, no torch; a chain with its parent): the workers push them with the
rest, so the collector restores every stage of dvc.yaml instead of running dozens of marker stages.

Torch-free: it runs before any stage, on every worker.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tcompress.grid import seed_stage_key

# The stages every cell reads: run once (``dvc repro plan``) before the shards start, so that workers
# do not each train the baseline.
UPSTREAM = ("resolve", "prepare", "tokenize", "train", "teacher", "calibrate", "sensitivity", "plan")
# A seed's baseline stages besides the first seed's: each seed's run in one shard, before its cells.
SEED_UPSTREAM = ("seed_train", "seed_evaluate", "seed_teacher", "seed_calibrate", "seed_sensitivity", "seed_plan")
# Those a seed's cells read: up to date before the shards start, with ``--seeds-upstream``.
SEED_SHARED = tuple(s for s in SEED_UPSTREAM if s != "seed_evaluate")
OFF_SECONDS = 1.0   # an off stage: DVC's bookkeeping and a Python start without torch


@dataclass
class Unit:
    """A cell and the chains that start from it (directly or through another chain), in run order;
    or a shard, the units it was given, in order. ``off``: how many of its targets write off markers."""
    targets: list[str] = field(default_factory=list)
    seconds: float = 0.0
    off: int = 0


def committed_metrics(folder: Path) -> list[dict] | None:
    """The JSON files directly in ``folder`` as the git commit checked out holds them (None outside a
    git work tree): what every clone of that commit has, whatever its worker has computed since."""
    def git(*args: str, stdin: str | None = None) -> bytes:
        return subprocess.run(["git", *args], input=None if stdin is None else stdin.encode(), capture_output=True,
                              check=True).stdout
    try:
        names = [n for n in git("ls-tree", "--name-only", "--full-name", "HEAD", f"{folder}/").decode().split()
                 if n.endswith(".json")]
        if not names:
            return []
        out = git("cat-file", "--batch", stdin="".join(f"HEAD:{n}\n" for n in names))
    except (OSError, subprocess.CalledProcessError):
        return None
    found, at = [], 0
    for _ in names:   # "<sha> blob <size>\n<content>\n" per file
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        found.append(json.loads(out[header_end + 1: header_end + 1 + size] or b"{}"))
        at = header_end + 1 + size + 1
    return found


def evaluate_estimate(baseline: dict) -> float:
    """The first seed's ``evaluate``: decoding the test split greedy and with beam search, at the
    speeds its last run measured (``metrics/baseline.json``), plus a start; 10 s unmeasured."""
    seconds = [baseline["sentences"] / baseline[d]["sentences_per_second"] for d in ("greedy", "beam")
               if baseline.get("sentences") and baseline.get(d, {}).get("sentences_per_second")]
    return 5.0 + sum(seconds) if seconds else 10.0


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
          baseline_seconds: float | None = None, off: dict[str, dict] | None = None,
          off_seeds: tuple[int, ...] = (), evaluate_seconds: float | None = None,
          seeds_upstream: bool = False) -> list[Unit]:
    """Selected cells and chains (``resolve``'s entries, parents before their chains) and the catalog's
    ``off`` ones (id -> ``{"parent": id}`` for a chain, ``{}`` for a cell) grouped by root cell; then,
    per seed besides the first (``seeds``), one unit: that seed's baseline stages and all its cells,
    since each of them reads that baseline (``baseline_seconds``: its estimated cost); and per catalog
    seed that is off (``off_seeds``), one unit of its marker stages; with ``evaluate_seconds``, the
    ``evaluate`` stage as one more. With ``seeds_upstream`` (the seeds' shared stages have run), a
    seed's units are the first seed's, in that seed's stages, and its ``seed_evaluate`` one more."""
    known = list(cost.values())
    default = statistics.median(known) if known else 1.0
    everything = {**{c: {**e, "off": True} for c, e in (off or {}).items()}, **cells}
    grouped: dict[str, Unit] = {}
    members: dict[str, list[str]] = {}   # each root's cells and chains, in run order
    ancestry = {c: _ancestry(c, everything) for c in everything}
    # A chain after every chain it continues (fewer links first); ids break ties, so the order of
    # ``cells`` does not matter.
    in_order = sorted(everything, key=lambda c: (len(ancestry[c]), c))
    for cell_id in in_order:
        entry = everything[cell_id]
        root = ancestry[cell_id][-1]
        unit = grouped.setdefault(root, Unit())
        members.setdefault(root, []).append(cell_id)
        unit.targets.append(stage_name(cell_id, entry))
        if entry.get("off"):
            unit.seconds += OFF_SECONDS
            unit.off += 1
        elif "same_as" not in entry:   # a shared control's stage writes a marker: no cost
            unit.seconds += cost.get(entry["method"], default)
    own_cells = sum(u.seconds for u in grouped.values())
    if seeds_upstream:
        first = list(grouped.items())
        for seed in seeds:
            for root, unit in first:
                grouped[f"{root} seed {seed}"] = Unit([seed_stage_name(c, everything[c], seed) for c in members[root]],
                                                      unit.seconds, unit.off)
            grouped[f"evaluate seed {seed}"] = Unit([f"seed_evaluate@{seed}"],
                                                    10.0 if evaluate_seconds is None else evaluate_seconds)
        seeds = ()
    for seed in seeds:
        unit = Unit([f"{stage}@{seed}" for stage in SEED_UPSTREAM],
                    default * 10 if baseline_seconds is None else baseline_seconds)
        unit.targets += [seed_stage_name(c, everything[c], seed) for c in in_order]
        unit.seconds += own_cells
        unit.off = sum(1 for c in in_order if everything[c].get("off"))
        grouped[f"seed {seed}"] = unit
    for seed in off_seeds:
        unit = Unit([f"{stage}@{seed}" for stage in SEED_UPSTREAM])
        unit.targets += [seed_stage_name(c, everything[c], seed) for c in in_order]
        unit.seconds, unit.off = OFF_SECONDS * len(unit.targets), len(unit.targets)
        grouped[f"seed {seed}"] = unit
    if evaluate_seconds is not None:
        grouped["evaluate"] = Unit(["evaluate"], evaluate_seconds)
    return list(grouped.values())


def shards(cells: dict[str, dict], cost: dict[str, float], n: int, seeds: tuple[int, ...] = (),
           baseline_seconds: float | None = None, off: dict[str, dict] | None = None,
           off_seeds: tuple[int, ...] = (), evaluate_seconds: float | None = None,
           seeds_upstream: bool = False) -> list[Unit]:
    """N shards (``units``' arguments): each unit, most expensive first, to the shard with the least
    work so far; each shard's targets, estimated seconds and off markers add up its units'."""
    if n < 1:
        raise ValueError(f"--of must be at least 1, got {n}")
    found: list[Unit] = [Unit() for _ in range(n)]
    for unit in sorted(units(cells, cost, seeds, baseline_seconds, off, off_seeds, evaluate_seconds, seeds_upstream),
                       key=lambda u: (-u.seconds, u.targets[0])):
        lightest = min(range(n), key=lambda i: (found[i].seconds, i))
        found[lightest].targets += unit.targets
        found[lightest].seconds += unit.seconds
        found[lightest].off += unit.off
    return found


def split(*args, **kwargs) -> list[list[str]]:
    """N lists of targets: the targets of ``shards``, which takes the same arguments."""
    return [shard.targets for shard in shards(*args, **kwargs)]
