"""The deployable points through the pipeline: an 8-bit cell and a distilled student, exported and decoded by
CTranslate2 in their own stages, against the teacher's fp32 PyTorch decoding.

    python benchmarks/deploy_student.py [--cache DIR] [--threads 1] [--epochs 40] [--out benchmarks/results/deploy_student.json]

Clones HEAD, selects `ptq-sym-8-full` and a word-level distilled student (the default shape, trained
``--epochs`` on the synthetic corpus: the default 4 leave it untrained), turns the `deploy` section on
(`backend: ctranslate2`) and runs `dvc repro` (the baseline restored from the run-cache of ``--cache``
when it holds it). Writes the summary's `best_deployed` (the best deployable point and the fastest
export), the baseline's and both cells' metrics as the stages wrote them, the wall time and the CPU's
flags. Each speed is one pass of its own stage on this machine: run it on an otherwise idle one.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_run import cpu, timed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CELLS = ("ptq-sym-8-full", "distill-word-64-2-256")
KEYS = ("bleu", "file_bytes", "file_ratio", "sentences_per_second", "bleu_int8", "bleu_deployed",
        "sentences_per_second_deployed", "deployed_bytes", "deployed_exact", "deployed_differences",
        "deployed_compute_type", "deployed_gemm_backend", "deployed_int8_gemm", "deployed_intra_threads",
        "finetune_steps", "kept_epoch", "precision")


@click.command()
@click.option("--cache", type=click.Path(file_okay=False), help="a DVC cache whose run-cache may hold the baseline")
@click.option("--threads", default=1, show_default=True, help="torch threads and CTranslate2's intra_threads")
@click.option("--epochs", default=40, show_default=True, help="the student's epochs on the synthetic corpus")
@click.option("--out", default=str(REPO / "benchmarks/results/deploy_student.json"), show_default=True)
def main(cache: str | None, threads: int, epochs: int, out: str) -> None:
    env = {**os.environ, "PYTHONPATH": ""}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "project"
        timed(["git", "clone", "-q", str(REPO), str(dest)], Path(tmp), env)
        env["PYTHONPATH"] = str(dest)
        params = yaml.safe_load((dest / "params.yaml").read_text())
        params["methods"], params["chains"] = ["ptq", "distill"], []
        params["ptq"].update(bits=[8], modes=["sym"], groups=["full"])
        params["distill"]["kds"] = ["word"]
        params["distill"]["epochs"]["synthetic"] = epochs
        params["deploy"].update(backend="ctranslate2", threads=threads)
        params["runtime"]["threads"] = threads
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
        python = [sys.executable, "-m"]
        timed([*python, "tcompress.cli", "catalog"], dest, env)
        if cache:
            timed([*python, "dvc", "cache", "dir", str(Path(cache).resolve())], dest, env)
        git = ["git", "-c", "user.email=b@example.com", "-c", "user.name=bench"]
        timed([*git, "commit", "-qam", "deploy points"], dest, env)
        seconds, _ = timed([*python, "dvc", "repro"], dest, env)
        summary = json.loads((dest / "metrics/summary.json").read_text())
        baseline = json.loads((dest / "metrics/baseline.json").read_text())
        cells = {c: {k: v for k, v in json.loads((dest / f"metrics/cells/{c}.json").read_text()).items() if k in KEYS}
                 for c in CELLS}
        commit = timed(["git", "rev-parse", "--short", "HEAD~1"], dest, env)[1].strip()
    result = {"command": "python benchmarks/deploy_student.py" + (" --cache DIR" if cache else "")
              + f" --threads {threads} --epochs {epochs}",
              "commit": commit, "cpu": cpu(), "threads": threads, "repro_seconds": round(seconds, 1),
              "load_average": {"before": load_before, "after": os.getloadavg()},
              "baseline": {"bleu": baseline["greedy"]["bleu"], "sentences_per_second": baseline["greedy"].get("sentences_per_second"),
                           "checkpoint_bytes": baseline.get("checkpoint_bytes")},
              "baseline_deployed": summary.get("baseline_deployed"), "best_deployed": summary.get("best_deployed"),
              "cells": cells}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
