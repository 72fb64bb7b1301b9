"""Seed 001's Figure 1 on our model: the running x_max of every FFN ReLU node, and how many nodes
the adaptive rule x_max < z·σ removes for a range of z (encoder and decoder separately).

    python benchmarks/archive/node_xmax.py --checkpoint data/model/model.pt --tokenized data/tokenized \
        --out benchmarks/archive/results/node_xmax_multi30k.json
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import click
import torch

from tcompress.batching import make_batches, pad
from tcompress.data.corpora import read_ids
from tcompress.loader import load_model
from tcompress.methods.nodeprune.nodes import estimate_xmax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: int8_speed.py, the sibling measurement
from int8_speed import cpu_flags  # noqa: E402  (every table names the same CPU flags)

ZS = (0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)


@click.command()
@click.option("--checkpoint", required=True)
@click.option("--tokenized", required=True)
@click.option("--batches", default=200, show_default=True)
@click.option("--batch-tokens", default=3000, show_default=True)
@click.option("--seed", default=1234, show_default=True, help="the batch shuffle's seed (the cells use params' seed)")
@click.option("--threads", default=2, show_default=True)
@click.option("--out", required=True)
def main(checkpoint, tokenized, batches, batch_tokens, seed, threads, out):
    torch.set_num_threads(threads)
    model, _ = load_model(checkpoint)
    src, tgt = read_ids(tokenized, "train")
    order = make_batches([len(s) for s in src], [len(t) for t in tgt], batch_tokens, seed)[:batches]
    xmax = estimate_xmax(model, [(pad([src[i] for i in b]), pad([tgt[i][:-1] for i in b])) for b in order])
    layers = {}
    for name, x in xmax.items():
        sigma = float(x.std())
        hist = torch.histogram(x.float(), bins=20)
        layers[name] = {"nodes": x.numel(), "sigma": round(sigma, 4), "min": round(float(x.min()), 4),
                        "median": round(float(x.median()), 4), "max": round(float(x.max()), 4),
                        "histogram": {"edges": [round(float(e), 4) for e in hist.bin_edges],
                                      "counts": [int(c) for c in hist.hist]},
                        "pruned_at_z": {str(z): int((x < z * sigma).sum()) for z in ZS}}
        click.echo(f"{name}: sigma {sigma:.3f}, min {float(x.min()):.3f}, "
                   + ", ".join(f"z={z}: {layers[name]['pruned_at_z'][str(z)]}" for z in ZS))
    stacks = {}
    for stack in ("encoder", "decoder"):
        names = [n for n in layers if n.startswith(stack)]
        total = sum(layers[n]["nodes"] for n in names)
        stacks[stack] = {str(z): round(100 * sum(layers[n]["pruned_at_z"][str(z)] for n in names) / total, 2) for z in ZS}
    click.echo(json.dumps({"percent_pruned": stacks}))
    result = {"command": f"python benchmarks/archive/node_xmax.py --checkpoint {checkpoint} --tokenized {tokenized} "
                         f"--batches {batches} --threads {threads} --out {out}",
              "percent_pruned": stacks, "layers": layers, "cpu": platform.processor() or platform.machine(),
              "cpu_flags": cpu_flags(), "torch": torch.__version__}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
