"""Does DVC's experiment queue run our stages reliably with several workers?

    python benchmarks/dvc_queue.py [--jobs 2] [--experiments 4] [--out benchmarks/results/dvc_queue.json]

Clones HEAD into a temporary folder, makes it a small project (a 300-pair synthetic corpus, a
32-wide model, a catalog of a few cells) and trains its baseline once (`dvc repro plan`). Then it
queues EXPERIMENTS experiments, each selecting other cells (`dvc exp run --queue -S …`), starts
`dvc queue start -j JOBS`, waits for the queue to drain, and records each experiment's end state
(`dvc queue status`), the queue's wall time, and whether each successful experiment's cell BLEUs
(`dvc exp apply`) equal those of a sequential `dvc exp run` of the same overrides (its time too,
though it includes the applies). Writes the DVC version and
the CPU's flags beside the figures.
"""

from __future__ import annotations

import json
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
SMALL = {
    "synthetic": {"train_size": 300, "valid_size": 20, "test_size": 20, "seed": 3},
    "tokenizer": {"vocab_size": 400},
    "model": {"d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64},
    "train": {"epochs": 2, "batch_tokens": 400, "warmup_steps": 10, "precision": "fp32"},
    "runtime": {"threads": 1, "checkpoint_every": 5},
    "evaluate": {"beam_size": 1, "batch_sentences": 16},
    "methods": ["ptq"], "bits": [8], "modes": ["sym"], "groups": ["full"], "chains": [],
    "qat": {"epochs": 1, "warmup_steps": 2, "bits": [4], "modes": ["sym"], "groups": ["full"]},
    "agp": {"epochs": 1, "end": 4, "warmup_steps": 2},
    "imp": {"epochs": 1, "rounds": 1, "steps_per_round": 2, "warmup_steps": 2},
}
EXPERIMENTS = [["-S", "bits=4"], ["-S", "methods=[qat]"], ["-S", "methods=[agp]"], ["-S", "methods=[imp]"],
               ["-S", "modes=asym"], ["-S", "groups=att"]]


PYTHONPATH: str | None = None


def sh(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": PYTHONPATH if PYTHONPATH is not None else str(cwd), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(cwd.parent)}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def small_project(root: Path) -> Path:
    dest = root / "project"
    sh(["git", "clone", "-q", str(REPO), str(dest)], root)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for key, value in SMALL.items():
        params[key] = {**params[key], **value} if isinstance(value, dict) and isinstance(params.get(key), dict) else value
    catalog = {m: {k: [] for k in axes} for m, axes in params["catalog"].items() if isinstance(axes, dict)}
    catalog.update(ptq={"modes": ["sym", "asym"], "bits": [8, 4], "groups": ["att", "full"]},
                   qat={"modes": ["sym"], "bits": [4], "groups": ["full"]},
                   agp={"schedules": ["10-70-1"], "groups": ["full"]}, imp={"groups": ["full"]})
    params["catalog"] = {**catalog, "chains": [], "seeds": []}
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    python = [sys.executable, "-m"]
    sh([*python, "tcompress.cli", "catalog"], dest)
    sh(["git", "-c", "user.email=b@example.com", "-c", "user.name=bench", "commit", "-qam", "small"], dest)
    sh([*python, "dvc", "repro", "plan"], dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "-c", "user.email=b@example.com", "-c", "user.name=bench", "commit", "-qm", "baseline"], dest)
    return dest


def metrics(project: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted((project / "metrics/cells").glob("*.json"))
            if json.loads(p.read_text())}


@click.command()
@click.option("--jobs", default=2, show_default=True)
@click.option("--experiments", default=4, show_default=True)
@click.option("--pythonpath", default=None, help="PYTHONPATH for DVC and its workers (default: the clone's folder)")
@click.option("--out", type=click.Path(dir_okay=False), default="benchmarks/results/dvc_queue.json", show_default=True)
def main(jobs: int, experiments: int, pythonpath: str | None, out: str) -> None:
    global PYTHONPATH
    PYTHONPATH = pythonpath
    python = [sys.executable, "-m"]
    with tempfile.TemporaryDirectory() as tmp:
        project = small_project(Path(tmp))
        chosen = EXPERIMENTS[:experiments]
        for i, overrides in enumerate(chosen):
            sh([*python, "dvc", "exp", "run", "--queue", "-n", f"q{i}", *overrides], project)
        start = time.perf_counter()
        sh([*python, "dvc", "queue", "start", "-j", str(jobs)], project)
        while True:   # the queue's workers run in the background
            status = sh([*python, "dvc", "queue", "status"], project).stdout
            if not any(s in status for s in ("Queued", "Running")):
                break
            time.sleep(2)
        queue_seconds = time.perf_counter() - start
        states = {f"q{i}": next((w for line in status.splitlines() if f"q{i}" in line.split()
                                  for w in line.split() if w in ("Success", "Failed")), "missing")
                  for i in range(len(chosen))}
        failures = {name: sh([*python, "dvc", "queue", "logs", name], project, check=False).stdout[-1500:]
                    for name, state in states.items() if state != "Success"}
        # each successful experiment's cells against a sequential `dvc exp run` of the same overrides
        same, start = {}, time.perf_counter()
        for i, overrides in enumerate(chosen):
            if states[f"q{i}"] != "Success":
                continue
            sh([*python, "dvc", "exp", "apply", f"q{i}"], project)
            queued = {c: m["bleu"] for c, m in metrics(project).items()}
            sh(["git", "checkout", "-q", "--", "."], project)
            sh([*python, "dvc", "checkout", "-q"], project, check=False)
            sh([*python, "dvc", "exp", "run", *overrides], project)
            same[f"q{i}"] = queued == {c: m["bleu"] for c, m in metrics(project).items()}
            sh(["git", "checkout", "-q", "--", "."], project)
            sh([*python, "dvc", "checkout", "-q"], project, check=False)
        result = {"command": f"python benchmarks/dvc_queue.py --jobs {jobs} --experiments {experiments}",
                  "dvc": sh([*python, "dvc", "--version"], project).stdout.strip(), "jobs": jobs,
                  "overrides": {f"q{i}": " ".join(o) for i, o in enumerate(chosen)}, "states": states,
                  "succeeded": sum(v == "Success" for v in states.values()), "queue_seconds": round(queue_seconds, 1),
                  "sequential_seconds": round(time.perf_counter() - start, 1),
                  "equal_to_sequential": same, "failure_logs": failures, "status_table": status, **cpu()}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    click.echo(json.dumps({k: v for k, v in result.items() if k != "status_table"}, indent=2))


if __name__ == "__main__":
    main()
