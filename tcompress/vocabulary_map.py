"""A vocabulary shortlist: which target pieces a decoding step scores, given the batch's sources.

At batch 1 the generator (d_model × vocabulary) is a large share of each decoding step. CTranslate2
can score only a subset of the vocabulary (its vocabulary map, ``vmap.txt`` in the model folder,
used when ``translate_batch(use_vmap=True)``): the union of the candidates of the batch's source
pieces and a list that is always included. This module builds that map from the training pairs
(``train.ids.parquet`` of the tokenized folder), counting each piece once per sentence:

- always included: the ``frequent`` target pieces found in the most target sentences;
- per source piece s: the ``per_source`` target pieces t with the highest Dice coefficient
  2·c(s, t) / (c(s) + c(t)), c counting the sentence pairs that hold the pieces (ties by id).

The special pieces are not listed (CTranslate2 always scores unk, bos and eos). Approximate by
construction: a piece outside a batch's candidates is never output, so an export with a map is not
the source model's function (its manifest says so, ``export_ct2.FINDINGS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from tcompress.model import BOS, EOS, PAD, UNK

FILE = "vmap.txt"                  # CTranslate2 reads this name from the model folder
SPLIT = "train"
PAIRS_FILE = f"{SPLIT}.ids.parquet"   # the tokenize stage's training pairs (corpora.read_ids), in its folder
SPECIAL = np.array(sorted({PAD, UNK, BOS, EOS}))


@dataclass(frozen=True)
class Shortlist:
    frequent: tuple[int, ...]                    # target ids always scored, most frequent first
    per_source: dict[int, tuple[int, ...]]       # source id -> its candidate target ids, best first

    def candidates(self, source_ids: Iterable[int]) -> set[int]:
        """The target ids a batch holding these source ids may output (the specials aside)."""
        out = set(self.frequent)
        for s in source_ids:
            out.update(self.per_source.get(int(s), ()))
        return out


def build(src_ids: Sequence[np.ndarray], tgt_ids: Sequence[np.ndarray], src_vocab: int, tgt_vocab: int,
          per_source: int, frequent: int) -> Shortlist:
    """The shortlist of these training pairs (module docstring)."""
    c_src, c_tgt = np.zeros(src_vocab, np.int64), np.zeros(tgt_vocab, np.int64)
    keys = []
    for s, t in zip(src_ids, tgt_ids):
        s = np.setdiff1d(np.asarray(s, np.int64), SPECIAL)   # unique, sorted
        t = np.setdiff1d(np.asarray(t, np.int64), SPECIAL)
        c_src[s] += 1
        c_tgt[t] += 1
        keys.append(np.add.outer(s * tgt_vocab, t).ravel())
    seen = c_tgt > 0
    always = tuple(int(i) for i in np.argsort(-c_tgt, kind="stable")[:frequent] if seen[i])
    if not keys or per_source == 0:
        return Shortlist(always, {})
    pairs, together = np.unique(np.concatenate(keys), return_counts=True)
    src, tgt = pairs // tgt_vocab, pairs % tgt_vocab
    dice = 2 * together / (c_src[src] + c_tgt[tgt])
    order = np.lexsort((tgt, -dice, src))           # by source, then best first, ties by id
    src, tgt = src[order], tgt[order]
    lists = {}
    for s in np.unique(src):
        lo, hi = np.searchsorted(src, s), np.searchsorted(src, s, side="right")
        lists[int(s)] = tuple(int(t) for t in tgt[lo: min(hi, lo + per_source)])
    return Shortlist(always, lists)


def from_tokenized(tokenized: str | Path, src_vocab: int, tgt_vocab: int, per_source: int,
                   frequent: int) -> Shortlist:
    """The shortlist of a tokenized folder's training pairs."""
    from tcompress.data.corpora import read_ids

    return build(*read_ids(tokenized, SPLIT), src_vocab, tgt_vocab, per_source, frequent)


def write(shortlist: Shortlist, path: str | Path, src_piece: Callable[[int], str],
          tgt_piece: Callable[[int], str]) -> None:
    """CTranslate2's format: ``<source piece>\\t<candidate> <candidate> ...`` per line, and the
    always-included pieces on the line whose source is empty. A piece holding whitespace cannot be
    written in it: as a source it gets no line (its batch's other pieces and the frequent ones still
    apply), as a candidate it is left out."""
    def plain(piece: str) -> bool:
        return not any(c.isspace() for c in piece)

    def candidates(ids) -> str:
        return " ".join(piece for piece in map(tgt_piece, ids) if plain(piece))

    lines = ["\t" + candidates(shortlist.frequent)]
    lines += [src_piece(s) + "\t" + candidates(targets) for s, targets in sorted(shortlist.per_source.items())
              if plain(src_piece(s))]
    Path(path).write_text("\n".join(lines) + "\n")
