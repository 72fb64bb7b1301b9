"""Reading parallel corpora, cleaning the training split, and the Parquet split files.

The ``prepare`` stage turns a corpus into three Parquet files (train/valid/test) with the columns
``id`` (0-based line index within the split), ``source`` and ``target``. This module provides the
pieces for the ``multi30k`` and ``files`` corpora:

* :func:`read_multi30k` reads Multi30k task 1 (raw) from a local mirror or downloads it, and checks
  every file against :data:`MULTI30K_SHA256` either way;
* :func:`read_parallel_files` reads user-supplied line-aligned text files;
* :func:`clean_train` filters the training pairs and reports what it dropped;
* :func:`write_split` / :func:`read_split` store and load one split.

Lines are kept raw apart from their line terminator: the test references feed BLEU, which must
see exactly the published text. Cleaning and whitespace normalisation are for training only.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
import uuid
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tcompress.schema import UserError

logger = logging.getLogger(__name__)

MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"

# Pinned so that a mirror, a cache or an upstream change can never silently alter the data
# (and thus every downstream metric) without the pipeline noticing.
MULTI30K_SHA256: dict[str, str] = {
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
}

# Our split name -> Multi30k's file stem.
MULTI30K_STEMS: dict[str, str] = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
SPLITS: tuple[str, ...] = ("train", "valid", "test")

_DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 16

Corpus = dict[str, tuple[list[str], list[str]]]


class CorpusError(UserError):
    """Raised with a message a user can act on (which file, what was expected, what was found)."""


# --- Reading lines -------------------------------------------------------------------------------


def _split_lines(text: str) -> list[str]:
    # Not str.splitlines(): it also breaks on \x0b, \x1c, \u2028 and friends, which would shift
    # the source/target alignment if such a character ever occurs inside a sentence.
    parts = text.split("\n")
    tail = parts.pop()  # whatever follows the last "\n"; empty when the file ends with one
    lines = [p[:-1] if p.endswith("\r") else p for p in parts]
    if tail:
        lines.append(tail)
    return lines


def _decode(data: bytes, path: Path, compressed: bool) -> list[str]:
    if compressed:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorpusError(f"{path}: not a valid gzip file ({exc})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        raise CorpusError(f"{path}: not valid UTF-8 (line {line_no}: {exc.reason})") from exc
    return _split_lines(text)


def read_text_lines(path: str | Path) -> list[str]:
    """One entry per line of a UTF-8 text file, gzip-compressed when its name ends in ``.gz``; a
    missing file, a bad gzip stream or non-UTF-8 bytes (with the line number) raise CorpusError."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    return _decode(_read_bytes(path), path, path.suffix == ".gz")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise CorpusError(f"missing file {path.name} in directory {path.parent}") from exc
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc}") from exc


def _check_aligned(
    split: str, src: list[str], tgt: list[str], src_path: Path, tgt_path: Path
) -> None:
    if len(src) != len(tgt):
        raise CorpusError(
            f"split {split!r}: line counts differ, {src_path} has {len(src)} lines but "
            f"{tgt_path} has {len(tgt)}; source and target files must be line-aligned"
        )


# --- Multi30k ------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mismatch(name: str, where: str, expected: str, actual: str) -> CorpusError:
    return CorpusError(
        f"checksum mismatch for {name} ({where}): expected sha256 {expected}, got {actual}; "
        f"the file is corrupt or not the published Multi30k release, replace it"
    )


def _download(url: str, dest: Path, expected: str) -> None:
    # Stream into a uniquely named sibling and rename only once the digest matches: a crash, a
    # concurrent run or a truncated response can then never leave a bad file under the final name.
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex}.part")
    digest = hashlib.sha256()
    logger.info("downloading %s", url)
    try:
        with (
            urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as resp,
            open(tmp, "xb") as out,
        ):
            while chunk := resp.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual != expected:
            raise _mismatch(dest.name, f"downloaded from {url}", expected, actual)
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise CorpusError(
            f"cannot download {url} to {dest.parent}: {exc}; without internet access, point "
            f"local_dir at a directory holding the six Multi30k files"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _fetch_verified(name: str, local_dir: Path | None, download_dir: Path, base_url: str) -> bytes:
    expected = MULTI30K_SHA256[name]
    if local_dir is not None:
        path = local_dir / name
        data = _read_bytes(path)
        where = f"in {local_dir}"
    else:
        path = download_dir / name
        data = path.read_bytes() if path.is_file() else None
        if data is None or _sha256(data) != expected:
            if data is not None:
                logger.warning("cached %s does not match its checksum; downloading it again", path)
            _download(f"{base_url.rstrip('/')}/{name}", path, expected)
            data = _read_bytes(path)
        where = f"in {download_dir}"
    # Checked again on the bytes we actually decode, whatever their origin, so no path skips it.
    actual = _sha256(data)
    if actual != expected:
        raise _mismatch(name, where, expected, actual)
    return data


def read_multi30k(
    local_dir: str | None,
    download_dir: str,
    base_url: str = MULTI30K_URL,
    src_lang: str = "en",
    tgt_lang: str = "de",
) -> Corpus:
    """Read Multi30k task 1 (raw): splits 'train', 'valid', 'test' -> (source lines, target lines).

    With ``local_dir`` the six files are read from there (a missing one raises :class:`CorpusError`
    and nothing is downloaded). Without it, files missing from ``download_dir`` (or failing their
    checksum there) are downloaded from ``base_url``; verified ones are reused. Every file is
    checked against :data:`MULTI30K_SHA256` before use, and each split's source and target must
    have the same number of lines.
    """
    langs = sorted({n.split(".")[-2] for n in MULTI30K_SHA256})
    for lang in (src_lang, tgt_lang):
        if lang not in langs:
            raise CorpusError(f"Multi30k language {lang!r} is not supported; choose from {langs}")
    if src_lang == tgt_lang:
        raise CorpusError(f"source and target language are both {src_lang!r}")

    local = Path(local_dir) if local_dir is not None else None
    if local is not None and not local.is_dir():
        raise CorpusError(f"Multi30k directory {local} does not exist")
    cache = Path(download_dir)
    if local is None:
        cache.mkdir(parents=True, exist_ok=True)

    base = local if local is not None else cache
    splits: Corpus = {}
    for split, stem in MULTI30K_STEMS.items():
        src_name, tgt_name = f"{stem}.{src_lang}.gz", f"{stem}.{tgt_lang}.gz"
        src_data = _fetch_verified(src_name, local, cache, base_url)
        tgt_data = _fetch_verified(tgt_name, local, cache, base_url)
        src = _decode(src_data, base / src_name, compressed=True)
        tgt = _decode(tgt_data, base / tgt_name, compressed=True)
        _check_aligned(split, src, tgt, base / src_name, base / tgt_name)
        splits[split] = (src, tgt)
    return splits


# --- User-supplied files -------------------------------------------------------------------------


def read_parallel_files(paths: dict[str, tuple[str, str]]) -> Corpus:
    """Read the ``files`` corpus: ``{'train': (src, tgt), 'valid': ..., 'test': ...}``.

    Files are UTF-8 text with one sentence a line, gzip-compressed when the name ends in ``.gz``.
    A missing split or file, or source/target files of different lengths, raise
    :class:`CorpusError`.
    """
    missing = [s for s in SPLITS if s not in paths]
    unknown = [s for s in paths if s not in SPLITS]
    if missing or unknown:
        raise CorpusError(
            f"files corpus needs exactly the splits {list(SPLITS)}; "
            f"missing {missing}, unknown {unknown}"
        )
    splits: Corpus = {}
    for split in SPLITS:
        pair = paths[split]
        if len(pair) != 2:
            raise CorpusError(f"split {split!r}: expected (src_path, tgt_path), got {pair!r}")
        src_path, tgt_path = Path(pair[0]), Path(pair[1])
        sides = [_decode(_read_bytes(p), p, p.suffix == ".gz") for p in (src_path, tgt_path)]
        _check_aligned(split, sides[0], sides[1], src_path, tgt_path)
        splits[split] = (sides[0], sides[1])
    return splits


# --- Cleaning (train split only) -----------------------------------------------------------------


@dataclass
class CleaningStats:
    """How many training pairs came in, were kept, and were dropped for each reason.

    A pair failing several checks is counted once, under the first in the order empty, ratio,
    length, so that ``input == kept + dropped_empty + dropped_ratio + dropped_length``.
    """

    input: int = 0
    kept: int = 0
    dropped_empty: int = 0
    dropped_ratio: int = 0
    dropped_length: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def normalize_whitespace(line: str) -> str:
    """Strip and collapse runs of whitespace to one space.

    The tokenizer's decode joins pieces with single spaces, so training text has to look the same
    for encode/decode to round-trip.
    """
    return " ".join(line.split())


def clean_train(
    src: list[str], tgt: list[str], max_len_ratio: float, max_words: int
) -> tuple[list[str], list[str], CleaningStats]:
    """Normalise whitespace and drop unusable training pairs.

    A pair is dropped when either side is empty, when the longer side has more than
    ``max_len_ratio`` times the words of the shorter, or when either side has more than
    ``max_words`` words. Returns the kept sources, kept targets and the counts.
    """
    if len(src) != len(tgt):
        raise ValueError(f"source has {len(src)} lines but target has {len(tgt)}")
    if max_len_ratio < 1:
        raise ValueError(f"max_len_ratio must be >= 1, got {max_len_ratio}")
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")

    stats = CleaningStats(input=len(src))
    kept_src: list[str] = []
    kept_tgt: list[str] = []
    for s, t in zip(src, tgt):
        s, t = normalize_whitespace(s), normalize_whitespace(t)
        ns, nt = len(s.split()), len(t.split())
        if ns == 0 or nt == 0:
            stats.dropped_empty += 1
        elif max(ns, nt) / min(ns, nt) > max_len_ratio:
            stats.dropped_ratio += 1
        elif ns > max_words or nt > max_words:
            stats.dropped_length += 1
        else:
            kept_src.append(s)
            kept_tgt.append(t)
    stats.kept = len(kept_src)
    return kept_src, kept_tgt, stats


# --- Parquet splits ------------------------------------------------------------------------------

_SCHEMA = pa.schema([("id", pa.int64()), ("source", pa.string()), ("target", pa.string())])


def write_split(path: str | Path, source: list[str], target: list[str]) -> None:
    """Write one split as Parquet (``id`` int64, ``source``, ``target``), atomically."""
    if len(source) != len(target):
        raise ValueError(f"source has {len(source)} lines but target has {len(target)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_arrays(
        [
            pa.array(range(len(source)), type=pa.int64()),
            pa.array(source, type=pa.string()),
            pa.array(target, type=pa.string()),
        ],
        schema=_SCHEMA,
    )
    # DVC hashes outputs after the stage ends; an interrupted run must not leave a truncated
    # file that looks like a finished one.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_split(path: str | Path) -> tuple[list[str], list[str]]:
    """Read a split written by :func:`write_split`, returning (sources, targets) in id order."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"split file {path} does not exist; run the prepare stage first")
    table = pq.read_table(path)
    absent = [c for c in _SCHEMA.names if c not in table.column_names]
    if absent:
        raise CorpusError(f"{path}: missing column(s) {absent}, found {table.column_names}")
    ids = table.column("id").to_pylist()
    if ids != list(range(len(ids))):
        raise CorpusError(f"{path}: column 'id' is not 0..{len(ids) - 1} in order")
    return table.column("source").to_pylist(), table.column("target").to_pylist()


def read_ids(tokenized: str | Path, split: str) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of a split written by the tokenize stage: (source ids, target ids)."""
    table = pq.read_table(Path(tokenized) / f"{split}.ids.parquet", columns=["src_ids", "tgt_ids"])
    return table.column("src_ids").to_pylist(), table.column("tgt_ids").to_pylist()
