"""What the teacher gives a student: its translations of the training sources, its top-k distributions.

Sequence-level KD (Kim & Rush 2016) trains a student on the teacher's beam-search outputs instead
of the references, so that it learns the teacher's mode rather than the data's spread. The
``teacher`` stage decodes every training source once, with the settings of params.yaml's
``teacher`` section (``run``), and writes ``train.ids.parquet`` in the token-id layout of the
tokenize stage (source ids as they are, target ids BOS … EOS): every cell that asks for it reads
the same file, and DVC caches it like any output. The stage runs only when a selected cell's method
asks for the translations; otherwise it writes an "off" marker without importing torch.

Decoding the Multi30k training split takes tens of minutes on a CPU, so it proceeds in chunks kept
in a resume folder outside DVC's outputs: an interrupted run continues with the next chunk. The
folder is keyed on the model, the settings and the sources; a stale one is discarded.

Word-level KD reads the teacher's distributions instead; ``TeacherTopK`` computes its k most likely
tokens at every target position of the training pairs once, before the student's first step.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

CHUNK_SENTENCES = 2000
SPLIT = "train"


def _identity_matches(resume: Path, identity: dict) -> bool:
    marker = resume / "identity.json"
    return marker.exists() and json.loads(marker.read_text()) == identity


def decode_sources(model, src_ids: list[list[int]], opts, device, resume: Path, identity: dict) -> list[list[int]]:
    """The model's output ids (BOS … EOS) for every source, chunk by chunk, resuming from ``resume``."""
    import shutil

    from tcompress.decode import translate_ids
    from tcompress.model import BOS, EOS

    if resume.exists() and not _identity_matches(resume, identity):
        shutil.rmtree(resume)   # written for another model, setting or corpus
    resume.mkdir(parents=True, exist_ok=True)
    (resume / "identity.json").write_text(json.dumps(identity, sort_keys=True))
    out: list[list[int]] = []
    for start in range(0, len(src_ids), CHUNK_SENTENCES):
        part = resume / f"{start:09d}.json"
        if part.exists():
            hyps = json.loads(part.read_text())
        else:
            hyps = translate_ids(model, src_ids[start:start + CHUNK_SENTENCES], opts, device, progress=True,
                                 desc=f"teacher {start:,}-{min(start + CHUNK_SENTENCES, len(src_ids)):,} of {len(src_ids):,}")
            tmp = part.with_suffix(".tmp")
            tmp.write_text(json.dumps(hyps))
            tmp.replace(part)            # a chunk is on disk whole or not at all
        out += hyps
    return [[BOS, *h, EOS] for h in out]


def write_translations(out: Path, src_ids: list[list[int]], tgt_ids: list[list[int]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"src_ids": src_ids, "tgt_ids": tgt_ids}), out / f"{SPLIT}.ids.parquet")


def run(config: dict, model, baseline: Path, tokenized: Path, resume: Path, out: Path, device) -> dict:
    """Decode the training sources with ``model``, the baseline read from ``baseline``; returns the
    facts the stage records."""
    from tcompress.closure import file_digest
    from tcompress.data.corpora import read_ids
    from tcompress.decode import DecodeOptions
    from tcompress.training import ids_digest

    src_ids, _ = read_ids(tokenized, SPLIT)
    settings = {k: config[k] for k in ("beam_size", "length_penalty", "batch_sentences", "max_len_a", "max_len_b")}
    identity = {"baseline": file_digest(baseline), "sources": ids_digest(src_ids), "settings": settings}
    start = time.perf_counter()
    tgt_ids = decode_sources(model, src_ids, DecodeOptions(**settings), device, resume, identity)
    seconds = time.perf_counter() - start
    write_translations(out, src_ids, tgt_ids)
    return {"enabled": True, "sentences": len(src_ids), **settings, "seconds_this_run": round(seconds, 1),
            "mean_target_tokens": round(sum(len(t) - 2 for t in tgt_ids) / max(len(tgt_ids), 1), 2)}


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
