import subprocess
import sys

import pytest
import yaml

from tcompress.config import ConfigError, params_from_dict
from conftest import REPO, tiny_params


def test_repository_params_load():
    params = params_from_dict(yaml.safe_load((REPO / "params.yaml").read_text()))
    assert params.data == "synthetic"


@pytest.mark.parametrize("patch, message", [
    ({"model": {"d_modle": 8}}, "model.d_modle: unknown key; allowed keys here: d_model"),
    ({"train": {"epochs": "ten"}}, "train.epochs: expected int >= 1, got 'ten'"),
    ({"train": {"lr": 0}}, "train.lr: 0.0 is out of range; expected float > 0.0"),
    ({"train": {"precision": "fp8"}}, "train.precision: 'fp8' is not allowed; expected one of fp32, bf16"),
    ({"data": "wmt"}, "data: 'wmt' is not allowed; expected one of synthetic, multi30k, files"),
    ({"model": {"dropout": 1.5}}, "model.dropout: 1.5 is out of range; expected float >= 0.0 <= 0.9"),
    ({"model": {"n_heads": 3}}, "model.n_heads: 3 must divide model.d_model"),
    ({"train": {"epochs": {"synthetic": 2, "wmt": 3}}}, "train.epochs.wmt: unknown corpus"),
    ({"data": "files"}, "files.train_source: required when data is 'files'"),
    ({"tokenizer": {"joint": False}}, "model.share_embeddings: true needs tokenizer.joint: true"),
])
def test_bad_values_name_the_key(patch, message):
    with pytest.raises(ConfigError) as err:
        params_from_dict(tiny_params(**patch))
    assert message in str(err.value)


def test_per_corpus_values_follow_data():
    raw = tiny_params(train={"epochs": {"synthetic": 2, "multi30k": 7}})
    assert params_from_dict(raw).train.epochs == 2
    raw["data"] = "multi30k"
    assert params_from_dict(raw).train.epochs == 7
    raw["train"]["epochs"] = {"synthetic": 2}
    with pytest.raises(ConfigError, match="train.epochs.multi30k: missing"):
        params_from_dict(raw)


def test_bool_is_not_an_int():
    with pytest.raises(ConfigError, match="model.n_layers: expected int"):
        params_from_dict(tiny_params(model={"n_layers": True}))


@pytest.mark.parametrize("stage", ["prepare.py", "tokenize_corpus.py", "train.py", "evaluate.py"])
def test_stage_stops_with_one_line_and_writes_nothing(tmp_path, stage):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(train={"batch_tokens": -5})))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "f").write_text("x")
    args = {"prepare.py": ["--out", "out", "--stats", "out/stats.json"],
            "tokenize_corpus.py": ["--prepared", "in", "--out", "out"],
            "train.py": ["--tokenized", "in", "--prepared", "in", "--out", "out", "--resume", "out/r.pt",
                         "--metrics", "out/m.json", "--curve", "out/c.json"],
            "evaluate.py": ["--checkpoint", "in/f", "--tokenized", "in", "--test", "in/f",
                            "--metrics", "out/m.json", "--hypotheses", "out"]}[stage]
    proc = subprocess.run([sys.executable, str(REPO / "stages" / stage), *args], cwd=tmp_path,
                          capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == ["error: train.batch_tokens: -5 is out of range; expected int >= 16"]
    assert not (tmp_path / "out").exists()
