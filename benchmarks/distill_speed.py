"""A distilled student's decoding speed against its teacher's, measured in one process, alternating:
greedy sentences per second over the test split, best of ``rounds`` each, and the BLEU of both.

    python benchmarks/distill_speed.py --teacher data/model/model.pt \
        --student data/cells/distill-seq-128-3-512/model.safetensors --tokenized data/tokenized \
        --test data/prepared/test.parquet --out benchmarks/results/distill_speed_multi30k.json
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import click
import sacrebleu
import torch

from tcompress.data.corpora import read_split
from tcompress.loader import load_model
from tcompress.model import count_parameters
from tcompress.tokenizer import Tokenizer

from fullyqt_speed import decode      # the sibling benchmark's timed greedy decode
from int8_speed import cpu_flags


@click.command()
@click.option("--teacher", required=True, help="the baseline checkpoint")
@click.option("--student", required=True, help="a distill cell's artifact")
@click.option("--tokenized", required=True)
@click.option("--test", "test_split", required=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--batch-sentences", default=128, show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--out", required=True)
def main(teacher, student, tokenized, test_split, rounds, batch_sentences, threads, out):
    torch.set_num_threads(threads)
    tok = Tokenizer.load(tokenized)
    sources, references = read_split(test_split)
    ids = tok.encode_src(sources)
    models = {"teacher": load_model(teacher)[0], "student": load_model(student)[0]}
    decode(models["student"], ids[:64], batch_sentences)            # warm-up (first-call allocations)
    seconds, hyps = {k: [] for k in models}, {}
    for _ in range(rounds):
        for name, model in models.items():
            s, hyps[name] = decode(model, ids, batch_sentences)
            seconds[name].append(s)
    result = {
        "sentences": len(ids), "batch_sentences": batch_sentences, "rounds": rounds,
        "parameters": {k: count_parameters(m) for k, m in models.items()},
        "sentences_per_second": {k: round(len(ids) / min(v), 2) for k, v in seconds.items()},
        "speedup": round(min(seconds["teacher"]) / min(seconds["student"]), 3),
        "bleu_greedy": {k: round(sacrebleu.corpus_bleu(tok.decode_tgt(h), [references]).score, 2) for k, h in hyps.items()},
        "command": f"python benchmarks/distill_speed.py --teacher {teacher} --student {student} --tokenized {tokenized} "
                   f"--test {test_split} --rounds {rounds} --threads {threads} --out {out}",
        "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(), "torch": torch.__version__,
        "threads": threads}
    click.echo(json.dumps({k: result[k] for k in ("parameters", "sentences_per_second", "speedup", "bleu_greedy")}))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
