"""How large a vocabulary shortlist to ship: BLEU, identical translations and batch-1 speed per size.

Usage (the deploy extra installed):
    python benchmarks/vmap_sizes.py --cell data/cells/ptq-sym-8-full/model.safetensors \
        --tokenized data/tokenized --split data/prepared/valid.parquet --threads 1 \
        --out benchmarks/results/vmap_sizes.json

The cell is exported with ``--int8`` once without a shortlist and once per (candidates per source
piece, most frequent pieces) of ``--sizes`` (``tcompress.export_ct2.export``); each export decodes
the whole split greedily one sentence at a time. Per size: BLEU, the share of sentences identical to
the export without a shortlist, and sentences per second (one pass each, alternating with the
export without a shortlist, whose speed is taken again beside each). Choose on the validation split,
report on the test split.
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

from tcompress.data.corpora import read_split
from tcompress.decode import DecodeOptions
from tcompress.evaluation import score
from tcompress.export_ct2 import export
from tcompress.loader import load_model
from tcompress.tokenizer import Tokenizer
from tcompress.translate_ct2 import open_export, require_ctranslate2, translate_ids

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy_speed import identical  # noqa: E402
from int8_speed import cpu_flags  # noqa: E402

SIZES = "20,100 50,100 50,300 100,300 100,1000 200,1000 300,2000"


@click.command()
@click.option("--cell", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--split", "split_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", default=1, show_default=True)
@click.option("--sizes", default=SIZES, show_default=True, help="PER_SOURCE,FREQUENT pairs, space-separated")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def main(cell, tokenized, split_file, threads, sizes, out):
    sources, refs = read_split(split_file)
    tok = Tokenizer.load(tokenized)
    ids = tok.encode_src(sources)
    opts = DecodeOptions(beam_size=1, batch_sentences=1)
    load_before = os.getloadavg()

    def run(folder):
        exported = open_export(folder, threads=threads, quiet=True)
        translate_ids(exported, ids[:8], opts)   # warm-up
        start = time.perf_counter()
        out_ids = translate_ids(exported, ids, opts)
        return out_ids, len(ids) / (time.perf_counter() - start)

    rows = []
    loaded = load_model(cell)
    with tempfile.TemporaryDirectory(prefix="vmap_sizes_") as work:
        export(loaded, cell, tokenized, Path(work) / "exact", int8=True)
        exact, _ = run(Path(work) / "exact")
        exact_bleu = score(tok.decode_tgt(exact), refs)["bleu"]
        for size in sizes.split():
            per_source, frequent = (int(v) for v in size.split(","))
            folder = Path(work) / f"vmap-{per_source}-{frequent}"
            export(loaded, cell, tokenized, folder, int8=True, shortlist=(per_source, frequent))
            _, exact_speed = run(Path(work) / "exact")
            out_ids, speed = run(folder)
            row = {"per_source": per_source, "frequent": frequent,
                   "bleu": score(tok.decode_tgt(out_ids), refs)["bleu"], "bleu_without": exact_bleu,
                   "identical_to_without": identical(out_ids, exact),
                   "sentences_per_second": round(speed, 1), "sentences_per_second_without": round(exact_speed, 1),
                   "speedup": round(speed / exact_speed, 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    ctranslate2 = require_ctranslate2()
    result = {"command": "python benchmarks/vmap_sizes.py " + " ".join(sys.argv[1:]),
              "ctranslate2": ctranslate2.__version__, "threads": threads, "split": Path(split_file).name,
              "sentences": len(ids), "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(),
              "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()}, "rows": rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
