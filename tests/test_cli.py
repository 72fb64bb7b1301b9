"""`tcompress` commands a user types outside the pipeline: one clear line when something is wrong."""

import subprocess
import sys

from conftest import REPO


def tcompress(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcompress.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_translate_with_a_file_that_is_not_a_checkpoint_says_so_in_one_line(tmp_path):
    (tmp_path / "src.txt").write_text("a\n")
    proc = tcompress("translate", "--checkpoint", "params.yaml", "--tokenizer", str(tmp_path),
                     "--src", str(tmp_path / "src.txt"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["Error: params.yaml: not a tcompress checkpoint (not a PyTorch file)"]


def test_catalog_rewrites_the_stage_list_from_params(tmp_path):
    out = tmp_path / "cells.yaml"
    proc = tcompress("catalog", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == (REPO / "stages/cells.yaml").read_text()  # the committed list is current
