"""The one training loop: the baseline, and every trained cell (QAT, pruning, their controls).

Compression methods never copy this loop; they wrap modules and plug into its ``Hook`` points
(a pruning schedule updates masks in ``on_step_end`` and masks gradients in ``after_backward``;
QAT's wrapped modules fake-quantize in the forward pass and its ``DelayedStart`` hook switches
them on at a step). Everything that decides the next step's result is in
the resumable checkpoint — weights, optimizer, step counters, RNG state, hook state — and the batch
order is a function of (seed, epoch), so a run killed and restarted reaches the same weights as one
that was never interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import sacrebleu
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tcompress.batching import epoch_seed, make_batches, pad
from tcompress.checkpoint import load_safe, model_payload, save_atomic
from tcompress.config import TrainConfig
from tcompress.decode import DecodeOptions, translate_ids
from tcompress.model import PAD, EncoderDecoder
from tcompress.precision import resolve_precision


class Hook:
    """Extension points of the loop; every method is optional. ``state`` is the live ``TrainState``."""

    def on_train_start(self, model: EncoderDecoder, state: "TrainState") -> None: ...
    def training_loss(self, src: torch.Tensor, tgt: torch.Tensor, logits: torch.Tensor,
                      loss: torch.Tensor) -> torch.Tensor:
        """The summed loss the step minimizes, given the batch, the model's logits and the summed
        label-smoothed cross-entropy (distillation mixes in the teacher's distribution)."""
        return loss
    def after_backward(self, model: EncoderDecoder, state: "TrainState") -> None: ...
    def on_step_end(self, model: EncoderDecoder, state: "TrainState") -> None: ...
    def on_epoch_end(self, model: EncoderDecoder, state: "TrainState", metrics: dict) -> None: ...
    def state_dict(self) -> dict: return {}
    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class TrainState:
    epoch: int = 0              # epochs completed
    batch_in_epoch: int = 0     # batches of the current epoch already taken
    step: int = 0               # optimizer steps taken
    best_score: float = -math.inf
    best_epoch: int = -1
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0     # optimizer steps only
    wall_seconds: float = 0.0      # steps, validation and checkpoints, summed over resumed runs
    train_tokens: int = 0
    epoch_loss: float = 0.0        # running sums of the current epoch, so a resumed epoch reports the whole epoch
    epoch_tokens: int = 0


@dataclass
class ParallelData:
    """Token ids of one split: source ids end in EOS, target ids are BOS … EOS."""
    src: list[list[int]]
    tgt: list[list[int]]
    references: list[str] | None = None  # raw target text, for BLEU


def inverse_sqrt_lr(step: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` at ``warmup`` steps, then peak·sqrt(warmup/step) (Vaswani et al. §5.3)."""
    step = max(step, 1)
    return peak * min(step / warmup, math.sqrt(warmup / step))


def _autocast(cfg: TrainConfig, device: torch.device):
    if resolve_precision(cfg.precision, device, quiet=True) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _loss(model: EncoderDecoder, src: torch.Tensor, tgt: torch.Tensor, smoothing: float,
          cfg: TrainConfig, device: torch.device) -> tuple[torch.Tensor, int, torch.Tensor]:
    """Summed cross-entropy, the number of target tokens, and the logits."""
    tgt_in, labels = tgt[:, :-1], tgt[:, 1:]  # teacher forcing: predict token t+1 from tokens ≤ t
    with _autocast(cfg, device):
        logits = model(src, tgt_in)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1),
                           ignore_index=PAD, label_smoothing=smoothing, reduction="sum")
    return loss, int((labels != PAD).sum()), logits


@torch.no_grad()
def validate(model: EncoderDecoder, data: ParallelData, cfg: TrainConfig, device: torch.device,
             decode_tgt: Callable[[list[list[int]]], list[str]] | None) -> dict:
    """Validation loss per token (no label smoothing) and, with references, greedy BLEU."""
    model.eval()
    total, tokens = 0.0, 0
    for batch in make_batches([len(s) for s in data.src], [len(t) for t in data.tgt], cfg.batch_tokens):
        loss, n, _ = _loss(model, pad([data.src[i] for i in batch]).to(device),
                           pad([data.tgt[i] for i in batch]).to(device), 0.0, cfg, device)
        total, tokens = total + float(loss), tokens + n
    metrics = {"val_loss": total / max(tokens, 1)}
    if decode_tgt is not None and data.references is not None:
        n = cfg.val_bleu_sentences or len(data.src)
        with _autocast(cfg, device):
            ids = translate_ids(model, data.src[:n], DecodeOptions(beam_size=1), device, desc="val bleu")
        metrics["val_bleu"] = sacrebleu.corpus_bleu(decode_tgt(ids), [data.references[:n]]).score
    return metrics


def fingerprint(*parts: Any) -> str:
    """A short hash of plain values."""
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def ids_digest(*splits: list[list[int]]) -> str:
    """Hash of token id lists, every id (a million ids hash in well under a second)."""
    import numpy as np

    h = hashlib.sha256()
    for seqs in splits:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        h.update(lengths.tobytes())
        h.update(np.fromiter((i for s in seqs for i in s), dtype=np.int64, count=int(lengths.sum())).tobytes())
    return h.hexdigest()[:16]


def stale_reason(stored: dict | None, identity: dict) -> str | None:
    """Why a resume checkpoint written for ``stored`` cannot continue the run ``identity``; None if it can."""
    if stored == identity:
        return None
    if not isinstance(stored, dict):
        return "it was written by an older version"
    changed = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
    return "its " + ", ".join(changed) + (" differs" if len(changed) == 1 else " differ") + " from this run's"


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators: the train stage before it builds the baseline, a cell
    before its method runs, and a method that builds a fresh model the way the train stage does."""
    random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fit(model: EncoderDecoder, train: ParallelData, valid: ParallelData, cfg: TrainConfig, *, seed: int,
        best_path: str | Path, resume_path: str | Path, identity: dict, hooks: list[Hook] = (),
        decode_tgt: Callable[[list[list[int]]], list[str]] | None = None,
        device: torch.device | str = "cpu", progress: bool = True,
        stop_after_steps: int | None = None, checkpoint_every: int = 200) -> TrainState:
    """Train for ``cfg.epochs`` epochs, keeping the best model (by validation BLEU, else by loss)
    in ``best_path`` and a resumable checkpoint in ``resume_path``.

    ``identity`` names what the run is (hashes of its config, data, starting weights): a resume
    checkpoint with another identity is ignored with one line saying which part differs.
    ``stop_after_steps`` ends the call early as an interruption would (tests use it), leaving the
    resume checkpoint of that moment.
    """
    device = torch.device(device)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps,
                           weight_decay=cfg.weight_decay)
    state = TrainState()
    resume_path = Path(resume_path)
    if resume_path.exists():
        ckpt = load_safe(resume_path, device)
        reason = stale_reason(ckpt.get("identity"), identity)
        if reason is None:
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            state = TrainState(**ckpt["state"])
            for hook, hs in zip(hooks, ckpt["hooks"]):
                hook.load_state_dict(hs)
            _set_rng_state(ckpt["rng"])
            tqdm.write(f"resuming from {resume_path}: epoch {state.epoch + 1}, step {state.step}")
        else:
            tqdm.write(f"ignoring {resume_path}: {reason}; starting from the beginning")

    def save_resume() -> None:
        save_atomic({"identity": identity, "model": model.state_dict(), "optimizer": opt.state_dict(),
                     "state": dataclasses.asdict(state), "hooks": [h.state_dict() for h in hooks],
                     "rng": _rng_state()}, resume_path)

    for hook in hooks:
        hook.on_train_start(model, state)
    src_lens, tgt_lens = [len(s) for s in train.src], [len(t) for t in train.tgt]
    wall_start, wall_base = time.perf_counter(), state.wall_seconds

    def tick() -> None:
        state.wall_seconds = wall_base + time.perf_counter() - wall_start
    while state.epoch < cfg.epochs:
        batches = make_batches(src_lens, tgt_lens, cfg.batch_tokens, seed=epoch_seed(seed, state.epoch))
        model.train()
        bar = tqdm(total=len(batches), initial=state.batch_in_epoch, disable=not progress,
                   desc=f"epoch {state.epoch + 1}/{cfg.epochs}", unit="batch", mininterval=2.0)
        while state.batch_in_epoch < len(batches):
            t0 = time.perf_counter()
            batch = batches[state.batch_in_epoch]
            src = pad([train.src[i] for i in batch]).to(device)
            tgt = pad([train.tgt[i] for i in batch]).to(device)
            for group in opt.param_groups:
                group["lr"] = inverse_sqrt_lr(state.step + 1, cfg.lr, cfg.warmup_steps)
            loss, n_tokens, logits = _loss(model, src, tgt, cfg.label_smoothing, cfg, device)
            for hook in hooks:
                loss = hook.training_loss(src, tgt, logits, loss)
            opt.zero_grad(set_to_none=True)
            (loss / n_tokens).backward()
            for hook in hooks:
                hook.after_backward(model, state)
            if cfg.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            state.step += 1
            state.batch_in_epoch += 1
            for hook in hooks:
                hook.on_step_end(model, state)
            state.epoch_loss += float(loss.detach())
            state.epoch_tokens += n_tokens
            state.train_seconds += time.perf_counter() - t0
            state.train_tokens += n_tokens
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()) / n_tokens:.3f}", lr=f"{opt.param_groups[0]['lr']:.2e}",
                            tok_s=f"{state.train_tokens / max(state.train_seconds, 1e-9):.0f}")
            if state.step % checkpoint_every == 0:
                tick()
                save_resume()
            if stop_after_steps is not None and state.step >= stop_after_steps:
                bar.close()
                tick()
                save_resume()
                return state
        bar.close()
        metrics = {"epoch": state.epoch + 1, "step": state.step,
                   "train_loss": state.epoch_loss / max(state.epoch_tokens, 1),
                   **validate(model, valid, cfg, device, decode_tgt)}
        state.epoch += 1
        state.batch_in_epoch, state.epoch_loss, state.epoch_tokens = 0, 0.0, 0
        state.history.append(metrics)
        score = metrics.get("val_bleu", -metrics["val_loss"])
        if score > state.best_score:
            state.best_score, state.best_epoch = score, state.epoch
            save_atomic(model_payload(model, epoch=state.epoch, metrics=metrics), best_path)
        for hook in hooks:
            hook.on_epoch_end(model, state, metrics)
        tqdm.write("epoch {epoch}: ".format(**metrics) + ", ".join(
            f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
        tick()
        save_resume()
    return state
