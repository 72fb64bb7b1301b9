"""Which weight matrices product quantization hurts: each layer group of a checkpoint clustered alone
(k-means codebooks of ``--centroids`` entries over subvectors of ``--block`` weights, no fine-tuning),
greedy BLEU on the first ``--sentences`` test sentences, against the unclustered model.

    python benchmarks/archive/ipq_probe.py --checkpoint data/model/model.pt --tokenized data/tokenized \
        --test data/prepared/test.parquet --probe emb:8 --probe att:8 --probe ff:8 --probe gen:8 \
        --probe full:8 --probe full:4 --out benchmarks/archive/results/ipq_probe_multi30k.json
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import click
import sacrebleu
import torch

from tcompress.compress.artifact import stored_bits
from tcompress.compress.codebook import weight_matrices
from tcompress.compress.walker import replace_module
from tcompress.data.corpora import read_split
from tcompress.decode import DecodeOptions, translate
from tcompress.loader import load_model
from tcompress.methods.quant_noise.product_quant import ProductCodebookModule, quantize_matrix
from tcompress.model import count_parameters
from tcompress.tokenizer import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: int8_speed.py, the sibling measurement
from int8_speed import cpu_flags  # noqa: E402


@click.command()
@click.option("--checkpoint", required=True)
@click.option("--tokenized", required=True)
@click.option("--test", "test_split", required=True)
@click.option("--probe", "probes", multiple=True, required=True, help="GROUP:BLOCK, e.g. att:8")
@click.option("--centroids", default=256, show_default=True)
@click.option("--sentences", default=300, show_default=True)
@click.option("--threads", default=1, show_default=True)
@click.option("--out", required=True)
def main(checkpoint, tokenized, test_split, probes, centroids, sentences, threads, out):
    torch.set_num_threads(threads)
    tok = Tokenizer.load(tokenized)
    src, ref = (x[:sentences] for x in read_split(test_split))

    def bleu(model) -> float:
        return round(sacrebleu.corpus_bleu(translate(model, tok, src, DecodeOptions(beam_size=1))[0], [ref]).score, 2)

    base, _ = load_model(checkpoint)
    result = {"baseline_bleu": bleu(base), "sentences": sentences, "centroids": centroids, "probes": []}
    for probe in probes:
        group, block = probe.split(":")
        model, _ = load_model(checkpoint)
        n_model = count_parameters(model)
        start = time.perf_counter()
        for i, module in enumerate(weight_matrices(model, group).values()):
            codes, book = quantize_matrix(module.weight, int(block), centroids, 20, i)
            replace_module(model, module, ProductCodebookModule.from_codes(module, codes, book))
        seconds = time.perf_counter() - start
        score = bleu(model)
        result["probes"].append({"group": group, "block": int(block), "bleu": score,
                                 "delta": round(score - result["baseline_bleu"], 2),
                                 "ratio": round(n_model * 32 / stored_bits(model), 3),
                                 "kmeans_seconds": round(seconds, 1)})
        click.echo(json.dumps(result["probes"][-1]))
    result |= {"command": f"python benchmarks/archive/ipq_probe.py --checkpoint {checkpoint} --tokenized {tokenized} --test "
                          f"{test_split} " + " ".join(f"--probe {p}" for p in probes) +
                          f" --centroids {centroids} --sentences {sentences} --threads {threads} --out {out}",
               "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(),
               "torch": torch.__version__, "threads": threads}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
