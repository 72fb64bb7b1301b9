"""Greedy decoding speed: our fp32 PyTorch decoder against its CTranslate2 exports, float32 and int8.

Usage (from a workspace with the deploy extra installed, on an otherwise idle machine):
    python benchmarks/deploy_speed.py --checkpoint data/model/model.pt \
        --int8-model data/cells/qat-sym-4-full/model.safetensors --tokenized data/tokenized \
        --test data/prepared/test.parquet --threads 2 --out benchmarks/results/deploy_speed.json

``--checkpoint`` is decoded by our decoder (``tcompress.decode``) and exported as float32;
``--int8-model`` (default: the checkpoint) is exported with ``--int8`` and run as int8_float32,
its own codes where it has them (its manifest says what else). Each export is made here, in a
temporary folder, with ``tcompress.export_ct2.export``; decoding goes through the same
``tcompress.translate_ct2`` functions `tcompress translate --backend ctranslate2` uses.

Settings: greedy at batch 128 over the whole test split (BLEU from these) and at batch 1 over its
first ``--batch1-sentences``; within a setting the systems alternate, round after round, after one
warm-up, and each keeps its fastest of ``--rounds``. Threads: ``torch.set_num_threads`` and
CTranslate2's ``intra_threads``. The JSON records the CPU flags that matter for int8 and the load
average before and after: a run is only as good as the machine was idle.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import click
import torch

from tcompress.data.corpora import read_split
from tcompress.decode import DecodeOptions, translate_ids
from tcompress.evaluation import score
from tcompress.export_ct2 import export
from tcompress.loader import load_model
from tcompress.tokenizer import Tokenizer
from tcompress.translate_ct2 import open_export, require_ctranslate2
from tcompress.translate_ct2 import translate_ids as ct2_translate_ids

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_speed import cpu_flags  # noqa: E402  (the sibling benchmark's: both name the same CPU flags)


def systems(checkpoint: Path, int8_model: Path, tokenized: Path, workdir: Path, threads: int) -> tuple[dict, dict]:
    """name -> fn(ids, batch) -> output ids; and each export's manifest."""
    model, _ = load_model(checkpoint)
    manifests = {"ct2-float32": export(checkpoint, tokenized, workdir / "float32"),
                 "ct2-int8": export(int8_model, tokenized, workdir / "int8", int8=True)}
    def greedy(batch: int) -> DecodeOptions:
        return DecodeOptions(beam_size=1, batch_sentences=batch)

    found = {"ours-fp32": lambda ids, batch: translate_ids(model, ids, greedy(batch))}
    for name, folder in (("ct2-float32", "float32"), ("ct2-int8", "int8")):
        exported = open_export(workdir / folder)
        exported.translator = require_ctranslate2().Translator(
            str(workdir / folder), device="cpu", compute_type=exported.compute_type, intra_threads=threads,
            inter_threads=1)
        found[name] = (lambda e: lambda ids, batch: ct2_translate_ids(e, ids, greedy(batch)))(exported)
    return found, manifests


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--int8-model", type=click.Path(exists=True, dir_okay=False), help="default: --checkpoint")
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--test", "test_split", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", default=2, show_default=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--batch1-sentences", default=200, show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def main(checkpoint, int8_model, tokenized, test_split, threads, rounds, batch1_sentences, out):
    torch.set_num_threads(threads)
    tok = Tokenizer.load(tokenized)
    sources, refs = read_split(test_split)
    ids = tok.encode_src(sources)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="deploy_speed_") as workdir:
        found, manifests = systems(Path(checkpoint), Path(int8_model or checkpoint), Path(tokenized), Path(workdir),
                                   threads)
        for fn in found.values():   # warm-up: first-call allocations stay out of the timings
            fn(ids[:8], 8)
        rows = []
        for batch, subset in ((128, ids), (1, ids[:batch1_sentences])):
            best, outputs = {name: float("inf") for name in found}, {}
            for _ in range(rounds):
                for name, fn in found.items():   # alternating: a slow spell of the machine hits every system
                    start = time.perf_counter()
                    outputs[name] = fn(subset, batch)
                    best[name] = min(best[name], time.perf_counter() - start)
            for name in found:
                row = {"system": name, "batch": batch, "sentences": len(subset),
                       "sentences_per_second": round(len(subset) / best[name], 1),
                       "x_ours_fp32": round(best["ours-fp32"] / best[name], 2),
                       "identical_to_ours": round(sum(a == b for a, b in zip(outputs[name], outputs["ours-fp32"]))
                                                  / max(len(subset), 1), 4)}
                if batch == 128:
                    row["bleu"] = score(tok.decode_tgt(outputs[name]), refs)["bleu"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    ctranslate2 = require_ctranslate2()
    result = {"command": " ".join(sys.argv), "ctranslate2": ctranslate2.__version__, "torch": torch.__version__,
              "threads": threads, "rounds": rounds, "cpu": platform.processor() or platform.machine(),
              "cpu_flags": cpu_flags(), "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
              "int8_differences": [d["label"] for d in manifests["ct2-int8"]["differences"]], "rows": rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nctranslate2 {ctranslate2.__version__}; cpu flags: {' '.join(result['cpu_flags'])}; {threads} threads; "
          f"load average before/after {load_before[0]:.1f}/{os.getloadavg()[0]:.1f}")
    print("| system | batch | sentences/s | × ours fp32 | = ours | BLEU |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['system']} | {r['batch']} | {r['sentences_per_second']} | {r['x_ours_fp32']:.2f} | "
              f"{r['identical_to_ours']:.1%} | {r.get('bleu', '–')} |")


if __name__ == "__main__":
    main()
