"""Fitting time of weight sharing on a trained model: k-means (k-means++ init, Lloyd) against BS-Flex's
two-centroid fit, per layer group (seed 004 reports BS-Flex more than 10x faster than k-means).

    python benchmarks/archive/fit_time.py --checkpoint data/model/model.pt --out benchmarks/archive/results/fit_time.json

Each fit clusters every weight matrix of the group, as the cells do (``share_weights`` for k-means,
``two_means`` for BS-Flex's starting centroids); best of ``--rounds`` runs, with 2 torch threads.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import click
import torch

from tcompress.compress.codebook import weight_matrices
from tcompress.loader import load_model
from tcompress.methods.binary import two_means
from tcompress.methods.kmeans import cluster_weight

from int8_speed import cpu_flags  # the sibling benchmark's: every table names the same CPU flags


def best_of(rounds: int, fn) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--groups", default="att,full", show_default=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False))
def main(checkpoint: str, groups: str, rounds: int, threads: int, out: str | None) -> None:
    torch.set_num_threads(threads)
    model, _ = load_model(checkpoint)
    rows = []
    for group in groups.split(","):
        weights = [m.weight.detach() for m in weight_matrices(model, group).values()]
        n = sum(w.numel() for w in weights)
        row = {"group": group, "tensors": len(weights), "weights": n}
        for bits in (1, 4):
            row[f"kmeans_{bits}bit_seconds"] = round(best_of(rounds, lambda: [
                cluster_weight(w, bits, False, "kmeans++", 30, 0) for w in weights]), 4)
        row["bsflex_seconds"] = round(best_of(rounds, lambda: [two_means(w, 10) for w in weights]), 4)
        row["kmeans_1bit_over_bsflex"] = round(row["kmeans_1bit_seconds"] / row["bsflex_seconds"], 2)
        rows.append(row)
        click.echo(json.dumps(row))
    result = {"command": "python benchmarks/fit_time.py " + f"--checkpoint {checkpoint} --groups {groups} "
              f"--rounds {rounds} --threads {threads}", "cpu": platform.processor() or platform.machine(),
              "cpu_flags": cpu_flags(), "torch": torch.__version__, "threads": threads, "rows": rows}
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
