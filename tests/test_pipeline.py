"""End to end: the real `dvc repro` on the tiny configuration in a temporary git repository."""

import json
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, dvc

pytestmark = pytest.mark.slow


def test_repro_produces_every_output(tiny_pipeline):
    metrics = json.loads((tiny_pipeline / "metrics/baseline.json").read_text())
    for key in ("bleu", "chrf", "signature", "parameters", "checkpoint_bytes", "greedy", "beam", "group_parameters"):
        assert key in metrics, key
    assert metrics["sentences"] == 20
    assert metrics["greedy"]["sentences_per_second"] > 0
    assert metrics["signature"].startswith("nrefs:1|case:mixed")
    assert metrics["group_parameters"]["full"] == metrics["parameters"]
    hyps = (tiny_pipeline / "data/eval/baseline.beam.txt").read_text().split("\n")[:-1]
    assert len(hyps) == 20
    curve = json.loads((tiny_pipeline / "metrics/train_curve.json").read_text())
    assert [row["epoch"] for row in curve] == [1, 2]
    assert all({"train_loss", "val_loss", "val_bleu"} <= set(row) for row in curve)
    prepare = json.loads((tiny_pipeline / "metrics/prepare.json").read_text())
    assert prepare["train"]["input"] == 300


def test_second_repro_runs_nothing(tiny_pipeline):
    out = dvc(["repro"], tiny_pipeline).stdout
    assert "Running stage" not in out
    assert "up to date" in dvc(["status"], tiny_pipeline).stdout


def test_changed_decoding_param_reruns_only_evaluate(tiny_pipeline):
    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    params["evaluate"]["beam_size"] = 3
    (tiny_pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        out = dvc(["repro"], tiny_pipeline).stdout
        assert "Running stage 'evaluate'" in out
        # the cells decode with evaluate.cell_beam_size (greedy), so none of them reruns
        for stage in ("prepare", "tokenize", "train", "plan", "compress@", "evaluate-cell@"):
            assert f"Running stage '{stage}" not in out
    finally:
        params["evaluate"]["beam_size"] = 2
        (tiny_pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        dvc(["repro"], tiny_pipeline)  # back from the run-cache, nothing recomputed


def test_translate_command_scores_a_users_files(tiny_pipeline, tmp_path):
    from tcompress.data.corpora import read_split

    src, ref = read_split(tiny_pipeline / "data/prepared/test.parquet")
    (tmp_path / "src.txt").write_text("\n".join(src) + "\n")
    (tmp_path / "ref.txt").write_text("\n".join(ref) + "\n")
    proc = subprocess.run([sys.executable, "-m", "tcompress.cli", "translate", "--checkpoint", "data/model/model.pt",
                           "--tokenizer", "data/tokenized", "--src", str(tmp_path / "src.txt"),
                           "--ref", str(tmp_path / "ref.txt"), "--beam-size", "2", "--out", str(tmp_path / "hyp.txt")],
                          cwd=tiny_pipeline, capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stderr[proc.stderr.index("{"):])
    baseline = json.loads((tiny_pipeline / "metrics/baseline.json").read_text())
    assert result["bleu"] == pytest.approx(baseline["beam"]["bleu"])
    assert (tmp_path / "hyp.txt").read_text() == (tiny_pipeline / "data/eval/baseline.beam.txt").read_text()


def test_translate_reproduces_a_cells_number(tiny_pipeline, tmp_path):
    """The README's recipe: a cell's BLEU is greedy decoding of its own checkpoint."""
    from tcompress.data.corpora import read_split

    src, ref = read_split(tiny_pipeline / "data/prepared/test.parquet")
    (tmp_path / "src.txt").write_text("\n".join(src) + "\n")
    (tmp_path / "ref.txt").write_text("\n".join(ref) + "\n")
    proc = subprocess.run([sys.executable, "-m", "tcompress.cli", "translate", "--checkpoint",
                           "data/cells/ptq-sym-8-full/model.pt", "--src", str(tmp_path / "src.txt"),
                           "--ref", str(tmp_path / "ref.txt"), "--beam-size", "1", "--out", str(tmp_path / "hyp.txt")],
                          cwd=tiny_pipeline, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stderr[proc.stderr.index("{"):])
    cell = json.loads((tiny_pipeline / "metrics/cells/ptq-sym-8-full.json").read_text())
    assert result["decoding"] == "greedy" and result["bleu"] == cell["bleu"]
    assert (tmp_path / "hyp.txt").read_text() == (tiny_pipeline / "data/hyps/ptq-sym-8-full.txt").read_text()
