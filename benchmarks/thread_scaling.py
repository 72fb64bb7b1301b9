"""How to spend a small CPU's cores on training: one job on every core, or one job per core.

A grid is many independent trainings (cells, controls, students), so a user with two cores can run
one at a time on two threads (`runtime.threads: 2`) or two at a time, in two workspaces sharing one
DVC cache, on one thread each. Which is faster depends on how well a training step uses a second
thread. This measures it in one run: the baseline's own training loop (``tcompress.training.fit``)
on the Multi30k training pairs, a fresh model of the checkpoint's shape, in separate processes:

- ``one job, T threads``: one process on ``--threads`` T;
- ``T jobs, 1 thread each``: T processes started at the same moment, side by side;
- ``one job, 1 thread``: one process on one thread, the cores otherwise idle.

Each process times ``--steps`` optimizer steps after two warm-up steps, on the same seeded batches.
``--rounds`` rounds run the three arrangements, each round in a rotated order (so a slow spell of a
shared host does not fall on one arrangement only). Reported: every round's seconds a step, their
medians, and the throughput (optimizer steps a second, all jobs together) of T one-thread jobs
against one T-thread job, from the medians.

    python benchmarks/thread_scaling.py --checkpoint data/model/model.pt --tokenized data/tokenized \
        --out benchmarks/results/thread_scaling_avx2.json
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click


def worker(checkpoint: str, tokenized: str, steps: int, threads: int, precision: str, start_at: float) -> dict:
    """One job: ``steps`` timed optimizer steps of ``fit`` on ``threads`` threads; its timings."""
    import torch

    from tcompress.batching import make_batches
    from tcompress.config import TrainConfig
    from tcompress.data.corpora import read_ids
    from tcompress.loader import load_model
    from tcompress.model import make_model
    from tcompress.precision import resolve_precision
    from tcompress.training import Hook, ParallelData, fit

    class StepClock(Hook):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, model, state) -> None:
            self.ends.append(time.perf_counter())

    torch.set_num_threads(threads)
    device = torch.device("cpu")
    trained, _ = load_model(checkpoint, device)
    cfg = TrainConfig(batch_tokens=3000, precision=precision)
    src, tgt = read_ids(tokenized, "train")
    # the pairs of a few more batches than fit takes, so one epoch holds every step
    batches = make_batches([len(s) for s in src], [len(t) for t in tgt], cfg.batch_tokens, seed=1)[:steps + 6]
    used = sorted({i for b in batches for i in b})
    data = ParallelData([src[i] for i in used], [tgt[i] for i in used])
    torch.manual_seed(0)
    model = make_model(trained.cfg, trained.vocab).to(device)
    clock = StepClock()
    time.sleep(max(0.0, start_at - time.time()))   # side-by-side jobs start their steps together
    with tempfile.TemporaryDirectory() as work:
        fit(model, data, ParallelData([], []), cfg, seed=0, best_path=Path(work) / "best.pt",
            resume_path=Path(work) / "resume.pt", identity={}, hooks=[clock], device=device,
            progress=False, stop_after_steps=steps + 2)
    assert len(clock.ends) == steps + 2, "the timed steps ran past an epoch"
    return {"threads": threads, "seconds_per_step": (clock.ends[-1] - clock.ends[1]) / steps,
            "precision": resolve_precision(precision, device, quiet=True)}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def run_jobs(n_jobs: int, threads: int, args: list[str], lead_seconds: float) -> list[dict]:
    """``n_jobs`` worker processes on ``threads`` threads each, their steps starting together."""
    start_at = time.time() + lead_seconds
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", "--threads", str(threads),
                               "--start-at", str(start_at), *args], stdout=subprocess.PIPE, text=True)
             for _ in range(n_jobs)]
    results = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"a worker failed (exit {p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@click.command()
@click.option("--checkpoint", required=True, help="a baseline checkpoint: the model's shape and vocabulary")
@click.option("--tokenized", required=True, help="the tokenize stage's output (the training pairs)")
@click.option("--steps", default=12, show_default=True, help="timed optimizer steps per job")
@click.option("--threads", default=2, show_default=True, help="T: the cores to share out")
@click.option("--precision", default="auto", show_default=True)
@click.option("--rounds", default=3, show_default=True, help="rounds of the three arrangements, rotated")
@click.option("--lead-seconds", default=25.0, show_default=True,
              help="time the jobs get to load before their steps start together")
@click.option("--out", default=None)
@click.option("--worker", "as_worker", is_flag=True, hidden=True)
@click.option("--start-at", default=0.0, hidden=True)
def main(checkpoint, tokenized, steps, threads, precision, rounds, lead_seconds, out, as_worker, start_at):
    shared = ["--checkpoint", checkpoint, "--tokenized", tokenized, "--steps", str(steps), "--precision", precision]
    if as_worker:
        click.echo(json.dumps(worker(checkpoint, tokenized, steps, threads, precision, start_at)))
        return
    if not out:
        raise click.UsageError("--out is required")
    from int8_speed import cpu_flags

    import torch

    wide, side, narrow = f"one job, {threads} threads", f"{threads} jobs, 1 thread each", "one job, 1 thread"
    arrangements = {wide: (1, threads), side: (threads, 1), narrow: (1, 1)}
    rounds_seen: list[dict] = []
    precisions = set()
    for r in range(rounds):
        names = list(arrangements)
        names = names[r % len(names):] + names[:r % len(names)]     # rotate the order each round
        seen = {}
        for name in names:
            jobs = run_jobs(*arrangements[name], shared, lead_seconds)
            precisions.update(j["precision"] for j in jobs)
            seen[name] = [round(j["seconds_per_step"], 3) for j in jobs]
        rounds_seen.append({"order": names, "seconds_per_step": seen})
        click.echo(json.dumps(rounds_seen[-1]))
    median = {name: statistics.median(s for r in rounds_seen for s in r["seconds_per_step"][name])
              for name in arrangements}
    side_rate = threads / median[side]
    result = {
        "precision": "/".join(sorted(precisions)), "steps": steps, "threads": threads, "rounds": rounds_seen,
        "median_seconds_per_step": {k: round(v, 3) for k, v in median.items()},
        "throughput_ratio": round(side_rate * median[wide], 2),
        "second_thread_speedup": round(median[narrow] / median[wide], 2),
        "command": f"python benchmarks/thread_scaling.py --checkpoint {checkpoint} --tokenized {tokenized} "
                   f"--steps {steps} --threads {threads} --precision {precision} --rounds {rounds} --out {out}",
        "cpu": cpu_model(), "cpu_flags": cpu_flags(), "torch": torch.__version__}
    click.echo(json.dumps({k: result[k] for k in ("precision", "median_seconds_per_step", "throughput_ratio",
                                                   "second_thread_speedup")}))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
