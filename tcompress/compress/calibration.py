"""Per-Linear input statistics of a float model on calibration batches, computed once and stored.

The post-training methods that look at a layer's inputs (GPTQ, AWQ, SmoothQuant, AdaRound) read
the same few statistics of every ``nn.Linear``'s input rows x (one row per non-padding token):

- ``gram``: XᵀX (d_in, d_in), summed in float64 (GPTQ's Hessian is 2·XᵀX/n + damping);
- ``mean_abs`` and ``max_abs``: per input channel, the mean and the maximum of |x| (AWQ's and
  SmoothQuant's per-channel scales);
- ``count``: n, the rows summed.

The Gram matrix also gives any reconstruction error of a changed weight exactly, over every
calibration token: ‖X·ΔWᵀ‖² = tr(ΔW·XᵀX·ΔWᵀ). AWQ's search and AdaRound's objective use it instead
of a sample of input rows, at a cost that does not grow with the tokens.

The ``calibrate`` stage computes them on the baseline (``collect``), so each layer's statistics are
of the float model's inputs, not of inputs already passed through quantized layers before it: every
cell of every method reads the same file, and a changed bit width recomputes nothing.

Padding positions are left out. A Linear's input is (B, L, d_in), L the source's or the target's
length, and its hook takes the mask of the one whose shape it has; a batch whose target is as long
as its source gets one more padding column on the target so the two cannot be confused, which
changes no real position's output (the causal and padding masks hide it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from tcompress import safetensors_file
from tcompress.batching import make_batches, pad
from tcompress.data.corpora import read_ids
from tcompress.model import PAD

FORMAT = "tcompress.calibration/1"


@dataclass(frozen=True)
class LinearStats:
    """One Linear's input statistics (see the module docstring)."""
    gram: torch.Tensor       # (d_in, d_in) float64, XᵀX
    mean_abs: torch.Tensor   # (d_in,) float32
    max_abs: torch.Tensor    # (d_in,) float32
    count: int               # rows in X

    def output_error(self, delta: torch.Tensor) -> torch.Tensor:
        """‖X·ΔWᵀ‖²_F / n for a weight change ``delta`` (d_out, d_in): the mean squared output error
        per calibration token that replacing W by W + ΔW causes."""
        delta = delta.to(self.gram.dtype)
        return ((delta @ self.gram) * delta).sum() / self.count


def calibration_batches(tokenized: str | Path, n_batches: int, batch_tokens: int, seed: int,
                        device: torch.device | str = "cpu") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``n_batches`` training batches of a seeded shuffle, as (src, tgt_in) pairs (the
    batches ``CellContext.calibration_batches`` gives PTQ)."""
    src, tgt = read_ids(tokenized, "train")
    batches = make_batches([len(s) for s in src], [len(t) for t in tgt], batch_tokens, seed)[:n_batches]
    return [(pad([src[i] for i in b]).to(device), pad([tgt[i][:-1] for i in b]).to(device)) for b in batches]


class _Accumulator:
    def __init__(self, d_in: int):
        self.gram = torch.zeros(d_in, d_in, dtype=torch.float64)
        self.abs_sum = torch.zeros(d_in, dtype=torch.float64)
        self.max_abs = torch.zeros(d_in)
        self.count = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().float().cpu()                                     # (n, d_in), real tokens only
        x64 = x.double()
        self.gram += x64.T @ x64
        self.abs_sum += x64.abs().sum(0)
        self.max_abs = torch.maximum(self.max_abs, x.abs().amax(0))
        self.count += x.shape[0]

    def stats(self) -> LinearStats:
        return LinearStats(self.gram, (self.abs_sum / max(self.count, 1)).float(), self.max_abs, self.count)


@torch.no_grad()
def collect(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, LinearStats]:
    """Every Linear's input statistics over ``batches`` of (src, tgt_in), by module name."""
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    acc = {name: _Accumulator(m.in_features) for name, m in linears.items()}
    masks: dict[tuple[int, int], torch.Tensor] = {}

    def hook(module, args, _out, name):
        x = args[0]
        acc[name].add(x[masks[tuple(x.shape[:2])]])

    handles = [m.register_forward_hook(lambda mod, a, o, name=name: hook(mod, a, o, name))
               for name, m in linears.items()]
    was_training = model.training
    model.eval()
    try:
        for src, tgt_in in batches:
            if tgt_in.shape[1] == src.shape[1]:
                tgt_in = torch.cat([tgt_in, tgt_in.new_full((tgt_in.shape[0], 1), PAD)], dim=1)
            masks.clear()
            masks[tuple(src.shape)], masks[tuple(tgt_in.shape)] = src != PAD, tgt_in != PAD
            model(src, tgt_in)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    silent = [name for name, a in acc.items() if a.count == 0]
    if silent:
        raise ValueError(f"calibration saw no input of {silent[0]!r} ({len(silent)} Linear(s))")
    return {name: a.stats() for name, a in acc.items()}


def save(stats: dict[str, LinearStats], path: str | Path, settings: dict) -> int:
    """Write the statistics as one safetensors file (``<linear>.<field>`` tensors); returns its bytes."""
    tensors = {}
    for name, s in stats.items():
        tensors |= {f"{name}.gram": s.gram, f"{name}.mean_abs": s.mean_abs, f"{name}.max_abs": s.max_abs,
                    f"{name}.count": torch.tensor(s.count, dtype=torch.int64)}
    return safetensors_file.write(path, tensors, {"format": FORMAT, "settings": json.dumps(settings, sort_keys=True)})


def load(path: str | Path) -> dict[str, LinearStats]:
    """The statistics ``save`` wrote, by Linear name."""
    tensors, metadata = safetensors_file.read(path)
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: not a calibration statistics file (format {metadata.get('format')!r})")
    names = dict.fromkeys(key.rsplit(".", 1)[0] for key in tensors)
    return {name: LinearStats(tensors[f"{name}.gram"], tensors[f"{name}.mean_abs"], tensors[f"{name}.max_abs"],
                              int(tensors[f"{name}.count"])) for name in names}
