"""Decoding speed, BLEU and memory: float32, torch's stock dynamic int8, a cell as evaluated, our int8.

Usage (from a workspace where the baseline exists; ``--cell`` names an 8-bit cell's artifact,
without it the baseline is quantized to 8 bits here, weights only, per output row):
    python benchmarks/int8_speed.py --baseline data/model/model.pt --tokenized data/tokenized \
        --test data/prepared/test.parquet --threads 2 --out benchmarks/results/int8_speed.json

In one process and one run, alternating the systems within each setting (same threads):
- ``fp32``: the baseline checkpoint;
- ``torch-dynamic-int8``: ``torch.ao.quantization.quantize_dynamic(baseline, {nn.Linear}, qint8)``,
  the one-liner anchor (a per-batch activation scale: its output depends on the batch);
- ``cell``: the cell's artifact as the evaluate stage decodes it (float matmuls of its codes);
- ``ours-int8``: the same artifact through ``to_int8_inference`` (``translate --int8``).
Settings: greedy and beam 4, at batch 128 over the whole test split (BLEU from these) and at batch 1
over its first ``--batch1-sentences`` sentences; after a warm-up, the fastest of ``--rounds`` runs.
Memory: the bytes of the model's tensors, and its resident memory loaded in a fresh process, above
the imports, once the allocator has returned what loading freed.
"""

from __future__ import annotations

import copy
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import click
import torch
from torch import nn

from tcompress.compress.int8_inference import to_int8_inference
from tcompress.data.corpora import read_split
from tcompress.decode import DecodeOptions, translate_ids
from tcompress.evaluation import score
from tcompress.loader import load_model
from tcompress.tokenizer import Tokenizer

SYSTEMS = ("fp32", "torch-dynamic-int8", "cell", "ours-int8")
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def cpu_flags() -> list[str]:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return [f for f in CPU_FLAGS if f in flags]


def load_system(name: str, baseline: str, cell: str) -> tuple[nn.Module, dict]:
    if name == "fp32":
        return load_model(baseline)[0], {}
    if name == "torch-dynamic-int8":
        model = load_model(baseline)[0]
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8), {}
    model = load_model(cell)[0]
    return model, (to_int8_inference(model) if name == "ours-int8" else {})


def make_weight_only_cell(baseline: str, path: str) -> None:
    from tcompress.compress.artifact import save_compressed
    from tcompress.methods.ptq.post_training import PTQConfig, post_training_quantize

    model = load_model(baseline)[0]
    post_training_quantize(model, PTQConfig(8, "sym", per_channel=True, activations="none"), "full")
    save_compressed(model, path, cell={"cell": "ptq-sym-8-full, per channel, weights only (int8_speed.py)"})


def tensor_megabytes(model: nn.Module) -> float:
    """Bytes of every distinct storage the model's parameters and buffers hold (shared ones once),
    plus fbgemm's packed int8 weights (ours and torch's dynamic ones), counted as int8 + float32 bias."""
    storages = {}
    for t in [*model.parameters(), *model.buffers()]:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    packed = 0
    for m in model.modules():
        params = getattr(m, "packed", None)  # ours (StaticInt8Linear)
        if params is None:  # torch's dynamic Linear: a LinearPackedParams module around the packed weight
            params = getattr(getattr(m, "_packed_params", None), "_packed_params", None)
        if params is not None:
            weight, bias = torch.ops.quantized.linear_unpack(params)
            packed += weight.numel() + (0 if bias is None else 4 * bias.numel())
    return round((sum(storages.values()) + packed) / 1e6, 1)


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure_memory(name: str, baseline: str, cell: str) -> float:
    """Resident memory (MB) of ``name`` loaded in a fresh process, above what the imports took,
    after the allocator has returned what loading freed (``malloc_trim``)."""
    code = ("import ctypes, gc, sys; "
            f"sys.path.insert(0, {str(Path(__file__).parent)!r}); import int8_speed as b; "
            "r0 = b.rss_kb(); "
            f"m, _ = b.load_system({name!r}, {baseline!r}, {cell!r}); gc.collect(); "
            "ctypes.CDLL('libc.so.6').malloc_trim(0); print(round((b.rss_kb() - r0) / 1024, 1))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def decode(model, ids, beam: int, batch: int) -> tuple[list[list[int]], float]:
    opts = DecodeOptions(beam_size=beam, length_penalty=0.6, batch_sentences=batch)
    start = time.perf_counter()
    out = translate_ids(model, ids, opts)
    return out, time.perf_counter() - start


@click.command()
@click.option("--baseline", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--cell", type=click.Path(exists=True, dir_okay=False),
              help="an 8-bit cell's artifact; default: the baseline quantized here to 8 bits (PTQ, symmetric, "
                   "per output row, weights only: no activation ranges), saved and loaded as a cell is")
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--test", "test_split", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", default=2, show_default=True)
@click.option("--batch1-sentences", default=200, show_default=True, help="sentences decoded one at a time")
@click.option("--sentences", default=0, help="limit the test split (0: all of it), for a smoke run")
@click.option("--rounds", default=2, show_default=True, help="timed runs per system and setting; the fastest counts")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def main(baseline, cell, tokenized, test_split, threads, batch1_sentences, sentences, rounds, out):
    torch.set_num_threads(threads)
    if cell is None:
        cell = str(Path(out).with_suffix(".cell.safetensors"))
        make_weight_only_cell(baseline, cell)
    tok = Tokenizer.load(tokenized)
    sources, refs = read_split(test_split)
    if sentences:
        sources, refs = sources[:sentences], refs[:sentences]
    ids = tok.encode_src(sources)
    models, facts = {}, {}
    for name in SYSTEMS:
        models[name], facts[name] = load_system(name, baseline, cell)
    for name in SYSTEMS:  # warm-up: lazy initialisation and caches, outside the timings
        decode(models[name], ids[:8], 4, 8)
    rows = []
    for beam in (1, 4):
        for batch, subset in ((128, ids), (1, ids[:batch1_sentences])):
            for name in SYSTEMS:  # alternating: every system within one setting, back to back; best of rounds
                runs = [decode(models[name], subset, beam, batch) for _ in range(rounds)]
                hyp_ids, seconds = runs[0][0], min(r[1] for r in runs)
                row = {"system": name, "decoding": "greedy" if beam == 1 else f"beam{beam}", "batch": batch,
                       "sentences": len(subset), "sentences_per_second": round(len(subset) / seconds, 1)}
                if batch == 128:
                    row["bleu"] = score(tok.decode_tgt(hyp_ids), refs)["bleu"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    memory = {name: {"resident_mb": measure_memory(name, baseline, cell), "tensor_mb": tensor_megabytes(models[name])}
              for name in SYSTEMS}
    result = {"command": " ".join(sys.argv), "torch": torch.__version__, "threads": threads,
              "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(),
              "cell": cell, "int8": facts["ours-int8"], "memory_mb": memory, "rows": rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    base = {(r["decoding"], r["batch"]): r["sentences_per_second"] for r in rows if r["system"] == "fp32"}
    print(f"\ncpu flags: {' '.join(result['cpu_flags'])}; torch {torch.__version__}; {threads} threads")
    print("| system | decoding | batch | sentences/s | × fp32 | BLEU |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['system']} | {r['decoding']} | {r['batch']} | {r['sentences_per_second']} | "
              f"{r['sentences_per_second'] / base[(r['decoding'], r['batch'])]:.2f} | {r.get('bleu', '–')} |")
    print("\n| system | tensors (MB) | resident after loading (MB) |\n|---|---|---|")
    for name, m in memory.items():
        print(f"| {name} | {m['tensor_mb']} | {m['resident_mb']} |")


if __name__ == "__main__":
    main()
