"""Batches by token count with length bucketing.

Sorting by length before cutting batches keeps padding small (a batch holds sentences of similar
length), and shuffling the order of the batches, not their content, keeps the epoch random. The
order is a pure function of (seed, epoch), so a resumed run can rebuild it and skip what it did.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch (and the model's PAD, which comes with it) is imported by ``pad`` alone: the plan stage counts
# a training budget's batches with ``make_batches`` without importing torch.


def make_batches(src_lens: list[int], tgt_lens: list[int], batch_tokens: int,
                 seed: int | None = None) -> list[list[int]]:
    """Index lists whose ``len(batch) * longest side`` stays within ``batch_tokens``.

    With ``seed`` the tie order among equal lengths and the batch order are shuffled by it;
    without, batches come in length order (for evaluation).
    """
    order = list(range(len(src_lens)))
    rng = random.Random(seed) if seed is not None else None
    if rng is not None:
        rng.shuffle(order)  # random tie-breaking; the sort below is stable
    order.sort(key=lambda i: (src_lens[i], tgt_lens[i]))
    batches, current, longest = [], [], 0
    for i in order:
        size = max(src_lens[i], tgt_lens[i])
        if current and (len(current) + 1) * max(longest, size) > batch_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, size)
    if current:
        batches.append(current)
    if rng is not None:
        rng.shuffle(batches)
    return batches


def pad(seqs: list[list[int]]) -> torch.Tensor:
    """(B, max_len) int64 tensor, right-padded with PAD."""
    import torch

    from tcompress.model import PAD

    out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD, dtype=torch.long)
    for row, seq in enumerate(seqs):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch
