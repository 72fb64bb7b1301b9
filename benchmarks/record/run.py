"""Run the record (benchmarks/record/record.yaml) in a clone and collect its raw outputs.

    python benchmarks/record/run.py --clone ../record --data ../shared/data/multi30k
    python benchmarks/record/run.py --clone ../record --data ../shared/data/multi30k --shard 0/4

In ``--clone`` (made with `git clone` of this repository's HEAD when the folder does not exist; an
existing project is reused as it is), each part of the record in turn: its catalog and `-S` list
applied to params.yaml (the overrides with DVC's own code, as `dvc exp run -S` applies them),
`tcompress catalog`, then `dvc repro` (with ``--shard I/N``: `dvc repro plan` and each other seed's
`seed_plan@S`, then `dvc repro $(tcompress shard --of N --index I --seeds-upstream)`; with
``--target``, `dvc repro --glob` of those stages only; with ``--all-seeds`` as well, each cell
target in every seed; ``--gather CLONE``: every cell stage CLONE ran with this clone's inputs,
restored from the shared run-cache), then `collect`.
``--collect-only --part P`` collects what the clone already holds as part P (the part it last ran).
``--workers N``: each part on N clones beside ``--clone`` on its DVC cache, side by side (a machine
with many cores, or one GPU shared by several processes: `--set runtime.device=cuda`): the seeds'
baselines one clone each, then N shards with every seed's cells split across them; then the workers'
outputs are collected together (the workers' output in ``<clone>.logs/``).
Collecting is additive: a cell already in the record and absent from the clone stays, so shards and
interrupted runs add up; a row nobody has computed stays pending. It refuses a clone whose baseline of
a seed is not the one that seed's recorded cells were measured on (`check_baselines`); ``--forget-seed``
starts a seed over.

What `collect` writes under ``--out`` (default benchmarks/results/record/), per part:
- ``params.yaml``: the params the clone ran with; ``machine.json``: CPU model and flags, cores,
  GPU name, torch version, the clone's commit and whether its tree was clean;
- ``seed<S>/baseline.json``, ``seed<S>/train.json``, ``seed<S>/cells/<cell>.json``: each seed's metrics;
- ``seed<S>/hyps.sha256``: the SHA-256 of each test translation file (the baseline's and each cell's);
- ``seed<S>/hyps/<cell>.txt.gz``: the translations themselves (the baseline's greedy ones as
  ``baseline.greedy``), so that a comparison can be computed again from the record when the clones
  that ran it are gone;
- ``aggregate/results.csv``, ``significance.json``, ``summary.json``: the aggregate over the seeds;
- ``pairs.json``: each comparison between two cells that benchmarks/record/claims.yaml names, Δ mean
  over the seeds with the seeds-and-sentences bootstrap interval (the aggregate's own).
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DATA_PLACEHOLDER = "MULTI30K"
STARTED = time.time()


def load_record(path: Path) -> dict:
    record = yaml.safe_load(path.read_text())
    unknown = set(record) - {"catalog", "set", "parts"}
    if unknown or "set" not in record:
        raise SystemExit(f"{path}: keys are catalog, set and parts (found {', '.join(sorted(record))})")
    return record


def part_names(record: dict) -> list[str]:
    return ["main", *record.get("parts", {})]


def part_overrides(record: dict, part: str, data: str | None) -> list[str]:
    """The `-S` list of a part, the data folder put in."""
    overrides = record["set"] if part == "main" else record["parts"][part]
    if data is None and any(DATA_PLACEHOLDER in o for o in overrides):
        raise SystemExit(f"the record reads the corpus from a folder: give --data (it replaces {DATA_PLACEHOLDER})")
    return [o.replace(DATA_PLACEHOLDER, str(Path(data).resolve())) if data else o for o in overrides]


def apply_part(params_file: Path, record: dict, part: str, data: str | None) -> None:
    """Put the record's catalog into ``params_file`` (each method's entry replaced, chains and seeds
    set), then apply the main part's overrides and the part's own on top, as `dvc exp run -S` does."""
    from dvc.utils.hydra import apply_overrides

    params = yaml.safe_load(params_file.read_text())
    params["catalog"].update(record.get("catalog", {}))
    params_file.write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    apply_overrides(str(params_file), part_overrides(record, "main", data))
    if part != "main":
        apply_overrides(str(params_file), part_overrides(record, part, data))


def run(cmd: list[str], cwd: Path, capture: bool = False) -> str:
    print("$", " ".join(cmd), flush=True)
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    done = subprocess.run(cmd, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE if capture else None)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}")
    return done.stdout if capture else ""


def repro(project: Path, shard: str | None, targets: list[str] = ()) -> None:
    dvc = [sys.executable, "-m", "dvc"]
    if targets:
        run([*dvc, "repro", "--glob", *targets], project)
        return
    if shard is None:
        run([*dvc, "repro"], project)
        return
    index, count = shard.split("/")
    # every seed's baseline first (restored where another worker trained it), then the cells of all
    # seeds split across the shards
    seeds = project_seeds(project)[1:]
    run([*dvc, "repro", "plan", *(f"seed_plan@{seed}" for seed in seeds)], project)
    targets = run([sys.executable, "-m", "tcompress.cli", "shard", "--of", count, "--index", index,
                   *(["--seeds-upstream"] if seeds else [])], project, capture=True).split()
    if targets:
        run([*dvc, "repro", *targets], project)


def worker_clones(project: Path, count: int) -> list[Path]:
    """``count`` clones of ``project``'s commit beside it (``<project>.0``, ``.1``, …), each on
    ``project``'s DVC cache, so that what one computes the others restore from the run-cache."""
    cache = run([sys.executable, "-m", "dvc", "cache", "dir"], project, capture=True).strip()
    clones = [project.with_name(f"{project.name}.{i}") for i in range(count)]
    for clone in clones:
        if not clone.exists():
            run(["git", "clone", "-q", str(project), str(clone)], project.parent)
            run([sys.executable, "-m", "dvc", "cache", "dir", "--local", cache], clone)
    return clones


def side_by_side(jobs: list[tuple[str, list[str]]], logs: Path, deadline: float | None = None) -> list[str]:
    """Run each job's command at once (its output in ``logs/<name>.log``); the names of those that
    failed. At ``deadline`` (a ``time.time()``), the ones still going are stopped, each with every
    process it started (a trained cell resumes from its last checkpoint next time)."""
    logs.mkdir(parents=True, exist_ok=True)
    started = time.time()
    procs = []
    for name, cmd in jobs:
        log = open(logs / f"{name}.log", "a")
        procs.append((name, log, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)))
    failed = []
    for name, log, proc in procs:
        try:
            code = proc.wait(timeout=None if deadline is None else max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            code = "stopped at the deadline"
        if code != 0:
            failed.append(name if code != "stopped at the deadline" else f"{name} ({code})")
        log.close()
    print(f"[{time.time() - started:.0f} s] {len(jobs) - len(failed)} of {len(jobs)} done"
          + (f"; failed: {', '.join(failed)} (logs in {logs})" if failed else ""), flush=True)
    return failed


def run_workers(project: Path, count: int, part: str, common: list[str],
                deadline: float | None = None) -> tuple[list[Path], list[str]]:
    """One part of the record on ``count`` worker clones of ``project`` on one DVC cache (a machine
    with many cores, or one GPU shared by several processes): every seed's baseline and plans side by
    side, one clone each; then the ``count`` shards side by side, each seed's cells split across them
    (``--seeds-upstream``). ``common``: each worker's arguments besides its clone and job. Returns
    the clones, for ``project`` to gather from, and the ones that failed or were stopped at
    ``deadline``."""
    seeds = project_seeds(project)   # the part is applied to ``project`` already
    clones = worker_clones(project, max(count, len(seeds)))
    logs = project.with_name(f"{project.name}.logs")
    baselines = ["plan", *(f"seed_plan@{seed}" for seed in seeds[1:])]   # each seed's baseline and its plans
    print(f"{part}: {len(seeds)} baselines side by side, then {count} shards", flush=True)

    def job(clone: Path, *extra: str) -> tuple[str, list[str]]:
        return clone.name, [sys.executable, __file__, "--clone", str(clone), *common, *extra, "--no-collect"]

    failed = side_by_side([job(clone, "--target", target) for clone, target in zip(clones, baselines)], logs, deadline)
    if failed:   # no shard could start, and the collecting clone would train the baselines itself
        raise SystemExit(f"{part}: a baseline failed ({', '.join(failed)}; logs in {logs})")
    return clones, side_by_side([job(clone, "--shard", f"{i}/{count}") for i, clone in enumerate(clones[:count])],
                                logs, deadline)


def across_seeds(targets: list[str], seeds: list[int]) -> list[str]:
    """Each cell or chain target (``cell@X``, ``chain@X``, ``seed_cell@X.seedS``, ``seed_chain@X.seedS``,
    globs allowed) as that stage in every seed of ``seeds`` (the first seed's stages have no suffix);
    other targets as they are. A stage another clone already ran is restored from the shared run-cache,
    so a clone gathers every seed's translations of a row, which a comparison over the seeds reads."""
    out: list[str] = []
    for target in targets:
        kind, _, name = target.partition("@")
        if kind in ("seed_cell", "seed_chain"):
            kind, name = kind.removeprefix("seed_"), name.rsplit(".seed", 1)[0]
        if kind not in ("cell", "chain") or not name:
            expanded = [target]
        else:
            expanded = [f"{kind}@{name}"] + [f"seed_{kind}@{name}.seed{seed}" for seed in seeds[1:]]
        out += [t for t in expanded if t not in out]
    return out


CELL_STAGES = ("cell@", "chain@", "seed_cell@", "seed_chain@")


def _lock_stages(project: Path) -> dict[str, dict]:
    """dvc.lock's stages (read again if a running `dvc repro` was rewriting it)."""
    for _ in range(5):
        try:
            return (yaml.safe_load((project / "dvc.lock").read_text()) or {}).get("stages", {})
        except FileNotFoundError:
            return {}
        except yaml.YAMLError:
            time.sleep(1)
    raise SystemExit(f"{project / 'dvc.lock'} could not be read")


def _file_md5(path: Path) -> str | None:
    return hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else None


def gather_targets(project: Path, sources: list[Path]) -> list[str]:
    """The cell and chain stages another clone ran with the very inputs this clone holds (its plan
    file, a chain's parent's folder), so that `dvc repro` of them here restores their outputs from
    the shared run-cache and computes nothing. A stage this clone's lock already records with those
    inputs is left out, as is one whose plan here is absent or different. A chain's parent counts as
    held when this clone's lock records that folder, or when the parent is gathered from the same
    clone with the outputs the chain read."""
    ours = _lock_stages(project)
    held = {o["path"]: o.get("md5") for stage in ours.values() for o in stage.get("outs", [])}
    wanted: list[str] = []
    for source in sources:
        theirs = _lock_stages(source)
        produced = {o["path"]: (name, o.get("md5")) for name, stage in theirs.items() for o in stage.get("outs", [])}
        for name, stage in sorted(theirs.items(), key=lambda item: "chain" in item[0]):   # parents first
            deps = stage.get("deps", [])
            if not name.startswith(CELL_STAGES) or name in wanted or not deps or ours.get(name, {}).get("deps") == deps:
                continue

            def have(dep: dict) -> bool:
                if not str(dep.get("md5", "")).endswith(".dir"):
                    return _file_md5(project / dep["path"]) == dep.get("md5")
                parent, md5 = produced.get(dep["path"], (None, None))
                return held.get(dep["path"]) == dep["md5"] or (parent in wanted and md5 == dep["md5"])

            if all(have(dep) for dep in deps):
                wanted.append(name)
    return wanted


def machine(project: Path) -> dict:
    """The CPU's model and flags, the GPU's name, and the commit the record was run at."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        fields = dict(line.split(":", 1) for line in cpuinfo.read_text().splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu"] = fields.get("model name")
        info["cpu_flags"] = sorted(fields.get("flags", "").split())
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = info["gpu"] = None
    git = ["git", "-C", str(project)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    info["commit"] = head.stdout.strip() or None
    # params.yaml, the stage list, the lock, the metrics and the .gitignore files DVC keeps are the record's
    # own changes; anything else modified is not the commit
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!params.yaml",
                            ":!stages/cells.yaml", ":!dvc.lock", ":!metrics", ":(exclude,glob)**/.gitignore"],
                           capture_output=True, text=True)
    info["clean"] = head.returncode == 0 and not dirty.stdout.strip()
    return info


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}


def project_seeds(project: Path) -> list[int]:
    """The seeds a project's params.yaml selects (``seeds``: one or a list), the first seed first."""
    seeds = yaml.safe_load((project / "params.yaml").read_text())["seeds"]
    return seeds if isinstance(seeds, list) else [seeds]


def seed_sources(project: Path, seeds: list[int]) -> dict[int, dict[str, Path]]:
    """Where each seed's metrics and translations are in a project."""
    out = {}
    for i, seed in enumerate(seeds):
        if i == 0:
            out[seed] = {"metrics": project / "metrics", "cells": project / "data/cells", "eval": project / "data/eval"}
        else:
            out[seed] = {"metrics": project / "metrics/seeds" / str(seed),
                         "cells": project / "data/seeds" / str(seed) / "cells",
                         "eval": project / "data/seeds" / str(seed) / "eval"}
    return out


def recorded_seeds(collected: Path) -> list[int]:
    """The seeds a collected part has a folder of."""
    return sorted(int(p.name[4:]) for p in collected.glob("seed*") if p.is_dir() and p.name[4:].isdigit())


def _read_hashes(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {name: digest for digest, name in (line.split("  ", 1) for line in path.read_text().splitlines() if line)}


def current_outputs(project: Path) -> set[str]:
    """The outputs (paths relative to ``project``) of the stages that are up to date there: stages that
    dvc.lock records and `dvc status` does not list. A metrics file that a clone holds from git, or
    that a stage wrote for an earlier baseline or setting, is not one of them."""
    stages = _lock_stages(project)
    done = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=project, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(project)})
    if done.returncode != 0:
        raise SystemExit(f"dvc status failed in {project}: {done.stderr.strip()[-500:]}")
    changed = set(json.loads(done.stdout or "{}"))
    return {o["path"] for name, stage in stages.items() if name not in changed for o in stage.get("outs", [])}


def collect(projects: Path | list[Path], out: Path, pairs: list[tuple[str, str]] = ()) -> dict:
    """Copy one part's raw outputs from a clone, or from several clones of one commit on one DVC cache
    (the workers of ``--workers``), into ``out``, adding to what is there: the outputs of the stages
    that are up to date in each (``current_outputs``), and for each cell its Δ against its reference
    with the seeds-and-sentences interval (``deltas.json``, for the cells the aggregate has not reached
    yet), computed once, from the translations the record then keeps."""
    projects = [projects] if isinstance(projects, Path) else list(projects)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".collect.lock", "w") as lock:   # clones collecting into one folder take turns
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _collect(projects, out, pairs)


def _collect(projects: list[Path], out: Path, pairs: list[tuple[str, str]]) -> dict:
    with ThreadPoolExecutor(len(projects)) as pool:     # each clone's `dvc status`, side by side
        currents = dict(zip(projects, pool.map(current_outputs, projects)))

    def up_to_date(project: Path, path: Path) -> bool:
        return str(path.relative_to(project)) in currents[project]

    first = projects[0]
    seeds = project_seeds(first)
    check_baselines(out, projects, seeds, up_to_date)
    shutil.copy(first / "params.yaml", out / "params.yaml")
    (out / "machine.json").write_text(json.dumps(machine(first), indent=1) + "\n")
    for project in projects:
        for seed, src in seed_sources(project, seeds).items():
            dest = out / f"seed{seed}"
            (dest / "cells").mkdir(parents=True, exist_ok=True)
            for name in ("baseline.json", "train.json"):
                if _json(src["metrics"] / name) and up_to_date(project, src["metrics"] / name):
                    shutil.copy(src["metrics"] / name, dest / name)
            hashes = _read_hashes(dest / "hyps.sha256")
            for decoding in ("greedy", "beam"):
                hyps = src["eval"] / f"baseline.{decoding}.txt"
                if hyps.exists() and up_to_date(project, src["eval"]):
                    hashes[f"baseline.{decoding}"] = _sha256(hyps)
                    if decoding == "greedy":
                        keep_translations(dest, "baseline.greedy", hyps)
            for metrics in sorted((src["metrics"] / "cells").glob("*.json")):
                if not _json(metrics) or not up_to_date(project, metrics):   # an 'off' cell (empty metrics), or stale
                    continue
                shutil.copy(metrics, dest / "cells" / metrics.name)
                hyps = src["cells"] / metrics.stem / "hyps.txt"
                if hyps.exists():
                    hashes[metrics.stem] = _sha256(hyps)
                    keep_translations(dest, metrics.stem, hyps)
            (dest / "hyps.sha256").write_text("".join(f"{h}  {n}\n" for n, h in sorted(hashes.items())))
        aggregate = out / "aggregate"
        aggregate.mkdir(exist_ok=True)
        for name in ("results.csv", "significance.json", "summary.json"):
            if (project / "metrics" / name).exists() and up_to_date(project, project / "metrics" / name):
                shutil.copy(project / "metrics" / name, aggregate / name)
    # each comparison once, over every seed: translations another clone collected come from the record
    comparisons = (("pairs.json", "pairs", list(pairs)), ("deltas.json", "deltas", reference_pairs(out, seeds)))
    for name, key, wanted in comparisons:
        if wanted:
            known = {(p["a"], p["b"]): p for p in _json(out / name).get(key, [])}
            measured = compare_pairs(first, seeds, wanted, out, known)
            merged = merge_comparisons(known, measured)
            (out / name).write_text(json.dumps({key: list(merged.values())}, indent=1) + "\n")
    return {seed: len(list((out / f"seed{seed}" / "cells").glob("*.json"))) for seed in seeds}


def keep_translations(dest: Path, name: str, hyps: Path) -> None:
    """``dest/hyps/<name>.txt.gz``: a seed's test translations, gzip'd byte for byte the same for the
    same text (no time stamp), so that the record's comparisons can be computed again from the record
    alone, by a clone that no longer holds that seed (``compare_pairs``)."""
    data = hyps.read_bytes()
    path = dest / "hyps" / f"{name}.txt.gz"
    packed = gzip.compress(data, compresslevel=9, mtime=0)
    if not path.exists() or path.read_bytes() != packed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(packed)


def recorded_translations(collected: Path, seed: int, cell: str) -> tuple[Path, str] | None:
    """A cell's translations in one seed of the record (``baseline``: the baseline's greedy ones) and
    their SHA-256, where the record keeps them and they are what ``hyps.sha256`` names."""
    folder = collected / f"seed{seed}"
    if cell == "baseline":
        name = "baseline.greedy"
    else:
        from tcompress.results import translations_folder

        metrics = _json(folder / "cells" / f"{cell}.json")
        if not metrics:
            return None
        name = translations_folder(cell, metrics.get("same_as"))
    path, digest = folder / "hyps" / f"{name}.txt.gz", _read_hashes(folder / "hyps.sha256").get(name)
    if digest is None or not path.exists() or hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest() != digest:
        return None
    return path, digest


def _baseline_models(project: Path, seeds: list[int]) -> dict[int, str | None]:
    """Each seed's baseline model as ``project``'s dvc.lock records it (the train stage's output hash)."""
    stages = _lock_stages(project)
    found = {}
    for i, (seed, src) in enumerate(seed_sources(project, seeds).items()):
        stage, path = "train" if i == 0 else f"seed_train@{seed}", str((src["eval"].parent / "model").relative_to(project))
        found[seed] = next((o.get("md5") for o in stages.get(stage, {}).get("outs", []) if o["path"] == path), None)
    return found


def check_baselines(out: Path, projects: list[Path], seeds: list[int], up_to_date) -> None:
    """Refuse, before anything is written, to add clones' cells to a seed of the record that was
    measured on another baseline: each seed's cells are compared with that seed's baseline and control,
    so they must all come from one. The baseline is known by the hash of its greedy test translations
    (``hyps.sha256``: ``baseline.greedy``), which one of the clones must show (its evaluation up to
    date) where they add anything to that seed; clones collected together must hold one model of each
    seed. A baseline trained again (a lost clone, another CPU, another library version) is another
    baseline even with the same seed and params. ``up_to_date(project, path)``: whether a stage up to
    date in ``project`` wrote ``path``."""
    models = [_baseline_models(project, seeds) for project in projects]
    for seed in seeds:
        held = {m[seed] for m in models if m[seed] is not None}
        if len(held) > 1:
            raise SystemExit(f"seed {seed}: the clones hold {len(held)} different baselines of it "
                             f"({', '.join(sorted(h[:12] for h in held))}); collect them apart")
    sources = {project: seed_sources(project, seeds) for project in projects}

    def touches(project: Path, seed: int) -> bool:   # has anything up to date to add to the seed
        src = sources[project][seed]
        files = [src["metrics"] / "baseline.json", src["metrics"] / "train.json",
                 *(src["metrics"] / "cells").glob("*.json")]
        return up_to_date(project, src["eval"]) or any(_json(f) and up_to_date(project, f) for f in files)

    for seed in seeds:
        recorded = _read_hashes(out / f"seed{seed}" / "hyps.sha256").get("baseline.greedy")
        if (recorded is None or not any((out / f"seed{seed}" / "cells").glob("*.json"))
                or not any(touches(project, seed) for project in projects)):
            continue
        shown = [hyps for project in projects
                 if (hyps := sources[project][seed]["eval"] / "baseline.greedy.txt").exists()
                 and up_to_date(project, hyps.parent)]
        if not shown:
            raise SystemExit(
                f"seed {seed}: the record's cells were measured on a baseline this clone cannot show it holds "
                f"(its baseline evaluation is not up to date): run `dvc repro "
                f"{'evaluate' if seed == seeds[0] else f'seed_evaluate@{seed}'}` in the clone first")
        if (digest := _sha256(shown[0])) != recorded:
            raise SystemExit(
                f"seed {seed}: this clone's baseline is not the one the record's seed-{seed} cells were measured on "
                f"(greedy test translations {digest[:12]}, recorded {recorded[:12]}), so its cells cannot be "
                f"added to them. Restore that baseline (the DVC remote or cache that holds it), or start the seed over: "
                f"`python benchmarks/record/run.py --forget-seed {seed} --part {out.name} --clone ...`")


def forget_seed(out: Path, seed: int) -> int:
    """Take seed ``seed`` out of a collected part: its folder, and every comparison computed over it
    (its interval included that seed's translations; a later collect recomputes it over the seeds that
    are left, where the clone holds them). Returns how many comparisons went."""
    shutil.rmtree(out / f"seed{seed}", ignore_errors=True)
    dropped = 0
    for name, key in (("deltas.json", "deltas"), ("pairs.json", "pairs")):
        entries = _json(out / name).get(key)
        if entries is None:
            continue
        kept = [e for e in entries if seed not in e.get("seeds", [])]
        dropped += len(entries) - len(kept)
        (out / name).write_text(json.dumps({key: kept}, indent=1) + "\n")
    return dropped


def merge_comparisons(known: dict[tuple[str, str], dict], measured: list[dict]) -> dict[tuple[str, str], dict]:
    """The record's comparisons after a collect: a new measurement replaces the known one when it
    covers every seed the known one did (a rerun cell, or more seeds); a clone that holds fewer of the
    seeds (a worker that ran one seed) does not replace a wider one with its own."""
    merged = dict(known)
    for entry in measured:
        old = merged.get((entry["a"], entry["b"]))
        if old is None or set(entry["seeds"]) >= set(old.get("seeds", [])):
            merged[(entry["a"], entry["b"])] = entry
    return merged


def reference_pairs(out: Path, seeds: list[int]) -> list[tuple[str, str]]:
    """(reference, cell) for every cell collected in ``out``: the method's control (``<method>-control``)
    where the record has one for that method, else the baseline's greedy translations (``baseline``),
    the aggregate's rule."""
    cells: dict[str, dict] = {}
    for seed in seeds:
        for f in sorted((out / f"seed{seed}" / "cells").glob("*.json")):
            cells.setdefault(f.stem, _json(f))
    pairs = []
    for cell, metrics in cells.items():
        if metrics.get("control"):
            continue
        control = f"{metrics.get('method')}-control"
        pairs.append((control if control in cells else "baseline", cell))
    return pairs


def compare_pairs(project: Path, seeds: list[int], pairs: list[tuple[str, str]], collected: Path | None = None,
                  known: dict[tuple[str, str], dict] | None = None) -> list[dict]:
    """Δ = BLEU(b) − BLEU(a) per seed and its seeds-and-sentences bootstrap interval, for each pair
    whose two cells have translations in a seed (with ``collected``: only translations whose hash
    that folder's ``hyps.sha256`` holds, i.e. of the stages collected as up to date). Each entry names
    the translations it was computed from (``inputs``: per seed, the two files' SHA-256); a ``known``
    entry with the same inputs is returned as it is, not recomputed."""
    import pandas as pd
    from sacrebleu.metrics import BLEU
    from tqdm.auto import tqdm

    from tcompress.data.corpora import read_text_lines
    from tcompress.significance import seed_bootstrap

    test = project / "data/prepared/test.parquet"
    if not test.exists():
        return []
    references = [str(t) for t in pd.read_parquet(test)["target"]]
    sources = seed_sources(project, seeds)
    if collected is not None:   # and the seeds the record keeps translations of, that this clone does not hold
        seeds = [*seeds, *sorted(s for s in recorded_seeds(collected) if s not in seeds)]
    out = []
    known = known or {}
    for a, b in tqdm(pairs, desc="comparisons", unit="pair", leave=False, disable=None):
        found = []
        for seed in seeds:
            files = [_translations(sources[seed], cell) if seed in sources else None for cell in (a, b)]
            digests = [_sha256(f) if f is not None else None for f in files]
            if collected is not None:   # the translations' folder names their hash (a shared control: its twin)
                hashes = _read_hashes(collected / f"seed{seed}" / "hyps.sha256")
                digests = [d if d is not None and hashes.get("baseline.greedy" if c == "baseline" else f.parent.name)
                           == d else None for f, d, c in zip(files, digests, (a, b))]
                for i, cell in enumerate((a, b)):   # not here, or not what was collected: the record's own copy
                    if digests[i] is None and (kept := recorded_translations(collected, seed, cell)) is not None:
                        files[i], digests[i] = kept
            if all(d is not None for d in digests):
                found.append((seed, files, digests))
        if not found:
            continue
        inputs = {str(seed): digests for seed, _, digests in found}
        if known.get((a, b), {}).get("inputs") == inputs:
            out.append(known[(a, b)])
            continue
        per_seed = [(seed, *[read_text_lines(f) for f in files]) for seed, files, _ in found]
        bleu = BLEU()
        deltas = [bleu.corpus_score(hb, [references]).score - bleu.corpus_score(ha, [references]).score
                  for _, ha, hb in per_seed]
        interval = seed_bootstrap([(ha, hb) for _, ha, hb in per_seed], references)
        out.append({"a": a, "b": b, "n": len(per_seed), "seeds": [s for s, _, _ in per_seed],
                    "delta_mean": round(sum(deltas) / len(deltas), 4), "ci_low": interval["ci_low"],
                    "ci_high": interval["ci_high"], "inputs": inputs})
    return out


def _translations(source: dict[str, Path], cell: str) -> Path | None:
    """A cell's test translations in one seed; ``baseline`` names the baseline's greedy ones. A cell
    whose metrics are empty (off) or missing has none."""
    if cell == "baseline":
        path = source["eval"] / "baseline.greedy.txt"
        return path if path.exists() else None
    from tcompress.results import translations_folder

    metrics = _json(source["metrics"] / "cells" / f"{cell}.json")
    if not metrics:
        return None
    # a shared control's translations are its twin's
    path = source["cells"] / translations_folder(cell, metrics.get("same_as")) / "hyps.txt"
    return path if path.exists() else None


def claim_pairs(claims_file: Path) -> list[tuple[str, str]]:
    """The (against, cell) pairs of claims.yaml whose reference is another cell, not the aggregate's."""
    claims = yaml.safe_load(claims_file.read_text())
    pairs = []
    for paper in claims["papers"]:
        for row in paper["rows"]:
            if row.get("against", "reference") != "reference" and row.get("cell"):
                pairs.append((row["against"], row["cell"]))
    return list(dict.fromkeys(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clone", required=True, type=Path, help="the project to run in (cloned from HEAD if absent)")
    parser.add_argument("--data", help="a folder holding the six Multi30k .gz files")
    parser.add_argument("--record", type=Path, default=HERE / "record.yaml")
    parser.add_argument("--claims", type=Path, default=HERE / "claims.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/record")
    parser.add_argument("--part", action="append", help="run only these parts (default: all, main first)")
    parser.add_argument("--shard", help="I/N: run shard I of N of each part's cells (no aggregate until a plain run)")
    parser.add_argument("--target", action="append", default=[], dest="targets",
                        help="dvc repro only these stages (glob patterns, e.g. 'cell@gptq-*'), then collect what there is")
    parser.add_argument("--all-seeds", action="store_true",
                        help="each cell or chain --target in every seed of the record (restored from the run-cache "
                             "where another clone ran it), so the clone's comparisons cover all seeds")
    parser.add_argument("--gather", action="append", default=[], type=Path,
                        help="another clone on the same DVC cache: restore here every cell it ran with this "
                             "clone's inputs (from the run-cache; nothing computes), then collect")
    parser.add_argument("--set", action="append", default=[], dest="extra",
                        help="an extra -S override after each part's (a device: runtime.device=cuda)")
    parser.add_argument("--collect-only", action="store_true")
    parser.add_argument("--no-collect", action="store_true", help="run, do not collect (a worker of --workers)")
    parser.add_argument("--workers", type=int, default=0,
                        help="run each part on this many clones of --clone side by side (one DVC cache), then "
                             "collect from all of them")
    parser.add_argument("--deadline", type=float,
                        help="with --workers: stop the workers this many seconds after the start, then collect "
                             "what they finished (a time limit on the machine; run again to go on)")
    parser.add_argument("--forget-seed", type=int, action="append", default=[],
                        help="before anything else, take this seed out of each --part's record (its cells and every "
                             "comparison over it): to start a seed over on a baseline trained again")
    args = parser.parse_args()

    record = load_record(args.record)
    parts = args.part or part_names(record)
    if args.collect_only and not args.part and len(parts) > 1:
        # a clone holds one part's state at a time (the last one run): collecting it as every part would
        # file one part's cells under the others
        parser.error("--collect-only collects the part the clone last ran: name it with --part "
                     f"(one of {', '.join(parts)})")
    if args.forget_seed and not args.part:
        parser.error("--forget-seed takes the seed out of the parts named with --part")
    for part in parts:
        for seed in args.forget_seed:
            print(f"{part}: seed {seed} forgotten, and {forget_seed(args.out / part, seed)} comparisons over it")
    project = args.clone.resolve()
    if not project.exists():
        run(["git", "clone", "-q", str(REPO), str(project)], REPO.parent)
    pairs = claim_pairs(args.claims) if args.claims.exists() else []
    failures: list[str] = []
    deadline = None if args.deadline is None else STARTED + args.deadline
    for part in parts:
        if not args.collect_only:
            apply_part(project / "params.yaml", record, part, args.data)
            if args.extra:
                from dvc.utils.hydra import apply_overrides

                apply_overrides(str(project / "params.yaml"), args.extra)
            run([sys.executable, "-m", "tcompress.cli", "catalog"], project)
            targets = args.targets
            if args.workers:
                common = ["--part", part, "--record", str(args.record), "--claims", str(args.claims),
                          "--out", str(args.out), *(["--data", args.data] if args.data else []),
                          *(f"--set={o}" for o in args.extra)]
                collected, failed = run_workers(project, args.workers, part, common, deadline)
                failures += [f"{part}: {c}" for c in failed]
            if args.all_seeds:
                targets = across_seeds(targets, project_seeds(project))
            if args.gather:
                found = gather_targets(project, [g.resolve() for g in args.gather])
                print(f"gathering {len(found)} cell stages from {', '.join(map(str, args.gather))}", flush=True)
                targets = [*targets, *found]
            if not args.workers and (targets or not args.gather):   # nothing to gather: no `dvc repro` of the grid
                repro(project, args.shard, targets)
        if args.no_collect:
            continue
        if args.workers and args.collect_only:   # the workers an earlier run made
            collected = sorted(project.parent.glob(f"{project.name}.[0-9]*"), key=lambda c: int(c.suffix[1:]))
        counts = collect(collected if args.workers else project, args.out / part, pairs)
        print(f"{part}: collected into {args.out / part}: " + ", ".join(f"seed {s} {n} cells" for s, n in counts.items()))
    if failures:
        raise SystemExit(f"workers failed (what they finished is collected): {'; '.join(failures)}")


if __name__ == "__main__":
    main()
