"""Tests for tcompress.data.corpora: Multi30k, the files corpus, cleaning, Parquet splits."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tcompress.data import corpora
from tcompress.data.corpora import (
    MULTI30K_SHA256,
    CleaningStats,
    CorpusError,
    clean_train,
    normalize_whitespace,
    read_multi30k,
    read_parallel_files,
    read_split,
    write_split,
)

MIRROR = Path(__file__).resolve().parents[2] / "shared/data/multi30k"

FIRST_EN = "Two young, White males are outside near many bushes."
FIRST_DE = "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche."
COUNTS = {"train": 29_000, "valid": 1_014, "test": 1_000}


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not MIRROR.is_dir():
        pytest.skip(f"local Multi30k mirror not found at {MIRROR} (expected next to the checkout)")
    return MIRROR


@pytest.fixture
def mirror_copy(mirror: Path, tmp_path: Path) -> Path:
    """A writable copy of the six Multi30k files."""
    dest = tmp_path / "copy"
    dest.mkdir()
    for name in MULTI30K_SHA256:
        shutil.copyfile(mirror / name, dest / name)  # copyfile: the mirror is read-only
    return dest


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected download: {args[0] if args else kwargs}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def _rewrite_gz(path: Path, edit) -> None:
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    path.write_bytes(gzip.compress("\n".join(edit(lines)).encode("utf-8")))


def _assert_counts(splits) -> None:
    assert set(splits) == set(COUNTS)
    for split, n in COUNTS.items():
        src, tgt = splits[split]
        assert (len(src), len(tgt)) == (n, n), split


def test_embedded_checksums_match_mirror_sums(mirror):
    listed = dict(
        reversed(line.split()) for line in (mirror / "SHA256SUMS").read_text().splitlines() if line
    )
    assert MULTI30K_SHA256 == listed


def test_read_multi30k_local(mirror, tmp_path, no_network):
    splits = read_multi30k(str(mirror), str(tmp_path / "dl"))
    _assert_counts(splits)
    src, tgt = splits["train"]
    assert src[0] == FIRST_EN
    assert tgt[0] == FIRST_DE
    assert all("\n" not in s and "\r" not in s for s in src + tgt)
    assert not (tmp_path / "dl").exists()  # local reads never touch the download dir


def test_read_multi30k_reversed_direction(mirror, tmp_path, no_network):
    splits = read_multi30k(str(mirror), str(tmp_path), src_lang="de", tgt_lang="en")
    assert splits["train"][0][0] == FIRST_DE
    assert splits["train"][1][0] == FIRST_EN


def test_read_multi30k_unknown_language(mirror, tmp_path):
    with pytest.raises(CorpusError, match="'fr'"):
        read_multi30k(str(mirror), str(tmp_path), tgt_lang="fr")


def test_checksum_mismatch_names_file(mirror_copy, tmp_path, no_network):
    target = mirror_copy / "val.de.gz"
    _rewrite_gz(target, lambda lines: ["Verändert."] + lines[1:])
    actual = hashlib.sha256(target.read_bytes()).hexdigest()

    with pytest.raises(CorpusError) as info:
        read_multi30k(str(mirror_copy), str(tmp_path / "dl"))
    msg = str(info.value)
    assert "val.de.gz" in msg
    assert MULTI30K_SHA256["val.de.gz"] in msg
    assert actual in msg


def test_missing_local_file_names_file_and_dir(mirror_copy, tmp_path, no_network):
    (mirror_copy / "test_2016_flickr.en.gz").unlink()
    with pytest.raises(CorpusError) as info:
        read_multi30k(str(mirror_copy), str(tmp_path / "dl"))
    assert "test_2016_flickr.en.gz" in str(info.value)
    assert str(mirror_copy) in str(info.value)


def test_line_count_mismatch(mirror_copy, tmp_path, monkeypatch):
    target = mirror_copy / "val.en.gz"
    _rewrite_gz(target, lambda lines: lines[1:])
    new_sum = hashlib.sha256(target.read_bytes()).hexdigest()
    monkeypatch.setitem(MULTI30K_SHA256, "val.en.gz", new_sum)  # so the count check is reached

    with pytest.raises(CorpusError, match=r"1013 lines.*1014"):
        read_multi30k(str(mirror_copy), str(tmp_path / "dl"))


def test_download_then_reuse(mirror_copy, tmp_path, monkeypatch):
    download_dir = tmp_path / "cache" / "multi30k"
    splits = read_multi30k(None, str(download_dir), base_url=mirror_copy.as_uri())
    _assert_counts(splits)
    assert splits["train"][0][0] == FIRST_EN
    assert sorted(p.name for p in download_dir.iterdir()) == sorted(MULTI30K_SHA256)
    mtimes = {p.name: p.stat().st_mtime_ns for p in download_dir.iterdir()}

    def refuse(*args, **kwargs):
        raise AssertionError("verified files must be reused, not downloaded again")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    again = read_multi30k(None, str(download_dir), base_url=mirror_copy.as_uri())
    assert again == splits
    assert {p.name: p.stat().st_mtime_ns for p in download_dir.iterdir()} == mtimes


def test_corrupt_cached_file_is_downloaded_again(mirror_copy, tmp_path):
    download_dir = tmp_path / "dl"
    download_dir.mkdir()
    (download_dir / "train.de.gz").write_bytes(b"truncated")
    splits = read_multi30k(None, str(download_dir), base_url=mirror_copy.as_uri())
    assert splits["train"][1][0] == FIRST_DE
    assert (download_dir / "train.de.gz").read_bytes() == (mirror_copy / "train.de.gz").read_bytes()


def test_corrupt_download_is_rejected_and_not_kept(mirror_copy, tmp_path):
    _rewrite_gz(mirror_copy / "train.en.gz", lambda lines: lines[::-1])
    download_dir = tmp_path / "dl"
    with pytest.raises(CorpusError) as info:
        read_multi30k(None, str(download_dir), base_url=mirror_copy.as_uri())
    assert "train.en.gz" in str(info.value)
    assert MULTI30K_SHA256["train.en.gz"] in str(info.value)
    # No bad file under the final name and no leftover temporary file.
    assert "train.en.gz" not in os.listdir(download_dir)
    assert not [n for n in os.listdir(download_dir) if n.startswith(".")]


def test_download_failure_names_url(tmp_path):
    server = tmp_path / "empty_server"
    server.mkdir()
    with pytest.raises(CorpusError) as info:
        read_multi30k(None, str(tmp_path / "dl"), base_url=server.as_uri())
    assert server.as_uri() in str(info.value)
    assert os.listdir(tmp_path / "dl") == []


# ---------------------------------------------------------------------------- files corpus


def _write(path: Path, text: str, gz: bool = False) -> str:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


def test_read_parallel_files_plain_and_gz(tmp_path):
    paths = {
        # CRLF endings are removed, but other whitespace and odd separators stay raw.
        "train": (
            _write(tmp_path / "tr.src", "a  b \r\n\u2028x\r\n"),
            _write(tmp_path / "tr.tgt", "A\nB"),  # no final newline
        ),
        "valid": (
            _write(tmp_path / "va.src.gz", "héllo\n\nend\n", gz=True),
            _write(tmp_path / "va.tgt.gz", "Hallo\n\nEnde\n", gz=True),
        ),
        "test": (_write(tmp_path / "te.src", ""), _write(tmp_path / "te.tgt", "")),
    }
    splits = read_parallel_files(paths)
    assert splits["train"] == (["a  b ", "\u2028x"], ["A", "B"])
    assert splits["valid"] == (["héllo", "", "end"], ["Hallo", "", "Ende"])
    assert splits["test"] == ([], [])


def test_read_parallel_files_mismatch(tmp_path):
    ok = (_write(tmp_path / "s", "a\n"), _write(tmp_path / "t", "b\n"))
    bad_tgt = _write(tmp_path / "bad.tgt.gz", "b\nc\n", gz=True)
    with pytest.raises(CorpusError) as info:
        read_parallel_files({"train": ok, "valid": (ok[0], bad_tgt), "test": ok})
    assert "bad.tgt.gz" in str(info.value) and "valid" in str(info.value)


def test_read_parallel_files_missing_file(tmp_path):
    ok = (_write(tmp_path / "s", "a\n"), _write(tmp_path / "t", "b\n"))
    with pytest.raises(CorpusError, match="nope.txt"):
        read_parallel_files({"train": ok, "valid": ok, "test": (ok[0], str(tmp_path / "nope.txt"))})


def test_read_parallel_files_missing_split(tmp_path):
    ok = (_write(tmp_path / "s", "a\n"), _write(tmp_path / "t", "b\n"))
    with pytest.raises(CorpusError, match="test"):
        read_parallel_files({"train": ok, "valid": ok})


def test_read_parallel_files_bad_utf8(tmp_path):
    bad = tmp_path / "bad.src"
    bad.write_bytes(b"fine\n\xff\xfe\n")
    ok = _write(tmp_path / "t", "a\nb\n")
    with pytest.raises(CorpusError, match="line 2"):
        read_parallel_files({split: (str(bad), ok) for split in ("train", "valid", "test")})


# ---------------------------------------------------------------------------- cleaning


def test_normalize_whitespace():
    assert normalize_whitespace("  a \t b\u00a0 c \n") == "a b c"
    assert normalize_whitespace(" \t ") == ""


def test_clean_train_counts():
    src = [
        " A  dog runs. ",  # kept, normalised
        "   ",  # empty source
        "Hello",  # empty target
        "one",  # ratio 5/1 > 3
        "w " * 6,  # 6 words > max_words 5 (ratio 1)
        "one two three",  # ratio 3/1 == 3 -> kept
        "a b c d e f g h",  # both too long AND ratio 8/2: counted once, as ratio
    ]
    tgt = [
        "Ein\tHund läuft.",
        "Leer",
        "",
        "eins zwei drei vier fünf",
        "w " * 6,
        "eins",
        "x y",
    ]
    kept_src, kept_tgt, stats = clean_train(src, tgt, max_len_ratio=3.0, max_words=5)
    assert kept_src == ["A dog runs.", "one two three"]
    assert kept_tgt == ["Ein Hund läuft.", "eins"]
    assert stats == CleaningStats(
        input=7, kept=2, dropped_empty=2, dropped_ratio=2, dropped_length=1
    )
    assert stats.to_dict() == {
        "input": 7,
        "kept": 2,
        "dropped_empty": 2,
        "dropped_ratio": 2,
        "dropped_length": 1,
    }


def test_clean_train_rejects_misaligned_input():
    with pytest.raises(ValueError):
        clean_train(["a"], [], max_len_ratio=2.0, max_words=10)


# ---------------------------------------------------------------------------- parquet


def test_write_read_split_round_trip(tmp_path):
    src = ["Grüße, 世界! 🚀", "", "tab\tand  spaces ", "emoji 👩‍👩‍👧"]
    tgt = ["Greetings, world!", "empty source", "x", "ZWJ sequence"]
    path = tmp_path / "nested" / "dir" / "train.parquet"
    write_split(path, src, tgt)

    assert read_split(path) == (src, tgt)
    table = pq.read_table(path)
    assert table.column_names == ["id", "source", "target"]
    assert str(table.schema.field("id").type) == "int64"
    assert table.column("id").to_pylist() == [0, 1, 2, 3]
    assert os.listdir(path.parent) == ["train.parquet"]  # no temp file left behind


def test_write_split_overwrites_and_handles_empty(tmp_path):
    path = tmp_path / "valid.parquet"
    write_split(path, ["a"], ["b"])
    write_split(path, [], [])
    assert read_split(path) == ([], [])


def test_write_split_rejects_misaligned(tmp_path):
    with pytest.raises(ValueError):
        write_split(tmp_path / "x.parquet", ["a", "b"], ["c"])
    assert not (tmp_path / "x.parquet").exists()


def test_read_split_missing_file(tmp_path):
    with pytest.raises(CorpusError, match="missing.parquet"):
        read_split(tmp_path / "missing.parquet")


def test_module_constants():
    assert corpora.MULTI30K_URL.startswith("https://raw.githubusercontent.com/multi30k/dataset/")
    assert set(corpora.MULTI30K_STEMS) == {"train", "valid", "test"}
