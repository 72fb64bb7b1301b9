"""Shards: every selected cell in exactly one shard, chains after the cell they start from, balanced
by estimated cost, the same split on every worker."""

import itertools
import json
import shutil
import sys

import pytest

from conftest import dvc, make_project, ran_stages, run, tiny_params
from tcompress.params import params_from_dict
from tcompress.plan import resolve
from tcompress.shard import split, units

CHAINS = ["agp:10-70-1-full > kmeans:4", "agp:10-70-1-full > qat:sym-4", "lottery:50-rewind-full > lottery:80-rewind"]


CATALOG = {"ptq": {"bits": [8, 4], "modes": ["sym"], "groups": ["ff", "full"]},
           "qat": {"bits": [4], "modes": ["sym"], "groups": ["full"]}, "agp": {"schedules": ["10-70-1"], "groups": ["full"]},
           "imp": {"groups": ["full"]}, "kmeans": {"bits": [4], "groups": ["att"]},
           "lottery": {"sparsities": [50, 80], "inits": ["rewind"], "groups": ["full"]}, "chains": CHAINS}


def selected(**overrides) -> dict:
    raw = tiny_params(methods=["ptq", "qat", "agp", "imp", "kmeans", "lottery"], chains=CHAINS, **overrides)
    raw["catalog"] |= CATALOG
    raw["lottery"]["inits"] = ["rewind"]
    return resolve(params_from_dict(raw))["cells"]["cells"]


def test_every_cell_in_one_shard_and_each_chain_after_its_root():
    cells = selected()
    cost = {"ptq": 2.0, "qat": 50.0, "agp": 40.0, "imp": 45.0, "kmeans": 30.0, "lottery": 60.0}
    for n in (1, 2, 3, 5):
        shards = split(cells, cost, n)
        flat = list(itertools.chain(*shards))
        assert sorted(flat) == sorted({*flat}) and len(flat) == len(cells), n   # each stage once
        assert {t.split("@", 1)[1] for t in flat} == set(cells)
        for shard in shards:
            for i, target in enumerate(shard):
                if target.startswith("chain@"):
                    parent = cells[target.split("@", 1)[1]]["parent"]
                    earlier = [t.split("@", 1)[1] for t in shard[:i]]
                    assert parent in earlier, (target, shard)   # its parent runs first, on this worker
    # The 80 % ticket starts from the 50 % ticket, so it goes with it, after it.
    lottery = next(u for u in units(cells, cost) if u.targets[0] == "cell@lottery-50-rewind-full")
    ticket = next(cid for cid, e in cells.items() if e.get("parent") == "lottery-50-rewind-full")
    assert lottery.targets == ["cell@lottery-50-rewind-full", f"chain@{ticket}"]


def test_shards_are_balanced_by_cost_and_deterministic():
    cells = selected()
    cost = {"ptq": 2.0, "qat": 50.0, "agp": 40.0, "imp": 45.0, "kmeans": 30.0, "lottery": 60.0}
    shards = split(cells, cost, 2)
    assert shards == split(dict(reversed(list(cells.items()))), dict(reversed(list(cost.items()))), 2)

    def seconds(shard):
        return sum(0 if "same_as" in cells[t.split("@", 1)[1]] else cost[cells[t.split("@", 1)[1]]["method"]]
                   for t in shard)
    loads = sorted(seconds(s) for s in shards)
    biggest_unit = max(u.seconds for u in units(cells, cost))
    assert loads[1] - loads[0] <= biggest_unit   # LPT's guarantee: apart by at most one unit
    # Without measured costs every method counts alike, and the split still covers every cell.
    assert sorted(itertools.chain(*split(cells, {}, 2))) == sorted(itertools.chain(*shards))


def test_a_shared_control_costs_nothing():
    cells = selected()
    shared = [cid for cid, e in cells.items() if "same_as" in e]
    assert shared, "the default budgets share a control"
    cost = {"ptq": 2.0, "qat": 50.0, "agp": 40.0, "imp": 45.0, "kmeans": 30.0, "lottery": 60.0}
    unit = next(u for u in units(cells, cost) if u.targets == [f"cell@{shared[0]}"])
    assert unit.seconds == 0.0


def test_no_shards_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        split(selected(), {}, 0)


def _untimed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if "second" not in k}


@pytest.mark.slow
def test_two_workers_on_one_cache_give_what_one_repro_gives(tmp_path_factory, tiny_pipeline, shared_cache):
    """Two clones on one DVC cache each run their shard; a third's plain `dvc repro` then computes
    no cell, and every cell's metrics and translations equal the sequential run's (``tiny_pipeline``)."""
    # The sequential run's cache without its cells' run-cache entries: the workers restore the
    # baseline and compute every cell themselves.
    cache = tmp_path_factory.mktemp("workers-cache") / "cache"
    shutil.copytree(shared_cache, cache)
    for key in (cache / "runs").glob("*/*"):
        if any("stages/cell.py" in entry.read_text() for entry in key.iterdir()):
            shutil.rmtree(key)
    shard = [sys.executable, "-m", "tcompress.cli", "shard", "--of", "2", "--index"]
    workers = [make_project(tmp_path_factory.mktemp(f"worker{i}"), tiny_params(), cache) for i in range(2)]
    refused = run([*shard, "0"], workers[0], check=False)
    assert refused.returncode == 1 and "run `dvc repro plan` once" in refused.stderr
    dvc(["repro", "plan"], workers[0])
    assert "train" not in ran_stages(dvc(["repro", "plan"], workers[1]).stdout)   # from the run-cache
    targets = [run([*shard, str(i)], w).stdout.split() for i, w in enumerate(workers)]
    selected = {t.split("@", 1)[1] for t in targets[0] + targets[1]}
    assert targets[0] and targets[1] and not set(targets[0]) & set(targets[1])
    computed_by_workers = set()
    for worker, mine in zip(workers, targets):
        computed_by_workers |= ran_stages(dvc(["repro", *mine], worker).stdout)
    assert {s.split("@", 1)[1] for s in computed_by_workers if "@" in s} == selected   # none came from a cache

    collector = make_project(tmp_path_factory.mktemp("collector"), tiny_params(), cache)
    ran = ran_stages(dvc(["repro"], collector).stdout)
    computed = {s for s in ran if s.startswith(("cell@", "chain@"))
                and json.loads((collector / "metrics/cells" / f"{s.split('@', 1)[1]}.json").read_text())}
    assert not computed and "train" not in ran, ran   # every selected cell came from the run-cache
    for cell in selected:
        got = json.loads((collector / "metrics/cells" / f"{cell}.json").read_text())
        want = json.loads((tiny_pipeline / "metrics/cells" / f"{cell}.json").read_text())
        assert _untimed(got) == _untimed(want), cell
        if "same_as" not in got:
            assert (collector / f"data/cells/{cell}/hyps.txt").read_bytes() == \
                (tiny_pipeline / f"data/cells/{cell}/hyps.txt").read_bytes(), cell
