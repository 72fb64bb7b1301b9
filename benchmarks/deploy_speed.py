"""Decoding speed of the systems a cell can ship as, alternating in one run: our fp32 PyTorch
decoder, torch's ``quantize_dynamic`` of the float model, and CTranslate2 exports (float32, its own
int8 of the float weights, and the cell's codes).

Usage (from a workspace with the deploy extra installed, on an otherwise idle machine):
    python benchmarks/deploy_speed.py --checkpoint data/model/model.pt \
        --cell data/cells/ptq-sym-8-full/model.safetensors --tokenized data/tokenized \
        --test data/prepared/test.parquet --threads 2 --out benchmarks/results/deploy_speed.json
    ... --avx2    # the same, PyTorch, oneDNN, MKL and CTranslate2 limited to AVX2 kernels

Systems:
- ``ours-fp32``: ``tcompress.decode`` on ``--checkpoint``;
- ``torch-dynamic-int8``: the same decoder on ``torch.ao.quantization.quantize_dynamic`` of it (every
  Linear int8, weights per tensor, inputs quantized at run time);
- ``ct2-float32``: ``--checkpoint`` exported as float32;
- ``ct2-int8-of-float``: ``--checkpoint`` exported with ``--int8``: CTranslate2's own int8 rule (per row,
  127 / max|row|) applied to the float weights;
- ``ct2-int8-cell``: ``--cell`` exported with ``--int8``: the cell's own codes where it has them (its
  manifest says what else);
- ``ct2-int8-cell-vmap``: the same export with a vocabulary shortlist (``--vmap PER_SOURCE,FREQUENT``,
  ``tcompress export --vmap``; when ``--tokenized`` holds the training pairs): each step scores only
  the candidates of the batch's sources, so its output can differ.
Each export is made here, in a temporary folder, with ``tcompress.export_ct2.export``, and opened with
``tcompress.translate_ct2.open_export`` (the settings `tcompress translate --backend ctranslate2`
chooses for this CPU; the JSON records them).

Settings: greedy and beam 4, at batch 128 over the whole test split (BLEU from these) and at batch 1
over its first ``--batch1-sentences``. Within a setting the systems alternate, round after round,
after one warm-up, and each keeps its fastest of ``--rounds``. Then, untimed, every system decodes the
whole test split greedily one sentence at a time: the BLEU a batch-1 user gets (a shortlist's
candidates depend on the batch). Threads: ``torch.set_num_threads`` and
CTranslate2's ``intra_threads``. The JSON records the CPU flags and the load average before and
after: a run is only as good as the machine was idle. ``--avx2`` re-runs this script with
ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS and CT2_FORCE_CPU_ISA set to AVX2:
an AVX-512 machine's kernels limited to what an AVX2-only CPU has (its clock, caches and vendor stay
this machine's).
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
from tcompress.vocabulary_map import PAIRS_FILE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_run import AVX2_ONLY as TORCH_AVX2_ONLY  # noqa: E402  (PyTorch, oneDNN, MKL)
from int8_speed import cpu_flags, load_system  # noqa: E402  (the sibling benchmark's flags and systems)


AVX2_ONLY = {**TORCH_AVX2_ONLY, "CT2_FORCE_CPU_ISA": "AVX2"}   # CTranslate2's own kernels too
SETTINGS = (("greedy", 1, 128), ("greedy", 1, 1), ("beam4", 4, 128), ("beam4", 4, 1))   # name, beam, batch


def systems(checkpoint: Path, cell: Path, tokenized: Path, workdir: Path, threads: int,
            vmap: tuple[int, int]) -> tuple[dict, dict]:
    """name -> fn(ids, DecodeOptions) -> output ids; and each CTranslate2 system's manifest and settings."""
    model, _ = load_system("fp32", str(checkpoint), str(cell))
    dynamic, _ = load_system("torch-dynamic-int8", str(checkpoint), str(cell))
    found = {"ours-fp32": lambda ids, opts: translate_ids(model, ids, opts),
             "torch-dynamic-int8": lambda ids, opts: translate_ids(dynamic, ids, opts)}
    facts = {}
    exports = [("ct2-float32", checkpoint, False, None), ("ct2-int8-of-float", checkpoint, True, None),
               ("ct2-int8-cell", cell, True, None)]
    if (tokenized / PAIRS_FILE).is_file():
        exports.append(("ct2-int8-cell-vmap", cell, True, vmap))
    for name, source, int8, shortlist in exports:
        manifest = export(load_model(source), source, tokenized, workdir / name, int8=int8, shortlist=shortlist)
        exported = open_export(workdir / name, threads=threads, quiet=True)
        facts[name] = {"source": str(source), "settings": exported.settings,
                       "differences": [d["label"] for d in manifest["differences"]]}
        found[name] = (lambda e: lambda ids, opts: ct2_translate_ids(e, ids, opts))(exported)
    return found, facts


def identical(outputs: list, reference: list) -> float:
    """The share of sentences whose output ids equal the reference system's."""
    return round(sum(a == b for a, b in zip(outputs, reference)) / max(len(reference), 1), 4)


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False), help="the float baseline")
@click.option("--cell", required=True, type=click.Path(exists=True, dir_okay=False),
              help="a cell's model.safetensors (a symmetric per-row 8-bit cell ships its codes verbatim)")
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--test", "test_split", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", default=2, show_default=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--batch1-sentences", default=200, show_default=True)
@click.option("--avx2", is_flag=True, help="AVX2 kernels only (PyTorch, oneDNN, MKL, CTranslate2)")
@click.option("--vmap", default="100,1000", show_default=True,
              help="the shortlist of ct2-int8-cell-vmap: candidates per source piece, most frequent pieces")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def main(checkpoint, cell, tokenized, test_split, threads, rounds, batch1_sentences, avx2, vmap, out):
    if avx2 and any(os.environ.get(k) != v for k, v in AVX2_ONLY.items()):
        # The kernels are chosen when torch and CTranslate2 load: set the variables, then start again.
        os.execvpe(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_ONLY})
    torch.set_num_threads(threads)
    tok = Tokenizer.load(tokenized)
    sources, refs = read_split(test_split)
    ids = tok.encode_src(sources)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="deploy_speed_") as workdir:
        per_source, frequent = (int(v) for v in vmap.split(","))
        found, facts = systems(Path(checkpoint), Path(cell), Path(tokenized), Path(workdir), threads,
                               (per_source, frequent))
        for fn in found.values():   # warm-up: first-call allocations stay out of the timings
            fn(ids[:8], DecodeOptions(beam_size=1, batch_sentences=8))
        rows = []
        for setting, beam, batch in SETTINGS:
            subset = ids if batch > 1 else ids[:batch1_sentences]
            opts = DecodeOptions(beam_size=beam, batch_sentences=batch)
            best, outputs = {name: float("inf") for name in found}, {}
            for _ in range(rounds):
                for name, fn in found.items():   # alternating: a slow spell of the machine hits every system
                    start = time.perf_counter()
                    outputs[name] = fn(subset, opts)
                    best[name] = min(best[name], time.perf_counter() - start)
            for name in found:
                row = {"system": name, "decoding": setting, "batch": batch, "sentences": len(subset),
                       "sentences_per_second": round(len(subset) / best[name], 1),
                       "x_ours_fp32": round(best["ours-fp32"] / best[name], 2),
                       "identical_to_ours": identical(outputs[name], outputs["ours-fp32"])}
                if batch > 1:
                    row["bleu"] = score(tok.decode_tgt(outputs[name]), refs)["bleu"]
                rows.append(row)
                print(json.dumps(row), flush=True)
        one_at_a_time = DecodeOptions(beam_size=1, batch_sentences=1)
        batch1 = {name: fn(ids, one_at_a_time) for name, fn in found.items()}
        whole_batch1 = {name: {"bleu": score(tok.decode_tgt(out_ids), refs)["bleu"],
                               "identical_to_ours": identical(out_ids, batch1["ours-fp32"])}
                        for name, out_ids in batch1.items()}
    ctranslate2 = require_ctranslate2()
    result = {"command": "python benchmarks/deploy_speed.py " + " ".join(sys.argv[1:]),
              "ctranslate2": ctranslate2.__version__, "torch": torch.__version__, "threads": threads,
              "rounds": rounds, "avx2_kernels_only": avx2, "cpu": platform.processor() or platform.machine(),
              "cpu_flags": cpu_flags(), "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
              "exports": facts, "rows": rows, "greedy_batch1_whole_test": whole_batch1}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nctranslate2 {ctranslate2.__version__}; cpu flags: {' '.join(result['cpu_flags'])}"
          f"{' (AVX2 kernels only)' if avx2 else ''}; {threads} threads; "
          f"load average before/after {load_before[0]:.1f}/{os.getloadavg()[0]:.1f}")
    print("| system | decoding | batch | sentences/s | × ours fp32 | = ours | BLEU |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['system']} | {r['decoding']} | {r['batch']} | {r['sentences_per_second']} | "
              f"{r['x_ours_fp32']:.2f} | {r['identical_to_ours']:.1%} | {r.get('bleu', '–')} |")


if __name__ == "__main__":
    main()
