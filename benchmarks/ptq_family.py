"""The post-training methods side by side, through the pipeline, on one baseline: BLEU, bytes, cost.

    python benchmarks/ptq_family.py [--data synthetic] [--cache DIR] [--out benchmarks/results/ptq_family.json]

Clones HEAD, selects weight-only round-to-nearest PTQ (per row, asymmetric, 8/4/3 bits, on every
Linear: the layers the others quantize, embeddings left float) beside gptq, awq, adaround and
smoothquant at the same three widths (smoothquant's inputs 8-bit) and the mixed-precision search at
its budgets, and runs the baseline's
stages (restored from the run-cache of --cache when it holds this baseline). Then it times each
stage on its own, in order, computing it even where the run-cache holds it: `calibrate` and
`sensitivity` (computed once, read by every cell of those methods) and every cell. The sweep's cost
is the sum of its stages; the RTN sweep's is its cells'. Writes every cell's metrics, the times, and
the CPU's flags.
"""

from __future__ import annotations

import json
import os
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
FAMILY = ["ptq", "gptq", "awq", "adaround", "smoothquant", "mixed"]
LINEARS = "att+ff+gen"   # every Linear of the model: what the calibrated methods' `full` group quantizes
SWEEP = ("gptq", "awq", "adaround", "smoothquant")
WIDTHS = (8, 4, 3)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def sh(cmd: list[str], cwd: Path) -> tuple[float, str]:
    env = {"PYTHONPATH": str(cwd), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(cwd.parent)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start, proc.stdout


def project(root: Path, data: str, cache: str | None, threads: int) -> Path:
    dest = root / "project"
    sh(["git", "clone", "-q", str(REPO), str(dest)], root)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["data"] = data
    params["methods"], params["chains"] = FAMILY, []
    params["runtime"]["threads"] = threads
    # RTN on the Linears the others quantize (their `full`: every Linear; embeddings stay float)
    params["ptq"].update(bits=[8, 4, 3], modes=["asym"], groups=[LINEARS], activations="none", per_channel=True)
    params["catalog"]["ptq"] = {**params["catalog"]["ptq"], "bits": [8, 4, 3],
                                "groups": [*params["catalog"]["ptq"]["groups"], LINEARS]}
    for method in SWEEP:   # the four methods at RTN's three widths (smoothquant's 8/4/3: W8A8, W4A8, W3A8)
        params[method]["bits"], params["catalog"][method]["bits"] = list(WIDTHS), list(WIDTHS)   # no YAML alias
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh([sys.executable, "-m", "tcompress.cli", "catalog"], dest)
    sh(["git", "-c", "user.email=b@example.com", "-c", "user.name=bench", "commit", "-qam", "ptq family"], dest)
    if cache:
        sh([sys.executable, "-m", "dvc", "cache", "dir", cache], dest)
    return dest


@click.command()
@click.option("--data", default="synthetic", show_default=True, type=click.Choice(["synthetic", "multi30k"]))
@click.option("--cache", type=click.Path(file_okay=False), help="a DVC cache whose run-cache may hold the baseline")
@click.option("--threads", default=0, show_default=True,
              help="torch threads of every stage (runtime.threads; 0: torch's default, every core)")
@click.option("--out", default=str(REPO / "benchmarks/results/ptq_family.json"), show_default=True)
def main(data: str, cache: str | None, threads: int, out: str) -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        dest = project(Path(tmp), data, cache, threads)
        python = [sys.executable, "-m"]
        baseline_seconds, _ = sh([*python, "dvc", "repro", "evaluate", "teacher"], dest)
        # --force: computed here and timed, even where the run-cache holds them
        seconds = {stage: round(sh([*python, "dvc", "repro", "--single-item", "--force", stage], dest)[0], 1)
                   for stage in ("calibrate", "sensitivity")}
        sh([*python, "dvc", "repro", "plan"], dest)
        config = json.loads((dest / "data/config/cells.json").read_text())["cells"]
        cells = {}
        for cell_id, entry in config.items():
            wall, _ = sh([*python, "dvc", "repro", "--single-item", "--force", f"cell@{cell_id}"], dest)
            metrics = json.loads((dest / "metrics/cells" / f"{cell_id}.json").read_text())
            cells[cell_id] = {"method": entry["method"], "seconds": round(wall, 1),
                              **{k: metrics.get(k) for k in ("bleu", "file_bytes", "file_ratio",
                                                              "compression_ratio", "bleu_int8", "compress_seconds")}}
        baseline = json.loads((dest / "metrics/baseline.json").read_text())
        commit = sh(["git", "rev-parse", "--short", "HEAD"], dest)[1].strip()
    by_method: dict[str, float] = {}
    for c in cells.values():
        by_method[c["method"]] = round(by_method.get(c["method"], 0.0) + c["seconds"], 1)
    sweep = seconds["calibrate"] + sum(by_method.get(m, 0.0) for m in SWEEP)
    result = {"command": f"python benchmarks/ptq_family.py --data {data}" + (" --cache DIR" if cache else "")
              + (f" --threads {threads}" if threads else ""),
              "commit": commit, "cpu": cpu(), "data": data, "threads": threads or torch_threads(),
              "load_average": {"before": load_before, "after": os.getloadavg()}, "baseline_greedy_bleu": baseline["greedy"]["bleu"],
              "baseline_checkpoint_bytes": baseline.get("checkpoint_bytes"), "plan_seconds": round(baseline_seconds, 1),
              "stage_seconds": seconds, "seconds_by_method": by_method,
              "family_sweep_seconds": round(sweep, 1), "rtn_sweep_seconds": by_method.get("ptq"),
              "family_over_rtn": round(sweep / by_method["ptq"], 2) if by_method.get("ptq") else None, "cells": cells}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    click.echo(json.dumps({k: v for k, v in result.items() if k != "cells"}, indent=2))
    for cell_id, c in sorted(cells.items()):
        delta = c["bleu"] - result["baseline_greedy_bleu"]
        click.echo(f"{cell_id:28s} BLEU {c['bleu']:6.2f} ({delta:+.2f})  {c['file_bytes']:>9,} bytes  {c['seconds']:6.1f} s")


if __name__ == "__main__":
    main()
