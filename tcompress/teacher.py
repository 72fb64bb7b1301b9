"""The teacher stage: the baseline's translations of the training sources.

Sequence-level KD (Kim & Rush 2016, ``tcompress.methods.distill``) trains a student on the teacher's
beam-search outputs instead of the references, so that it learns the teacher's mode rather than the
data's spread. The ``teacher`` stage decodes every training source once, with the settings of
params.yaml's ``teacher`` section (``run``), and writes ``train.ids.parquet`` in the token-id layout
of the tokenize stage (source ids as they are, target ids BOS … EOS): every cell that asks for it
reads the same file, and DVC caches it like any output. The stage runs only when a selected cell's
method asks for the translations; otherwise it writes an "off" marker without importing torch. It
reads the float baseline alone (``tcompress.baseline``), so no method's code is among its
dependencies: editing a method does not decode the training split again.

Decoding the Multi30k training split takes tens of minutes on a CPU, so it proceeds in chunks kept
in a resume folder outside DVC's outputs: an interrupted run continues with the next chunk. The
folder is keyed on the model, the settings and the sources; a stale one is discarded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

CHUNK_SENTENCES = 2000
SPLIT = "train"


def decode_sources(model, src_ids: list[list[int]], opts, device, resume: Path, identity: dict) -> list[list[int]]:
    """The model's output ids (BOS … EOS) for every source, chunk by chunk, resuming from ``resume``."""
    from tcompress.decode import translate_ids
    from tcompress.model import BOS, EOS
    from tcompress.resume_folder import open_folder, write_part

    open_folder(resume, identity)   # emptied when written for another model, setting or corpus
    out: list[list[int]] = []
    for start in range(0, len(src_ids), CHUNK_SENTENCES):
        part = resume / f"{start:09d}.json"
        if part.exists():
            hyps = json.loads(part.read_text())
        else:
            hyps = translate_ids(model, src_ids[start:start + CHUNK_SENTENCES], opts, device, progress=True,
                                 desc=f"teacher {start:,}-{min(start + CHUNK_SENTENCES, len(src_ids)):,} of {len(src_ids):,}")
            write_part(part, hyps)   # a chunk is on disk whole or not at all
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
