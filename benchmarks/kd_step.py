"""What a distillation student's training step costs, by what it learns from, measured in one process:
the references alone (``none``), word KD from the teacher's top k computed once (``top_k``, the
default), and word KD with the teacher run on every batch (``live``, ``distill.top_k: 0``).

Each round runs the cell stage's training loop (``tcompress.training.fit``, with the word-KD hook
where the kind has one) on the same seeded Multi30k pairs, alternating kinds, and times ``--steps``
optimizer steps after two warm-up steps; a fresh student each round, so no kind trains on another's
weights. Reports the best round's seconds a step and each kind's ratio to ``none``.

    python benchmarks/kd_step.py --teacher data/model/model.pt --tokenized data/tokenized \
        --out benchmarks/results/kd_step_multi30k.json
"""

from __future__ import annotations

import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import click
import torch

from tcompress.batching import make_batches
from tcompress.config import TrainConfig
from tcompress.data.corpora import read_ids
from tcompress.loader import load_model
from tcompress.methods.distill import TeacherTopK, _word_kd_hook
from tcompress.model import make_model
from tcompress.precision import resolve_precision
from tcompress.training import Hook, ParallelData, fit

from int8_speed import cpu_flags

KINDS = ("none", "top_k", "live")


class StepClock(Hook):
    """Notes when each optimizer step of ``fit`` ends."""

    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, model, state) -> None:
        self.ends.append(time.perf_counter())


def timed_steps(student, hook, data: ParallelData, cfg: TrainConfig, device, steps: int) -> float:
    """Seconds a step of the cell stage's own training loop (``fit``), interrupted after two warm-up
    steps and ``steps`` timed ones: from the end of the second step to the end of the last."""
    clock = StepClock()
    with tempfile.TemporaryDirectory() as work:   # a fresh resume path: nothing to resume from
        fit(student, data, ParallelData([], []), cfg, seed=0, best_path=Path(work) / "best.pt",
            resume_path=Path(work) / "resume.pt", identity={}, hooks=[h for h in (hook, clock) if h],
            device=device, progress=False, stop_after_steps=steps + 2)
    assert len(clock.ends) == steps + 2, "the timed steps ran past an epoch: give fit more pairs"
    return (clock.ends[-1] - clock.ends[1]) / steps


@click.command()
@click.option("--teacher", required=True, help="the baseline checkpoint")
@click.option("--tokenized", required=True)
@click.option("--d-model", default=128, show_default=True)
@click.option("--layers", default=3, show_default=True)
@click.option("--d-ff", default=512, show_default=True)
@click.option("--top-k", default=8, show_default=True)
@click.option("--steps", default=12, show_default=True, help="timed steps per kind and round")
@click.option("--rounds", default=2, show_default=True)
@click.option("--precision", default="auto", show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--out", required=True)
def main(teacher, tokenized, d_model, layers, d_ff, top_k, steps, rounds, precision, threads, out):
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    model, _ = load_model(teacher, device)
    model.eval().requires_grad_(False)
    cfg = TrainConfig(batch_tokens=3000, precision=precision)
    bf16 = resolve_precision(precision, device) == "bf16"
    src, tgt = read_ids(tokenized, "train")
    # the pairs of a few more batches than fit takes, so one epoch holds every step
    batches = make_batches([len(s) for s in src], [len(t) for t in tgt], cfg.batch_tokens, seed=1)[:steps + 6]
    used = sorted({i for b in batches for i in b})
    data = ParallelData([src[i] for i in used], [tgt[i] for i in used])
    start = time.perf_counter()
    cache = TeacherTopK(model, data, top_k, cfg.batch_tokens, device, bf16)
    cache_seconds = time.perf_counter() - start
    hooks = {"none": None, "top_k": _word_kd_hook(model, 1.0, 0.5, cache), "live": _word_kd_hook(model, 1.0, 0.5)}
    shape = dataclasses.replace(model.cfg, d_model=d_model, n_layers=layers, d_ff=d_ff)
    seconds = {k: [] for k in KINDS}
    for r in range(rounds):
        for kind in KINDS:
            torch.manual_seed(r)
            seconds[kind].append(timed_steps(make_model(shape, model.vocab).to(device), hooks[kind], data,
                                             cfg, device, steps))
    best = {k: min(v) for k, v in seconds.items()}
    result = {
        "student": {"d_model": d_model, "layers": layers, "d_ff": d_ff}, "top_k": top_k, "steps": steps,
        "rounds": rounds, "precision": "bf16" if bf16 else "fp32",
        "seconds_per_step": {k: round(v, 3) for k, v in best.items()},
        "ratio_to_none": {k: round(v / best["none"], 2) for k, v in best.items()},
        "top_k_pass_seconds_per_batch": round(cache_seconds / len(make_batches(
            [len(src[i]) for i in used], [len(tgt[i]) for i in used], cfg.batch_tokens)), 3),
        "every_round": {k: [round(s, 3) for s in v] for k, v in seconds.items()},
        "command": f"python benchmarks/kd_step.py --teacher {teacher} --tokenized {tokenized} --top-k {top_k} "
                   f"--steps {steps} --rounds {rounds} --precision {precision} --threads {threads} --out {out}",
        "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(), "torch": torch.__version__,
        "threads": threads}
    click.echo(json.dumps({k: result[k] for k in ("precision", "seconds_per_step", "ratio_to_none")}))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
