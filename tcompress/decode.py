"""Greedy and beam-search decoding, batched, with cached keys and values.

With the cache each step feeds only the newest token through the decoder, so a sentence of n
tokens costs O(n) decoder positions instead of the O(n²) of re-running the prefix
(``greedy(..., use_cache=False)`` keeps that reference path for tests and the speed benchmark).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from tcompress.batching import pad
from tcompress.model import BOS, EOS, PAD, EncoderDecoder


def length_limits(src: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Per-sentence output limit a·|source| + b, so a translation never depends on its batch mates."""
    return (a * (src != PAD).sum(1).float() + b).long()


@torch.no_grad()
def greedy(model: EncoderDecoder, src: torch.Tensor, max_len: int | torch.Tensor,
           use_cache: bool = True) -> list[list[int]]:
    """Token ids (without BOS/EOS) of the argmax continuation for each row of ``src`` (B, S);
    ``max_len`` is one limit or one per row."""
    memory, src_mask = model.encode(src)
    b = src.size(0)
    limits = torch.as_tensor(max_len, device=src.device).expand(b)
    ys = torch.full((b, 1), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(b, dtype=torch.bool, device=src.device)
    caches = [{} for _ in model.decoder.layers] if use_cache else None
    for step in range(int(limits.max()) + 1):
        if use_cache:
            logits = model.decode_step(ys[:, -1:], step, memory, src_mask, caches)
        else:
            logits = model.generator(model.decode(ys, memory, src_mask))[:, -1]
        nxt = logits.argmax(-1)
        nxt = torch.where(step >= limits, torch.full_like(nxt, EOS), nxt)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == EOS
        if bool(done.all()):
            break
    return [_strip(row) for row in ys[:, 1:].tolist()]


def _strip(seq: list[int]) -> list[int]:
    out = []
    for tok in seq:
        if tok in (EOS, PAD):
            break
        out.append(tok)
    return out


def _length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT length penalty ((5 + |Y|) / 6) ** alpha (Wu et al., 2016), as used by FullyQT."""
    return ((5.0 + length.float()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model: EncoderDecoder, src: torch.Tensor, beam_size: int, length_penalty: float,
                max_len: int | torch.Tensor) -> list[list[int]]:
    """Best hypothesis per row by log-probability / length penalty, over ``beam_size`` beams."""
    b, k = src.size(0), beam_size
    limits = torch.as_tensor(max_len, device=src.device).expand(b).repeat_interleave(k)
    memory, src_mask = model.encode(src)
    # Each source row is repeated k times: beams live in the batch dimension (B*K, ...).
    memory = memory.repeat_interleave(k, dim=0)
    src_mask = src_mask.repeat_interleave(k, dim=0)
    caches = [{} for _ in model.decoder.layers]
    tokens = torch.full((b * k, 1), BOS, dtype=torch.long, device=src.device)
    scores = torch.zeros(b, k, device=src.device)
    scores[:, 1:] = float("-inf")  # all beams start identical: keep only one alive at step 0
    finished = torch.zeros(b * k, dtype=torch.bool, device=src.device)
    lengths = torch.zeros(b * k, dtype=torch.long, device=src.device)
    for step in range(int(limits.max()) + 1):
        logp = torch.log_softmax(model.decode_step(tokens[:, -1:], step, memory, src_mask, caches).float(), -1)
        vocab = logp.size(-1)
        at_limit = (step >= limits) & ~finished  # beams in one row share a limit, so `flat` below keeps it valid
        logp[at_limit] = float("-inf")
        logp[at_limit, EOS] = 0.0
        # A finished beam may only extend with PAD at no cost, so its score stays fixed.
        logp[finished] = float("-inf")
        logp[finished, PAD] = 0.0
        cand = (scores.view(-1, 1) + logp).view(b, k * vocab)
        top_scores, top_idx = cand.topk(k, dim=1)
        beam_idx = top_idx // vocab
        tok = top_idx % vocab
        base = (torch.arange(b, device=src.device) * k)[:, None]
        flat = (base + beam_idx).view(-1)
        tokens = torch.cat([tokens[flat], tok.view(-1, 1)], dim=1)
        was_finished = finished[flat]
        lengths = lengths[flat] + (~was_finished).long()
        finished = was_finished | (tok.view(-1) == EOS)
        scores = top_scores
        for cache in caches:
            cache["k"], cache["v"] = cache["k"][flat], cache["v"][flat]
        if bool(finished.all()):
            break
    final = scores.view(-1) / _length_penalty(lengths, length_penalty)
    best = final.view(b, k).argmax(dim=1)
    rows = tokens[(torch.arange(b, device=src.device) * k + best)]
    return [_strip(row) for row in rows[:, 1:].tolist()]


@dataclass(frozen=True)
class DecodeOptions:
    beam_size: int = 1
    length_penalty: float = 0.6
    batch_sentences: int = 128
    max_len_a: float = 1.5
    max_len_b: int = 10


@torch.no_grad()
def translate_ids(model: EncoderDecoder, src_ids: list[list[int]], opts: DecodeOptions,
                  device: torch.device | str = "cpu", progress: bool = False, desc: str = "decode") -> list[list[int]]:
    """Output ids for every source, in input order; batches are formed by length to limit padding."""
    model.eval()
    order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))  # similar lengths share a batch
    chunks = [order[i: i + opts.batch_sentences] for i in range(0, len(order), opts.batch_sentences)]
    out: list[list[int] | None] = [None] * len(src_ids)
    for chunk in tqdm(chunks, desc=desc, disable=not progress, unit="batch", mininterval=2.0):
        src = pad([src_ids[i] for i in chunk]).to(device)
        max_len = length_limits(src, opts.max_len_a, opts.max_len_b)
        if opts.beam_size == 1:
            hyps = greedy(model, src, max_len)
        else:
            hyps = beam_search(model, src, opts.beam_size, opts.length_penalty, max_len)
        for i, hyp in zip(chunk, hyps):
            out[i] = hyp
    return out  # type: ignore[return-value]


def translate(model: EncoderDecoder, tokenizer, sources: list[str], opts: DecodeOptions,
              device: torch.device | str = "cpu", progress: bool = False, desc: str = "decode") -> tuple[list[str], float]:
    """Detokenized translations in input order and the sentences per second it took."""
    start = time.perf_counter()
    ids = translate_ids(model, tokenizer.encode_src(sources), opts, device, progress, desc)
    hyps = tokenizer.decode_tgt(ids)
    elapsed = time.perf_counter() - start
    return hyps, len(sources) / max(elapsed, 1e-9)
