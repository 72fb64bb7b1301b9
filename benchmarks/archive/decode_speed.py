"""Greedy decoding with cached keys/values against re-running the decoder over the whole prefix.

Usage (from a repository where `dvc repro` has run):
    python benchmarks/archive/decode_speed.py --checkpoint data/model/model.pt --tokenized data/tokenized \
        --test data/prepared/test.parquet --out benchmarks/archive/results/decode_speed_multi30k.json
"""

import json
import platform
import time
from pathlib import Path

import click
import torch

from tcompress.batching import pad
from tcompress.data.corpora import read_split
from tcompress.decode import greedy, length_limits
from tcompress.evaluation import score
from tcompress.loader import load_model
from tcompress.tokenizer import Tokenizer


def run(model, src_ids, batch, use_cache):
    order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
    out = [None] * len(src_ids)
    start = time.perf_counter()
    for i in range(0, len(order), batch):
        chunk = order[i: i + batch]
        src = pad([src_ids[j] for j in chunk])
        for j, hyp in zip(chunk, greedy(model, src, length_limits(src, 1.5, 10), use_cache=use_cache)):
            out[j] = hyp
    return out, time.perf_counter() - start


@click.command()
@click.option("--checkpoint", required=True)
@click.option("--tokenized", required=True)
@click.option("--test", "test_split", required=True)
@click.option("--out", required=True)
@click.option("--batch-sentences", default=128, show_default=True)
def main(checkpoint, tokenized, test_split, out, batch_sentences):
    model, _ = load_model(checkpoint)
    tok = Tokenizer.load(tokenized)
    sources, refs = read_split(test_split)
    ids = tok.encode_src(sources)
    results = {}
    for name, use_cache in (("cached", True), ("full_prefix", False)):
        hyps, seconds = run(model, ids, batch_sentences, use_cache)
        results[name] = {"seconds": round(seconds, 2), "sentences_per_second": round(len(ids) / seconds, 1),
                         "bleu": score(tok.decode_tgt(hyps), refs)["bleu"]}
        results[name + "_ids"] = hyps
    same = results.pop("cached_ids") == results.pop("full_prefix_ids")
    report = {"sentences": len(ids), "batch_sentences": batch_sentences, "identical_output": same,
              "speedup": round(results["full_prefix"]["seconds"] / results["cached"]["seconds"], 2),
              **results, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine()}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    click.echo(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
