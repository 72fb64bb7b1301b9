"""Two 1-thread workers against one 2-thread `dvc repro`, on the same trained cells, in one run.

    python benchmarks/shard_speed.py [--rounds 1] [--out benchmarks/results/shard_speed.json]

Clones HEAD, selects trained cells (QAT, AGP, IMP, k-means and their controls: 4 cells and 2
controls at the default budgets) and trains the baseline once (`dvc repro plan`, 2 epochs: the
cells' cost does not depend on its quality). Its cache is then copied, so each arm starts with the
baseline and no cell. Per round, in alternating order:
- sequential: one clone, `runtime.threads: 0` (torch's default, every core), `dvc repro` of the
  shards' targets (the selected cells and the catalog's off markers);
- sharded: two clones on one cache, `runtime.threads: 1` each, `dvc repro $(tcompress shard --of 2
  --index I)` side by side; the time is until both finish.
Then a plain `dvc repro` in a third clone on the workers' cache must compute no cell; its time is
the collector's (with the stages it ran and how many it restored, and the time of its aggregate
run once more alone). Writes the times, their ratio and the CPU's flags.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_run import cpu  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GRID = {"methods": ["qat", "agp", "imp", "kmeans"], "chains": []}


def sh(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def clone(root: Path, name: str, cache: Path, threads: int, env: dict) -> Path:
    dest = root / name
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params.update(GRID)
    params["train"]["epochs"] = 2
    params["runtime"]["threads"] = threads
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh([sys.executable, "-m", "dvc", "cache", "dir", str(cache)], dest, env)
    return dest


def repro(project: Path, targets: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dvc", "repro", *targets], cwd=project,
                            env={**env, "PYTHONPATH": str(project)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def wait(procs: list[subprocess.Popen]) -> str:
    out = ""
    for p in procs:
        text, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(f"dvc repro failed:\n{text[-3000:]}")
        out += text
    return out


@click.command()
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--out", default=str(REPO / "benchmarks/results/shard_speed.json"), show_default=True)
def main(rounds: int, out: str) -> None:
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seed_cache = root / "cache-baseline"
        first = clone(root, "baseline", seed_cache, 0, env)
        sh([sys.executable, "-m", "dvc", "repro", "plan"], first, {**env, "PYTHONPATH": str(first)})
        cells = [t for i in range(2) for t in sh([sys.executable, "-m", "tcompress.cli", "shard", "--of", "2",
                                                   "--index", str(i)], first, {**env, "PYTHONPATH": str(first)}).split()]
        for r in range(rounds):
            arms = ["sequential", "sharded"] if r % 2 == 0 else ["sharded", "sequential"]
            row = {"round": r + 1, "order": arms}
            for arm in arms:
                cache = root / f"cache-{arm}-{r}"
                shutil.copytree(seed_cache, cache)
                if arm == "sequential":
                    project = clone(root, f"seq-{r}", cache, 0, env)
                    sh([sys.executable, "-m", "dvc", "repro", "plan"], project, {**env, "PYTHONPATH": str(project)})
                    start = time.perf_counter()
                    wait([repro(project, cells, env)])
                    row["sequential_seconds"] = round(time.perf_counter() - start, 1)
                else:
                    workers = [clone(root, f"w{i}-{r}", cache, 1, env) for i in range(2)]
                    shards = []
                    for i, w in enumerate(workers):
                        sh([sys.executable, "-m", "dvc", "repro", "plan"], w, {**env, "PYTHONPATH": str(w)})
                        shards.append(sh([sys.executable, "-m", "tcompress.cli", "shard", "--of", "2", "--index",
                                          str(i)], w, {**env, "PYTHONPATH": str(w)}).split())
                    start = time.perf_counter()
                    wait([repro(w, s, env) for w, s in zip(workers, shards)])
                    row["sharded_seconds"] = round(time.perf_counter() - start, 1)
                    row["shards"] = shards
                    collector = clone(root, f"collector-{r}", cache, 0, env)
                    start = time.perf_counter()
                    log = wait([repro(collector, [], env)])
                    row["collector_seconds"] = round(time.perf_counter() - start, 1)
                    ran = re.findall(r"^Running stage '(?:cell|chain)@([^']+)'", log, flags=re.MULTILINE)
                    row["collector_cells_computed"] = sum(   # an off cell's marker stage runs, computing nothing
                        1 for c in ran if json.loads((collector / "metrics/cells" / f"{c}.json").read_text()))
                    row["collector_stages_run"] = re.findall(r"^Running stage '([^']+)'", log, flags=re.MULTILINE)
                    row["collector_stages_restored"] = len(re.findall(r"^Stage '[^']+' is cached - skipping run",
                                                                      log, flags=re.MULTILINE))
                    start = time.perf_counter()   # its share of the collector's time: the aggregate once more
                    sh([sys.executable, "-m", "dvc", "repro", "-f", "-s", "aggregate"], collector,
                       {**env, "PYTHONPATH": str(collector)})
                    row["aggregate_alone_seconds"] = round(time.perf_counter() - start, 1)
            row["ratio"] = round(row["sequential_seconds"] / row["sharded_seconds"], 3)
            rows.append(row)
            click.echo(f"round {r + 1}: sequential {row['sequential_seconds']} s, two workers {row['sharded_seconds']} s "
                       f"({row['ratio']}x); collector {row['collector_seconds']} s, {row['collector_cells_computed']} cells computed, "
                       f"stages run {row['collector_stages_run']}, {row['collector_stages_restored']} restored")
    result = {"command": f"python benchmarks/shard_speed.py --rounds {rounds}", "cpu": cpu(), "cells": cells,
              "rounds": rows}
    Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
