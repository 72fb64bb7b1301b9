"""The bytes each cell ships, beside the thesis's formula, and what pruning × quantization would ship.

Usage (from a workspace where `dvc repro` has run):
    python benchmarks/packed_sizes.py --metrics metrics/cells --baseline data/model/model.pt \
        --pruned data/cells/agp-10-70-1-full/model.safetensors --out benchmarks/results/packed_sizes.json

Prints, for every evaluated cell, the formula's ratio, the artifact's bytes and the file's ratio
(baseline checkpoint bytes / artifact bytes). With ``--pruned``, it also quantizes that pruned cell's
weights to 4 bits (symmetric, per output row, no activations: pruned zeros stay code 0) in memory
and writes the packed file, to measure the size a pruning × quantization chain would ship before
such a method exists (no BLEU: nothing is fine-tuned or evaluated here).
"""

import json
import tempfile
from pathlib import Path

import click

from tcompress.compress.artifact import save_compressed
from tcompress.loader import load_model
from tcompress.methods.ptq.post_training import PTQConfig, post_training_quantize


@click.command()
@click.option("--metrics", "metrics_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--baseline", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--pruned", type=click.Path(exists=True, dir_okay=False), help="a pruned cell's artifact")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def main(metrics_dir, baseline, pruned, out):
    fp32 = Path(baseline).stat().st_size
    rows = []
    for path in sorted(Path(metrics_dir).glob("*.json")):
        m = json.loads(path.read_text())
        if m and "file_bytes" in m:
            rows.append({k: m.get(k) for k in ("cell", "compression_ratio", "file_bytes", "file_ratio", "sparsity")})
    result = {"baseline_bytes": fp32, "cells": rows}
    if pruned:
        model, payload = load_model(pruned)
        post_training_quantize(model, PTQConfig(4, "sym", per_channel=True, activations="none"), "full")
        with tempfile.TemporaryDirectory() as tmp:
            size = save_compressed(model, Path(tmp) / "chain.safetensors")
        result["pruned_then_4bit"] = {"from": payload.get("cell", {}).get("cell", pruned), "file_bytes": size,
                                      "file_ratio": round(fp32 / size, 3)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"baseline checkpoint: {fp32:,} bytes\n\n| cell | formula ratio | file bytes | file ratio |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['cell']} | {r['compression_ratio']:.3f} | {r['file_bytes']:,} | {r['file_ratio']:.3f} |")
    if pruned:
        c = result["pruned_then_4bit"]
        print(f"\n{c['from']} quantized to 4 bits: {c['file_bytes']:,} bytes, {c['file_ratio']}x smaller than the baseline file")


if __name__ == "__main__":
    main()
