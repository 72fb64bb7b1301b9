"""Shards: every selected cell in exactly one shard, chains after the cell they start from, balanced
by estimated cost, the same split on every worker."""

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, kill_after, make_project, ran_stages, run, tiny_params
from s3_store import s3_store  # noqa: F401  (the session's S3 store, a fixture)
from tcompress.params import params_from_dict
from tcompress.plan import resolve
from tcompress.shard import SEED_UPSTREAM, split, units

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


def test_the_catalogs_off_stages_go_into_the_shards_too(tmp_path):
    """Every cell, chain and seed stage of dvc.yaml, and the baseline's evaluation, in exactly one
    shard, the catalog's off ones included (so the collector writes no marker): an off chain after
    its parent, an off seed's stages together; the command says how many are off."""
    from click.testing import CliRunner

    from tcompress.cli import main
    from tcompress.grid import _stage_lists

    raw = tiny_params(methods=["ptq", "agp", "lottery"], chains=["lottery:50-rewind-full > lottery:80-rewind"],
                      seeds=[1234, 5], catalog={**CATALOG, "seeds": [5, 6]})
    raw["lottery"]["inits"] = ["rewind"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    lists = _stage_lists(params_from_dict(raw))
    every = {"evaluate", *(f"cell@{c}" for c in lists["cells"]), *(f"chain@{c}" for c in lists["chain_stages"]),
             *(f"seed_cell@{k}" for k in lists["seed_cells"]), *(f"seed_chain@{k}" for k in lists["seed_chains"]),
             *(f"{stage}@{seed}" for stage in SEED_UPSTREAM for seed in lists["seed_stages"])}
    shards, offs = [], 0
    for i in range(3):
        result = CliRunner().invoke(main, ["shard", "--of", "3", "--index", str(i), "--params",
                                           str(tmp_path / "params.yaml"), "--no-check", "--measured",
                                           str(tmp_path / "none")])
        assert result.exit_code == 0, result.output
        shards.append(result.stdout.split())
        offs += int(result.stderr.split("(")[1].split(" of them off")[0])
    flat = list(itertools.chain(*shards))
    assert len(flat) == len(set(flat)) and set(flat) == every
    cells = resolve(params_from_dict(raw))["cells"]["cells"]
    kind = {c: "chain" if "parent" in e else "cell" for c, e in cells.items()}
    selected_stages = {"evaluate", *(f"{k}@{c}" for c, k in kind.items()),
                       *(f"seed_{k}@{c}.seed5" for c, k in kind.items()),
                       *(f"{stage}@5" for stage in SEED_UPSTREAM)}
    assert selected_stages < every and offs == len(every - selected_stages)
    off_chain = "chain@agp-10-70-1-full_then_kmeans-4-full"   # off; its parent, the AGP cell, is selected
    assert off_chain in every and "agp-10-70-1-full" in cells
    shard = next(s for s in shards if off_chain in s)
    assert shard.index("cell@agp-10-70-1-full") < shard.index(off_chain)
    seed6 = next(s for s in shards if "seed_train@6" in s)
    assert {t for t in every if t.endswith(("@6", ".seed6"))} <= set(seed6)   # the off seed in one shard


def test_with_seeds_upstream_each_seed_s_cells_are_split_across_the_shards(tmp_path):
    """When the other seeds' baselines have run first, their cells are split like the first seed's:
    every stage once, each chain after its root in the same shard, a selected seed's shared baseline
    stages in no shard (its evaluation in one), an off seed's markers still together, and one seed's
    cells on several workers."""
    from click.testing import CliRunner

    from tcompress.cli import main
    from tcompress.grid import _stage_lists
    from tcompress.shard import SEED_SHARED

    raw = tiny_params(methods=["ptq", "qat", "agp", "imp", "kmeans", "lottery"], chains=CHAINS,
                      seeds=[1234, 5], catalog={**CATALOG, "seeds": [5, 6]})
    raw["lottery"]["inits"] = ["rewind"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    lists = _stage_lists(params_from_dict(raw))
    every = {"evaluate", *(f"cell@{c}" for c in lists["cells"]), *(f"chain@{c}" for c in lists["chain_stages"]),
             *(f"seed_cell@{k}" for k in lists["seed_cells"]), *(f"seed_chain@{k}" for k in lists["seed_chains"]),
             *(f"{stage}@{seed}" for stage in SEED_UPSTREAM for seed in lists["seed_stages"])}
    upstream = {f"{stage}@5" for stage in SEED_SHARED}

    def shard(i, *flags):
        result = CliRunner().invoke(main, ["shard", "--of", "4", "--index", str(i), "--params",
                                           str(tmp_path / "params.yaml"), "--no-check", "--measured",
                                           str(tmp_path / "none"), *flags])
        assert result.exit_code == 0, result.output
        return result.stdout.split(), result.stderr

    shards = [shard(i, "--seeds-upstream")[0] for i in range(4)]
    flat = list(itertools.chain(*shards))
    assert len(flat) == len(set(flat)) and set(flat) == every - upstream
    cells = resolve(params_from_dict(raw))["cells"]["cells"]
    for seed_shard in shards:
        for i, target in enumerate(seed_shard):
            if target.startswith("seed_chain@") and target.endswith(".seed5"):
                key = target.split("@", 1)[1].removesuffix(".seed5")
                parent = cells[key]["parent"]
                parent_stage = ("seed_chain@" if "parent" in cells[parent] else "seed_cell@") + f"{parent}.seed5"
                assert parent_stage in seed_shard[:i], (target, seed_shard)
    holding_seed5 = [s for s in shards if any(t.endswith(".seed5") for t in s)]
    assert len(holding_seed5) > 1
    seed6 = next(s for s in shards if "seed_train@6" in s)
    assert {t for t in every if t.endswith(("@6", ".seed6"))} <= set(seed6)
    assert "their cells split across the shards" in shard(0, "--seeds-upstream")[1]
    # without the flag, seed 5 is one unit: its baseline stages, then every one of its cells, in one shard
    plain = [shard(i)[0] for i in range(4)]
    (whole,) = [s for s in plain if "seed_train@5" in s]
    assert {t for t in every if t.endswith(("@5", ".seed5"))} <= set(whole)


def test_the_split_reads_the_committed_costs_so_a_worker_gets_its_list_back_after_running_cells(tmp_path, monkeypatch):
    """A worker's own cells rewrite metrics/cells in its workspace; the split reads them as the commit
    holds them, so the same command run again (after a crash) prints the same targets."""
    from click.testing import CliRunner

    from tcompress.cli import main
    from tcompress.shard import committed_metrics

    monkeypatch.chdir(tmp_path)
    raw = tiny_params(methods=["ptq", "qat", "agp", "imp", "kmeans", "lottery"], chains=CHAINS)
    raw["catalog"] |= CATALOG
    raw["lottery"]["inits"] = ["rewind"]
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    Path("metrics/cells").mkdir(parents=True)
    measured = {"qat-sym-4-full": ("qat", 50.0), "agp-10-70-1-full": ("agp", 40.0), "imp-full": ("imp", 45.0)}
    for cell, (method, seconds) in measured.items():
        Path(f"metrics/cells/{cell}.json").write_text(json.dumps({"method": method, "compress_seconds": seconds}))
    assert committed_metrics(Path("metrics/cells")) is None   # not a git work tree yet
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "m"]):
        subprocess.run(["git", *args], check=True)

    def shards() -> list[str]:
        return [CliRunner().invoke(main, ["shard", "--of", "2", "--index", str(i), "--no-check"]).stdout
                for i in (0, 1)]
    before = shards()
    # this worker has since measured its IMP cell as the slowest of all, and a k-means cell
    Path("metrics/cells/imp-full.json").write_text(json.dumps({"method": "imp", "compress_seconds": 900.0}))
    Path("metrics/cells/kmeans-4-att.json").write_text(json.dumps({"method": "kmeans", "compress_seconds": 1.0}))
    assert sorted(m["compress_seconds"] for m in committed_metrics(Path("metrics/cells"))) == [40.0, 45.0, 50.0]
    assert shards() == before
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "m2"], check=True)
    assert shards() != before   # committed, the new costs count


def test_no_shards_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        split(selected(), {}, 0)


def _untimed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if "second" not in k}


SCALE_OUT = REPO / "docs" / "scale-out.md"
S3_SECTION = "## Machines that share no disk: one S3 remote"


def s3_blocks() -> list[list[str]]:
    """The command lines of each shell block in scale-out.md's S3 section, comments cut."""
    section = SCALE_OUT.read_text().split(S3_SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```bash\n")[1:]
    return [[line.split("  #")[0].strip() for line in b.split("```", 1)[0].splitlines() if line.strip()]
            for b in blocks]


def sh(line: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return run(["bash", "-c", line], cwd, **kw)


def run_env(cwd: Path) -> dict:
    """conftest.run's environment: this interpreter's `python`, `dvc` and `tcompress`, the project's own code."""
    return {**os.environ, "PYTHONPATH": str(cwd),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def seeded_cache(shared_cache: Path, sequential: Path, dest: Path) -> None:
    """A machine that has computed the sequential run's shared stages and no cell: its objects, and
    the run-cache entries of its stages other than cells and chains (matched by their outputs)."""
    lock = yaml.safe_load((sequential / "dvc.lock").read_text())["stages"]

    def outs(entry: dict) -> str:
        return json.dumps(sorted((o["path"], o["md5"]) for o in entry.get("outs", [])))
    upstream = {outs(e) for name, e in lock.items() if not name.startswith(("cell@", "chain@")) and e.get("outs")}
    shutil.copytree(shared_cache / "files", dest / "files", dirs_exist_ok=True)
    for entry in (shared_cache / "runs").glob("*/*/*"):
        if outs(yaml.safe_load(entry.read_text())) in upstream:
            (dest / entry.relative_to(shared_cache)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(entry, dest / entry.relative_to(shared_cache))


@pytest.mark.slow
def test_two_machines_on_one_s3_remote_give_what_one_repro_gives(s3_store, tmp_path_factory, tiny_pipeline,
                                                                  shared_cache):
    """scale-out.md's S3 commands, as shown, on SeaweedFS's S3 gateway: two machines (clones, each
    its own cache) run their shards and push; the one whose shard holds the QAT cell is killed during
    that cell and run again, and resumes it. A third clone on an empty cache computes no cell with `dvc repro --pull`,
    and every cell's metrics and translations equal the sequential run's (``tiny_pipeline``)."""
    prefix = tmp_path_factory.mktemp("s3-prefix").name   # this run's folder in the session's bucket
    words = {"s3://my-bucket/tcompress": f"s3://{s3_store.bucket}/{prefix}",
             "http://s3.example.org:8333": s3_store.endpoint,
             "MY_KEY_ID": s3_store.key, "MY_SECRET": s3_store.secret}
    blocks = s3_blocks()
    assert [len(b) for b in blocks] == [3, 2, 3, 1], blocks
    text = "\n".join(sum(blocks, []))
    assert all(w in text for w in words) and text.count("--index 1") == 1, text

    def shown(line: str, index: int = 1) -> str:
        for word, value in words.items():
            line = line.replace(word, value)
        return line.replace("--index 1", f"--index {index}")
    setup, credentials, (first, restore, work), (collect,) = [[shown(c) for c in b] for b in blocks]

    # Machine 0 has computed the shared stages (the sequential run's), no cell; machine 1 nothing.
    machine0 = make_project(tmp_path_factory.mktemp("machine0"), tiny_params())
    seeded_cache(shared_cache, tiny_pipeline, machine0 / ".dvc" / "cache")
    shard = [sys.executable, "-m", "tcompress.cli", "shard", "--of", "2", "--index"]
    refused = run([*shard, "0"], machine0, check=False)
    assert refused.returncode == 1 and "run `dvc repro plan` once" in refused.stderr
    s3_store.ready()
    for line in setup:
        sh(line, machine0)
    machine1 = tmp_path_factory.mktemp("machine1") / "clone"
    run(["git", "clone", "-q", str(machine0), str(machine1)], machine0.parent)
    assert s3_store.endpoint in (machine1 / ".dvc/config").read_text()   # the remote comes with git
    assert not (machine1 / ".dvc/config.local").exists()                  # the credentials do not
    assert not (machine1 / ".dvc/cache").exists()                         # nor the cache
    workers = [machine0, machine1]
    for worker in workers:
        for line in credentials:
            sh(line, worker)

    sh(first, machine0)
    # What `dvc push --run-cache` alone leaves out: an output with `cache: false`, which its entry names
    lock = yaml.safe_load((machine0 / "dvc.lock").read_text())["stages"]
    md5 = next(o["md5"] for o in lock["prepare"]["outs"] if o["path"] == "metrics/prepare.json")
    assert f"{prefix}/files/md5/{md5[:2]}/{md5[2:]}" in s3_store.keys(f"{prefix}/files/md5/{md5[:2]}/")
    assert "train" not in ran_stages(sh(restore, machine1).stdout)   # from the S3 run-cache
    targets = [run([*shard, str(i)], w).stdout.split() for i, w in enumerate(workers)]
    selected = {t.split("@", 1)[1] for t in targets[0] + targets[1] if "@" in t}
    assert "evaluate" in targets[0] + targets[1]   # the baseline's evaluation: a worker's, not the collector's
    assert targets[0] and targets[1] and not set(targets[0]) & set(targets[1])

    # The machine with the QAT cell dies (SIGKILL, every process) after the cell's first checkpoint; run
    # again, the same command resumes the cell.
    trained = "qat-sym-4-full"
    k = next(i for i, mine in enumerate(targets) if f"cell@{trained}" in mine)
    checkpoint = workers[k] / f"data/resume/{trained}.pt"
    log = workers[k].parent / "killed.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "-c", shown(work, k)], cwd=workers[k], env=run_env(workers[k]),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        kill_after(proc, checkpoint, f"worker {k}'s {trained}", group=True)
    computed_by_workers = ran_stages(log.read_text())
    assert f"cell@{trained}" in computed_by_workers, log.read_text()
    assert not (workers[k] / f"metrics/cells/{trained}.json").exists()
    for i, worker in enumerate(workers):
        done = sh(shown(work, i), worker)
        computed_by_workers |= ran_stages(done.stdout)
        if i == k:
            assert f"resuming from data/resume/{trained}.pt" in done.stdout + done.stderr
            assert not checkpoint.exists()
    assert {s.split("@", 1)[1] for s in computed_by_workers if "@" in s} == selected   # none came from a cache
    assert any("/runs/" in k for k in s3_store.keys(f"{prefix}/")), "no run-cache entry was pushed"

    collector = tmp_path_factory.mktemp("collector") / "clone"
    run(["git", "clone", "-q", str(machine0), str(collector)], collector.parent)
    for line in credentials:
        sh(line, collector)
    assert not (collector / ".dvc/cache").exists()   # an empty cache
    ran = ran_stages(sh(collect, collector).stdout)
    # every cell and chain came from the run-cache, the catalog's off ones too (the workers wrote their markers)
    assert not {s for s in ran if s.startswith(("cell@", "chain@"))} and not {"train", "evaluate"} & ran, ran
    for cell in (c for c in selected if json.loads((tiny_pipeline / "metrics/cells" / f"{c}.json").read_text())):
        got = json.loads((collector / "metrics/cells" / f"{cell}.json").read_text())
        want = json.loads((tiny_pipeline / "metrics/cells" / f"{cell}.json").read_text())
        assert _untimed(got) == _untimed(want), cell
        if "same_as" not in got:
            assert (collector / f"data/cells/{cell}/hyps.txt").read_bytes() == \
                (tiny_pipeline / f"data/cells/{cell}/hyps.txt").read_bytes(), cell


@pytest.mark.slow
def test_seeds_upstream_through_dvc_refuses_before_the_seed_baselines_and_leaves_nothing_to_compute(tiny_pipeline,
                                                                                                    tmp_path):
    """On a two-seed copy of the tiny project: `--seeds-upstream` refuses, naming the command, until
    seed 5's baseline has run; then two shard workers (one after the other, in one clone) run every
    stage, and a last `dvc repro` computes nothing but the aggregate."""
    from tcompress.grid import cells_file_text

    project = tmp_path / "project"
    shutil.copytree(tiny_pipeline, project, symlinks=True)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["catalog"]["seeds"] = [5]
    params["seeds"] = [params["seeds"][0] if isinstance(params["seeds"], list) else params["seeds"], 5]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / "stages/cells.yaml").write_text(cells_file_text(params_from_dict(params)))   # `tcompress catalog`
    run(["git", "commit", "-qam", "two seeds"], project)

    def shard(index: int) -> subprocess.CompletedProcess:
        return run([sys.executable, "-m", "tcompress.cli", "shard", "--of", "2", "--index", str(index),
                    "--seeds-upstream"], project, check=False)

    run([sys.executable, "-m", "dvc", "repro", "plan"], project)
    refused = shard(0)
    assert refused.returncode != 0 and "dvc repro plan seed_plan@5" in refused.stderr, refused.stderr
    run([sys.executable, "-m", "dvc", "repro", "plan", "seed_plan@5"], project)
    lists = [shard(i).stdout.split() for i in (0, 1)]
    assert all(any(t.endswith(".seed5") for t in targets) for targets in lists), lists   # seed 5 on both
    for targets in lists:
        run([sys.executable, "-m", "dvc", "repro", *targets], project)
    last = run([sys.executable, "-m", "dvc", "repro"], project).stdout
    assert ran_stages(last) <= {"aggregate"}, ran_stages(last)
