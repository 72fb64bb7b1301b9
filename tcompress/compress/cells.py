"""Run one grid cell: baseline checkpoint + plan entry -> compressed checkpoint and its facts."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from tcompress.batching import make_batches, pad
from tcompress.compress.artifact import load_any, save_compressed, stored_bits
from tcompress.compress.calibration import ClipConfig
from tcompress.compress.methods import compress_
from tcompress.compress.ptq import PTQConfig
from tcompress.compress.ratio import quantization_ratio
from tcompress.layer_groups import group_parameter_count
from tcompress.model import count_parameters


def calibration_batches(tokenized: str | Path, n_batches: int, batch_tokens: int, seed: int,
                        device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``n_batches`` training batches of a seeded shuffle, as (src, tgt_in) pairs."""
    table = pq.read_table(Path(tokenized) / "train.ids.parquet", columns=["src_ids", "tgt_ids"])
    src, tgt = table.column("src_ids").to_pylist(), table.column("tgt_ids").to_pylist()
    batches = make_batches([len(s) for s in src], [len(t) for t in tgt], batch_tokens, seed)[:n_batches]
    return [(pad([src[i] for i in b]).to(device), pad([tgt[i][:-1] for i in b]).to(device)) for b in batches]


def _ptq(entry: dict, model, tokenized: str | Path, device: torch.device) -> dict:
    c = entry["config"]
    config = PTQConfig(bits=entry["bits"], mode=entry["mode"], per_channel=c["per_channel"],
                       activations=c["activations"],
                       clip=ClipConfig(c["clip"], c["clip_percentile"], c["clip_std"]))
    batches = calibration_batches(tokenized, c["calibration_batches"], c["calibration_batch_tokens"],
                                  entry["seed"], device) if config.activations else []
    compress_(model, config, entry["group"], calibration_batches=batches)
    return {"calibration_batches": len(batches)}


# The plan names the method; its runner turns the plan's plain values into the method's config.
RUNNERS = {"ptq": _ptq}


def compress_cell(entry: dict, baseline: str | Path, tokenized: str | Path, out_dir: str | Path,
                  device: torch.device) -> dict:
    start = time.perf_counter()
    model, _ = load_any(baseline, device)
    n_model = count_parameters(model)
    n_compressed = group_parameter_count(model, entry["group"])  # before wrapping: float parameters
    details = RUNNERS[entry["method"]](entry, model, tokenized, device)
    facts = {"cell": entry["cell"], "method": entry["method"], "mode": entry["mode"], "bits": entry["bits"],
             "group": entry["group"], "n_model": n_model, "n_compressed": n_compressed,
             "compression_ratio": round(quantization_ratio(n_model, n_compressed, entry["bits"]), 4),
             "stored_bits": stored_bits(model), **details}
    out = Path(out_dir)
    save_compressed(model.cpu(), out / "model.pt", cell=facts)
    facts["checkpoint_bytes"] = (out / "model.pt").stat().st_size
    facts["compress_seconds"] = round(time.perf_counter() - start, 2)
    return facts
