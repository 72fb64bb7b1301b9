"""Word-level KD's teacher: its top-k distributions over the training pairs (``TeacherTopK``).

Sequence-level KD's targets, the teacher's translations of the training sources, are the ``teacher``
stage's output (``tcompress.teacher``), computed once per baseline.
"""

from __future__ import annotations


class TeacherTopK:
    """The teacher's k largest logits at every target position of the training pairs, computed once.

    A step's batch is looked up by content (source and target ids), so the training loop needs no
    sentence indices; equal pairs share one entry, as the teacher gives them the same outputs. Values
    are kept in float32 and indices in int32: k·8 bytes a target token (30 MB for Multi30k at k = 8).
    """

    def __init__(self, teacher, data, k: int, batch_tokens: int, device, bf16: bool, progress: bool = False):
        import itertools

        import torch
        from tqdm.auto import tqdm

        from tcompress.batching import make_batches, pad

        self.lengths = [len(t) - 1 for t in data.tgt]                  # positions after BOS: the labels
        self.offsets = [0, *itertools.accumulate(self.lengths)]
        self.values = torch.empty(self.offsets[-1], k)
        self.indices = torch.empty(self.offsets[-1], k, dtype=torch.int32)
        self.row: dict[tuple, int] = {}
        for i, pair in enumerate(zip(data.src, data.tgt)):
            self.row.setdefault((tuple(pair[0]), tuple(pair[1])), i)
        batches = make_batches([len(s) for s in data.src], [len(t) for t in data.tgt], batch_tokens)
        for batch in tqdm(batches, desc=f"teacher's top {k}", unit="batch", disable=not progress,
                          mininterval=2.0):      # in length order: little padding
            src = pad([data.src[i] for i in batch]).to(device)
            tgt_in = pad([data.tgt[i][:-1] for i in batch]).to(device)
            with torch.no_grad(), torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
                top = teacher(src, tgt_in).float().topk(k, dim=-1)   # (B, T, k) each
            values, indices = top.values.cpu(), top.indices.to(torch.int32).cpu()
            for row, i in enumerate(batch):
                start, n = self.offsets[i], self.lengths[i]
                self.values[start:start + n], self.indices[start:start + n] = values[row, :n], indices[row, :n]

    def lookup(self, src, tgt):
        """(values, indices), (tokens, k) each, in the order of ``logits[labels != PAD]``."""
        import torch

        from tcompress.model import PAD

        rows = []
        for s, t in zip(src.tolist(), tgt.tolist()):
            key = (tuple(x for x in s if x != PAD), tuple(x for x in t if x != PAD))
            if key not in self.row:
                raise KeyError("word KD: a training pair the teacher's top-k were not computed for")
            i = self.row[key]
            rows.append(torch.arange(self.offsets[i], self.offsets[i] + self.lengths[i]))
        flat = torch.cat(rows)
        return self.values[flat], self.indices[flat].long()
