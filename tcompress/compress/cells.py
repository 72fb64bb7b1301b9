"""Run one grid cell: baseline checkpoint + plan entry -> compressed checkpoint and its facts.

Post-training quantization calibrates and converts. Quantization-aware training and pruning wrap
or hook the model and then call the one training loop (``tcompress.training.fit``) for the
method's fine-tuning budget; the cell keeps the model at the end of that budget, when every
schedule has finished.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from tcompress.batching import make_batches, pad
from tcompress.compress.artifact import load_any, save_compressed, stored_bits
from tcompress.compress.calibration import ClipConfig
from tcompress.compress.methods import compress_
from tcompress.compress.pruning import AGPConfig, IMPConfig, nonzero_parameters
from tcompress.compress.ptq import PTQConfig
from tcompress.compress.qat import QATConfig
from tcompress.compress.ratio import pruning_ratio, quantization_ratio
from tcompress.config import TrainConfig, _build, parse_schedule
from tcompress.data.corpora import read_split
from tcompress.layer_groups import group_parameter_count
from tcompress.model import count_parameters, make_model
from tcompress.stage import StageError
from tcompress.tokenizer import Tokenizer
from tcompress.training import ParallelData, fingerprint, fit


def _read_ids(tokenized: str | Path, split: str) -> tuple[list[list[int]], list[list[int]]]:
    table = pq.read_table(Path(tokenized) / f"{split}.ids.parquet", columns=["src_ids", "tgt_ids"])
    return table.column("src_ids").to_pylist(), table.column("tgt_ids").to_pylist()


def calibration_batches(tokenized: str | Path, n_batches: int, batch_tokens: int, seed: int,
                        device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``n_batches`` training batches of a seeded shuffle, as (src, tgt_in) pairs."""
    src, tgt = _read_ids(tokenized, "train")
    batches = make_batches([len(s) for s in src], [len(t) for t in tgt], batch_tokens, seed)[:n_batches]
    return [(pad([src[i] for i in b]).to(device), pad([tgt[i][:-1] for i in b]).to(device)) for b in batches]


class Context:
    """What a trained cell needs besides its plan: data, where to resume, the device."""

    def __init__(self, tokenized: str | Path, valid_split: str | Path | None, resume: str | Path | None,
                 device: torch.device):
        self.tokenized, self.valid_split, self.resume, self.device = tokenized, valid_split, resume, device

    def training_data(self, entry: dict) -> tuple[ParallelData, ParallelData]:
        src, tgt = _read_ids(self.tokenized, "train")
        n = entry["config"]["train_sentences"]
        if n and n < len(src):
            keep = sorted(random.Random(entry["seed"]).sample(range(len(src)), n))
            src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
        refs = read_split(self.valid_split)[1] if self.valid_split else None
        return ParallelData(src, tgt), ParallelData(*_read_ids(self.tokenized, "valid"), references=refs)

    def steps_per_epoch(self, entry: dict) -> int:
        train, _ = self.training_data(entry)
        return len(make_batches([len(s) for s in train.src], [len(t) for t in train.tgt],
                                entry["train"]["batch_tokens"], 0))


def _finetune(entry: dict, model, hooks: list, ctx: Context) -> dict:
    if ctx.resume is None:
        raise ValueError(f"cell {entry['cell']} trains: it needs a resume path")
    cfg = _build(TrainConfig, entry["train"], "train")
    train, valid = ctx.training_data(entry)
    tok = Tokenizer.load(ctx.tokenized)
    with tempfile.TemporaryDirectory() as tmp:  # fit's best-epoch copy; the cell keeps the final model
        state = fit(model, train, valid, cfg, seed=entry["seed"], best_path=Path(tmp) / "best.pt",
                    resume_path=ctx.resume, run_id=fingerprint(entry), hooks=hooks, decode_tgt=tok.decode_tgt,
                    device=ctx.device)
    Path(ctx.resume).unlink(missing_ok=True)
    return {"finetune_steps": state.step, "finetune_sentences": len(train.src),
            "finetune_seconds": round(state.train_seconds, 1), "finetune_curve": state.history}


def _ptq(entry: dict, model, ctx: Context) -> dict:
    c = entry["config"]
    config = PTQConfig(bits=entry["bits"], mode=entry["mode"], per_channel=c["per_channel"],
                       activations=c["activations"], clip=ClipConfig(c["clip"], c["clip_percentile"], c["clip_std"]))
    batches = calibration_batches(ctx.tokenized, c["calibration_batches"], c["calibration_batch_tokens"],
                                  entry["seed"], ctx.device) if config.activations != "none" else []
    compress_(model, config, entry["group"], calibration_batches=batches)
    return {"calibration_batches": len(batches)}


def _qat(entry: dict, model, ctx: Context) -> dict:
    c = entry["config"]
    config = QATConfig(bits=entry["bits"], mode=entry["mode"], per_channel=c["per_channel"],
                       activations=c["activations"], ema_momentum=c["ema_momentum"], start_step=c["start_step"])
    wiring = compress_(model, config, entry["group"])
    facts = _finetune(entry, model, wiring["hooks"], ctx)
    wiring["finalize"](model)
    return facts


def _pruned(entry: dict, model, config, last_pruning_step: int, ctx: Context) -> dict:
    total = ctx.steps_per_epoch(entry) * entry["train"]["epochs"]
    if last_pruning_step > total:
        raise StageError(f"{entry['method']}: the schedule prunes until step {last_pruning_step} but the "
                         f"fine-tuning budget is {total} steps ({entry['method']}.epochs, .train_sentences)")
    wiring = compress_(model, config, entry["group"])
    facts = _finetune(entry, model, wiring["hooks"], ctx)
    return {**facts, "sparsity": wiring["pruner"].sparsity_report()}


def _agp(entry: dict, model, ctx: Context) -> dict:
    c = entry["config"]
    initial, final, frequency = parse_schedule(entry["schedule"])
    unit = 1 if c["unit"] == "steps" else ctx.steps_per_epoch(entry)
    config = AGPConfig(initial_sparsity=initial, final_sparsity=final, frequency=frequency * unit,
                       start_step=c["start"] * unit, end_step=c["end"] * unit)
    return _pruned(entry, model, config, config.end_step, ctx)


def _imp(entry: dict, model, ctx: Context) -> dict:
    c = entry["config"]
    config = IMPConfig(fraction=c["fraction"], rounds=c["rounds"], steps_per_round=c["steps_per_round"],
                       threshold=c["threshold"])
    return _pruned(entry, model, config, (config.rounds - 1) * config.steps_per_round, ctx)


# The plan names the method; its runner turns the plan's plain values into the method's config.
RUNNERS = {"ptq": _ptq, "qat": _qat, "agp": _agp, "imp": _imp}


def compress_cell(entry: dict, baseline: str | Path, out_dir: str | Path, ctx: Context) -> dict:
    start = time.perf_counter()
    model, _ = load_any(baseline, ctx.device)
    if entry.get("config", {}).get("from_scratch"):
        model = make_model(model.cfg, model.vocab).to(ctx.device)
    n_model = count_parameters(model)
    n_compressed = group_parameter_count(model, entry["group"])  # before wrapping: float parameters
    details = RUNNERS[entry["method"]](entry, model, ctx)
    facts = {"cell": entry["cell"], "method": entry["method"], "mode": entry.get("mode"), "bits": entry.get("bits"),
             "schedule": entry.get("schedule"), "group": entry["group"], "n_model": n_model,
             "n_compressed": n_compressed}
    if entry["method"] in ("ptq", "qat"):
        facts["compression_ratio"] = round(quantization_ratio(n_model, n_compressed, entry["bits"]), 4)
    else:
        nonzero = nonzero_parameters(model)
        facts.update(nonzero=nonzero, compression_ratio=round(pruning_ratio(n_model, nonzero), 4))
    facts.update(stored_bits=stored_bits(model), **details)
    out = Path(out_dir)
    save_compressed(model.cpu(), out / "model.pt", cell={k: v for k, v in facts.items() if k != "finetune_curve"})
    facts["checkpoint_bytes"] = (out / "model.pt").stat().st_size
    facts["compress_seconds"] = round(time.perf_counter() - start, 2)
    return facts
