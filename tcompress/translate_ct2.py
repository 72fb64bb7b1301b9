"""Translating with a CTranslate2 export: our batching and length limits, CTranslate2's search.

An export folder (``tcompress export --format ctranslate2``) holds CTranslate2's model files, our
SentencePiece tokenizer (``tokenizer/``) and ``manifest.json``, which names the compute type the
weights were written for and what differs from the source model. Sentences are batched as
``tcompress.decode.translate_ids`` batches them (sorted by length, ``batch_sentences`` a batch) and
each output is cut to its own limit a·|source| + b, |source| counting the EOS the model appends;
a greedy prefix does not depend on a longer limit, so greedy output is ours token for token where
the logits' argmax is. Beam search is CTranslate2's own: its length penalty divides by
|hypothesis|^α where ours uses GNMT's ((5 + |hypothesis|) / 6)^α, and the batch's longest limit
applies to every hypothesis, so beam output can differ from ours.

CTranslate2 is the optional ``deploy`` extra; without it the functions here raise a ``UserError``
that says how to install it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcompress.decode import DecodeOptions
from tcompress.model import EOS
from tcompress.schema import UserError
from tcompress.tokenizer import Tokenizer

MANIFEST = "manifest.json"
TOKENIZER_DIR = "tokenizer"
EXPORT_KIND = "tcompress.ctranslate2/1"
INSTALL_HINT = 'CTranslate2 is not installed; install the deploy extra: pip install -e ".[deploy]"'


def require_ctranslate2():
    """The ``ctranslate2`` module, or a one-line ``UserError`` saying how to get it."""
    try:
        import ctranslate2
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return ctranslate2


@dataclass
class Export:
    """An export folder opened for translation: its manifest, its tokenizer and CTranslate2's translator."""

    directory: Path
    manifest: dict[str, Any]
    tokenizer: Tokenizer
    translator: Any

    @property
    def compute_type(self) -> str:
        return self.manifest["compute_type"]


def read_manifest(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise UserError(f"{directory}: not a CTranslate2 export (no {MANIFEST}); make one with "
                        "`tcompress export --format ctranslate2 MODEL OUT_DIR`")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_KIND:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise UserError(f"{path}: not a tcompress CTranslate2 manifest (format {found!r}; expected {EXPORT_KIND!r})")
    return manifest


def open_export(directory: str | Path, device: str = "cpu") -> Export:
    """The export in ``directory``, loaded on ``device`` ("cpu", "cuda" or "cuda:N") with the
    compute type its manifest names."""
    ctranslate2 = require_ctranslate2()
    directory = Path(directory)
    manifest = read_manifest(directory)
    try:
        tokenizer = Tokenizer.load(directory / TOKENIZER_DIR)
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise UserError(f"{directory / TOKENIZER_DIR}: the export's tokenizer cannot be read ({err})") from None
    kind, _, index = device.partition(":")
    try:
        translator = ctranslate2.Translator(str(directory), device=kind, device_index=int(index or 0),
                                            compute_type=manifest["compute_type"], inter_threads=1)
    except (RuntimeError, ValueError) as err:
        raise UserError(f"{directory}: CTranslate2 cannot load the model on {device} as "
                        f"{manifest['compute_type']} ({err})") from None
    return Export(directory, manifest, tokenizer, translator)


def limit(src_ids: list[int], opts: DecodeOptions) -> int:
    """The output limit ``tcompress.decode.length_limits`` gives a source of these ids (EOS included)."""
    return int(opts.max_len_a * len(src_ids) + opts.max_len_b)


def translate_ids(export: Export, src_ids: list[list[int]], opts: DecodeOptions) -> list[list[int]]:
    """Output ids (without BOS/EOS) for every source (ids ending in EOS, as ``encode_src`` gives
    them), in input order."""
    src_sp, tgt_sp = export.tokenizer.src, export.tokenizer.tgt
    target_id = {tgt_sp.id_to_piece(i): i for i in range(tgt_sp.get_piece_size())}
    order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))   # similar lengths share a batch
    out: list[list[int]] = [[] for _ in src_ids]
    for start in range(0, len(order), opts.batch_sentences):
        chunk = order[start: start + opts.batch_sentences]
        # The model's config adds the source EOS itself (add_source_eos), as encode_src does.
        pieces = [[src_sp.id_to_piece(t) for t in _without_eos(src_ids[i])] for i in chunk]
        results = export.translator.translate_batch(
            pieces, max_batch_size=opts.batch_sentences, beam_size=opts.beam_size,
            length_penalty=opts.length_penalty if opts.beam_size > 1 else 0.0,
            max_decoding_length=max(limit(src_ids[i], opts) for i in chunk),
            min_decoding_length=0, max_input_length=0)
        for i, result in zip(chunk, results):
            out[i] = [target_id[p] for p in result.hypotheses[0]][: limit(src_ids[i], opts)]
    return out


def _without_eos(ids: list[int]) -> list[int]:
    return ids[:-1] if ids and ids[-1] == EOS else ids


def translate(export: Export, sources: list[str], opts: DecodeOptions) -> tuple[list[str], float]:
    """Detokenized translations in input order and the sentences per second it took."""
    start = time.perf_counter()
    try:
        ids = translate_ids(export, export.tokenizer.encode_src(sources), opts)
    except (RuntimeError, ValueError) as err:   # e.g. a source longer than the model's position table
        raise UserError(f"CTranslate2 could not translate: {err}") from None
    hyps = export.tokenizer.decode_tgt(ids)
    return hyps, len(sources) / max(time.perf_counter() - start, 1e-9)
