"""FullyQT's cost and node pruning's gain, each measured in one process, alternating:

- training: optimizer steps per second of the float model and of the same model under FullyQT (every
  point quantized, ranges tracked), on the same training batches (seed 001: "about twice as slow");
- decoding: greedy sentences per second of a cell's artifact and of its node-pruned child's.

    python benchmarks/fullyqt_speed.py --checkpoint data/model/model.pt --tokenized data/tokenized \
        --pruned data/cells/nodeprune-adaptive/model.safetensors --test data/prepared/test.parquet \
        --out benchmarks/results/fullyqt_speed_multi30k.json
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import click
import torch

from tcompress.batching import make_batches, pad
from tcompress.data.corpora import read_ids, read_split
from tcompress.decode import greedy, length_limits
from tcompress.loader import load_model
from tcompress.methods.fullyqt.modules import FullyQTSpec, fully_quantize
from tcompress.model import count_parameters

from int8_speed import cpu_flags  # the sibling benchmark's: every table names the same CPU flags


def train_steps(model, batches, steps: int, bf16: bool = False) -> float:
    """Seconds for ``steps`` forward/backward/update steps, in bf16 autocast or fp32 as the cells train."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=0)
    model.train()
    start = time.perf_counter()
    for src, tgt in batches[:steps]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(src, tgt[:, :-1])
        loss = loss_fn(logits.float().reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def decode(model, ids, batch: int) -> tuple[float, list]:
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = [None] * len(ids)
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(order), batch):
            chunk = order[i: i + batch]
            src = pad([ids[j] for j in chunk])
            for j, hyp in zip(chunk, greedy(model, src, length_limits(src, 1.5, 10))):
                out[j] = hyp
    return time.perf_counter() - start, out


@click.command()
@click.option("--checkpoint", required=True, help="the float baseline")
@click.option("--tokenized", required=True)
@click.option("--pruned", help="a node-pruned cell's artifact; decoded against its parent (--parent, or the baseline)")
@click.option("--parent", help="the artifact the pruned cell started from (default: --checkpoint)")
@click.option("--test", "test_split", help="the test split, for decoding")
@click.option("--steps", default=20, show_default=True, help="training steps per timed round")
@click.option("--rounds", default=3, show_default=True)
@click.option("--batch-tokens", default=3000, show_default=True)
@click.option("--batch-sentences", default=128, show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="training precision; auto: bf16 where the CPU computes it natively, as the cells do")
@click.option("--threads", default=2, show_default=True)
@click.option("--out", required=True)
def main(checkpoint, tokenized, pruned, parent, test_split, steps, rounds, batch_tokens, batch_sentences, precision,
         threads, out):
    from tcompress.precision import resolve_precision

    torch.set_num_threads(threads)
    bf16 = resolve_precision(precision, "cpu") == "bf16"
    src, tgt = read_ids(tokenized, "train")
    order = make_batches([len(s) for s in src], [len(t) for t in tgt], batch_tokens, 0)[: steps]
    batches = [(pad([src[i] for i in b]), pad([tgt[i] for i in b])) for b in order]
    float_model, _ = load_model(checkpoint)
    fq, _ = load_model(checkpoint)
    fully_quantize(fq, FullyQTSpec())
    train_steps(fq, batches, 2, bf16), train_steps(float_model, batches, 2, bf16)   # warm-up (first-call allocations)
    times = {"float": [], "fullyqt": []}
    for _ in range(rounds):
        times["float"].append(train_steps(float_model, batches, steps, bf16))
        times["fullyqt"].append(train_steps(fq, batches, steps, bf16))
    best = {k: min(v) for k, v in times.items()}
    result = {"training": {"steps": steps, "rounds": rounds, "batch_tokens": batch_tokens,
                           "precision": "bf16" if bf16 else "fp32",
                           "seconds_per_step": {k: round(v / steps, 4) for k, v in best.items()},
                           "slowdown": round(best["fullyqt"] / best["float"], 3)}}
    click.echo(json.dumps(result["training"]))
    if pruned and test_split:
        from tcompress.tokenizer import Tokenizer

        ids = Tokenizer.load(tokenized).encode_src(read_split(test_split)[0])
        models = {"parent": load_model(parent or checkpoint)[0], "pruned": load_model(pruned)[0]}
        decode(models["pruned"], ids[:64], batch_sentences)                 # warm-up
        secs, hyps = {k: [] for k in models}, {}
        for _ in range(rounds):
            for name, model in models.items():
                s, hyps[name] = decode(model, ids, batch_sentences)
                secs[name].append(s)
        result["decoding"] = {
            "sentences": len(ids), "batch_sentences": batch_sentences,
            "parameters": {k: count_parameters(m) for k, m in models.items()},
            "sentences_per_second": {k: round(len(ids) / min(v), 2) for k, v in secs.items()},
            "speedup": round(min(secs["parent"]) / min(secs["pruned"]), 3),
            "identical_output": hyps["parent"] == hyps["pruned"]}
        click.echo(json.dumps(result["decoding"]))
    result |= {"command": "python benchmarks/fullyqt_speed.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in (("checkpoint", checkpoint), ("tokenized", tokenized),
                                                      ("pruned", pruned), ("parent", parent), ("test", test_split),
                                                      ("steps", steps), ("rounds", rounds), ("precision", precision),
                                                      ("threads", threads),
                                                      ("out", out)) if v is not None),
               "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(),
               "torch": torch.__version__, "threads": threads}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
