import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tcompress.config import TokenizerConfig
from tcompress.data.corpora import normalize_whitespace, read_multi30k
from tcompress.data.synthetic import generate_splits
from tcompress.evaluation import score
from tcompress.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def corpus():
    return generate_splits(2000, 50, 50, seed=5)


@pytest.mark.parametrize("joint", [True, False])
def test_decode_of_encode_is_exact(tmp_path, corpus, joint):
    src = [p[0] for p in corpus["train"]]
    tgt = [p[1] for p in corpus["train"]]
    tok = build_tokenizer(src, tgt, TokenizerConfig(vocab_size=500, joint=joint), tmp_path)
    unseen = ["Ein Zürcher Œuvre — 42 ½ Äpfel, ÿ!", "日本語 text"]  # characters absent from training
    for line in tgt + unseen:
        ids = tok.encode_tgt([line])
        assert tok.decode_tgt(ids) == [line]
    assert (tok.src_vocab_size == tok.tgt_vocab_size) or not joint


def test_vocabulary_is_deterministic(tmp_path, corpus):
    src = [p[0] for p in corpus["train"]]
    tgt = [p[1] for p in corpus["train"]]
    build_tokenizer(src, tgt, TokenizerConfig(vocab_size=600), tmp_path / "a")
    build_tokenizer(src, tgt, TokenizerConfig(vocab_size=600), tmp_path / "b")
    assert (tmp_path / "a/spm.joint.model").read_bytes() == (tmp_path / "b/spm.joint.model").read_bytes()


def test_multi30k_roundtrip(tmp_path, multi30k_dir):
    splits = read_multi30k(str(multi30k_dir), str(tmp_path))
    src, tgt = (list(map(normalize_whitespace, side)) for side in splits["train"])
    tok = build_tokenizer(src[:5000], tgt[:5000], TokenizerConfig(vocab_size=2000), tmp_path / "tok")
    test_refs = [normalize_whitespace(t) for t in splits["test"][1]]
    assert tok.decode_tgt(tok.encode_tgt(test_refs)) == test_refs


def test_bleu_equals_sacrebleu_cli(tmp_path, corpus):
    refs = [p[1] for p in corpus["test"]]
    # A hypothesis set with real errors: drop words, swap some sentences.
    hyps = [" ".join(r.split()[:-2]) if i % 3 else refs[(i + 1) % len(refs)] for i, r in enumerate(refs)]
    (tmp_path / "hyp.txt").write_text("\n".join(hyps) + "\n")
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n")
    exe = shutil.which("sacrebleu", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert exe, "sacrebleu command line not on PATH"
    out = subprocess.run([exe, str(tmp_path / "ref.txt"), "-i", str(tmp_path / "hyp.txt"), "-m", "bleu", "chrf",
                          "-b", "-w", "4", "-f", "text"], capture_output=True, text=True, check=True).stdout.split()
    ours = score(hyps, refs)
    assert 5 < ours["bleu"] < 95
    assert ours["bleu"] == pytest.approx(float(out[0]), abs=1e-4)
    assert ours["chrf"] == pytest.approx(float(out[1]), abs=1e-4)
    assert ours["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
