"""The first contact, timed: a fresh clone's `dvc repro` of the default params, then a no-op rerun.

    python benchmarks/default_run.py [--avx2] [--out benchmarks/results/default_run.json]

Clones this repository's HEAD into a temporary directory (no DVC cache: everything computes), runs
`dvc repro` there with this interpreter's environment, then `dvc repro` again (nothing to do), and
writes the wall times, the baseline's and every computed cell's BLEU, the precision that ran and
the CPU's flags. ``--avx2`` limits PyTorch, oneDNN and MKL to AVX2 kernels (ATEN_CPU_CAPABILITY,
ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS), so a machine with AVX-512 or AMX runs the fp32 path
an AVX2-only CPU takes (``precision: auto`` finds no native bf16); the clock and caches stay this
machine's, so it approximates such a CPU, it does not replace one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_speed import cpu_flags  # noqa: E402  (the sibling benchmarks' readers of /proc/cpuinfo)
from test_durations import cpu as cpu_model_and_flags  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def cpu() -> dict:
    """The CPU's model, its logical CPUs and the flags that pick a precision or an int8 path."""
    return {"model": cpu_model_and_flags()[0], "cores": os.cpu_count(), "flags": cpu_flags()}


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


@click.command()
@click.option("--avx2", is_flag=True, help="AVX2 kernels only (the fp32 path of an AVX2-only CPU)")
@click.option("--out", default=str(REPO / "benchmarks/results/default_run.json"), show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--keep-cache", type=click.Path(file_okay=False),
              help="copy the clone's DVC cache (with its run-cache) here, e.g. this repository's .dvc/cache")
def main(avx2: bool, out: str, keep_cache: str | None) -> None:
    env = {**os.environ, **(AVX2_ONLY if avx2 else {})}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        env["PYTHONPATH"] = str(clone)   # the clone's own code, whatever is installed
        first, log = timed([sys.executable, "-m", "dvc", "repro"], clone, env)
        noop, _ = timed([sys.executable, "-m", "dvc", "repro"], clone, env)
        train = json.loads((clone / "metrics/train.json").read_text())
        baseline = json.loads((clone / "metrics/baseline.json").read_text())
        cells = {}
        for path in sorted((clone / "metrics/cells").glob("*.json")):
            m = json.loads(path.read_text())
            if m and "bleu" in m:
                cells[path.stem] = {"bleu": m["bleu"], "file_ratio": m.get("file_ratio")}
        if keep_cache:
            shutil.copytree(clone / ".dvc" / "cache", keep_cache, dirs_exist_ok=True)
    result = {"command": "python benchmarks/default_run.py" + (" --avx2" if avx2 else ""), "commit": commit,
              "cpu": cpu(), "avx2_kernels_only": avx2, "precision": train["precision"],
              "threads": os.environ.get("OMP_NUM_THREADS", "torch default"),
              "first_repro_seconds": round(first, 1), "noop_repro_seconds": round(noop, 1),
              "baseline_train_seconds": train["wall_seconds"], "baseline_steps": train["steps"],
              "baseline_bleu_greedy": baseline["greedy"]["bleu"], "baseline_bleu_beam": baseline["bleu"],
              "cells": cells, "stages_run": log.count("Running stage '")}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"first dvc repro {first:.0f} s, no-op {noop:.1f} s ({result['precision']}, {result['cpu']['flags']})")


if __name__ == "__main__":
    main()
