import subprocess
import sys

import pytest
import yaml

from tcompress.params import ConfigError, params_from_dict
from tcompress.grid import cells_file_text, check_cells_file
from conftest import REPO, tiny_params


def test_repository_params_load():
    params = params_from_dict(yaml.safe_load((REPO / "params.yaml").read_text()))
    assert params.data == "synthetic"


@pytest.mark.parametrize("patch, message", [
    ({"model": {"d_modle": 8}}, "model.d_modle: unknown key; allowed keys here: d_model"),
    ({"train": {"epochs": "ten"}}, "train.epochs: expected int >= 1, got 'ten'"),
    ({"train": {"lr": 0}}, "train.lr: 0.0 is out of range; expected float > 0.0"),
    ({"train": {"precision": "fp8"}}, "train.precision: 'fp8' is not allowed; expected one of auto, fp32, bf16"),
    ({"data": "wmt"}, "data: 'wmt' is not allowed; expected one of synthetic, multi30k, files"),
    ({"model": {"dropout": 1.5}}, "model.dropout: 1.5 is out of range; expected float >= 0.0 <= 0.9"),
    ({"model": {"n_heads": 3}}, "model.n_heads: 3 must divide model.d_model"),
    ({"train": {"epochs": {"synthetic": 2, "wmt": 3}}}, "train.epochs.wmt: unknown corpus"),
    ({"data": "files"}, "files.train_source: required when data is 'files'"),
    ({"tokenizer": {"joint": False}}, "model.share_embeddings: true needs tokenizer.joint: true"),
    # the grid: every method, axis and catalog value is checked before any stage runs
    ({"methods": ["ptq", "lasso"]}, "methods: 'lasso' is not allowed; expected one of ptq, qat, agp, imp, "
     "fullyqt, fullyqt_ptq, nodeprune, kmeans_ptq, kmeans, binary, bsflex, qsgd, q8bert, quant_noise, lottery, distill"),
    ({"lasso": {"bits": 4}}, "lasso: unknown key; allowed keys: data, seed"),
    ({"kmeans": {"bits": [9]}}, "kmeans.bits: 9 is out of range; expected an int from 1 to 8"),
    # chains: parsed, checked against the registry and the catalog before any stage runs
    ({"chains": ["agp:10-70-1-full > binary:att"]}, "chains[0]: 'agp:10-70-1-full > binary:att': binary cannot "
     "continue a chain"),
    ({"chains": ["kmeans:4-full > qat:sym-4"]}, "chains[0]: 'kmeans:4-full > qat:sym-4': kmeans cannot start a chain"),
    ({"chains": ["agp:10-70-1-full > lasso:4"]}, "unknown method 'lasso'"),
    ({"chains": ["agp:10-70-1-full > kmeans:9"]}, "chains[0]: 'kmeans:9' gives no reading of kmeans's axes"),
    ({"chains": ["agp:45-70-3-full > kmeans:4"]}, "chains: 'agp:45-70-3-full > kmeans:4' is not in catalog.chains"),
    ({"chains": "agp:10-70-1-full"}, "chains: expected a list of chains"),
    ({"catalog": {"chains": ["agp:10-70-1-emb > kmeans:4"]}}, "catalog.chains: 'agp:10-70-1-emb > kmeans:4' starts "
     "from agp-10-70-1-emb, which is not a catalog cell"),
    ({"groups": ["ff", "convs"]}, "groups: unknown layer group 'convs'"),
    ({"bits": 0}, "bits: 0 is out of range"),
    ({"bits": 1}, "bits: 1 is out of range"),
    ({"bits": 33}, "bits: 33 is out of range"),
    ({"bits": "eight"}, "bits: expected int, got 'eight'"),
    ({"modes": "asymmetric"}, "modes: 'asymmetric' is not allowed; expected one of sym, asym"),
    ({"bits": 3}, "bits: 3 is not in catalog.ptq.bits (8)"),
    ({"qat": {"bits": [16]}}, "qat.bits: 16 is not in catalog.qat.bits (8, 4)"),
    ({"agp": {"schedules": ["70-10-1"]}}, "agp.schedules: '70-10-1': need 0 <= initial <= final <= 100"),
    ({"agp": {"unit": "hours"}}, "agp.unit: 'hours' is not allowed; expected one of steps, epochs"),
    ({"catalog": {"ptq": {"bitz": [8]}}}, "catalog.ptq.bitz: unknown axis; ptq has modes, bits, groups"),
    ({"catalog": {"lasso": {}}}, "catalog.lasso: unknown method; registered methods: ptq, qat, agp, imp, "
     "fullyqt, fullyqt_ptq, nodeprune, kmeans_ptq"),
    ({"fullyqt": {"ops": ["softmax"]}}, "fullyqt.ops: 'softmax' is not allowed; expected one of all, all_flat, naive"),
    ({"fullyqt": {"bits": [1]}}, "fullyqt.bits: 1 is out of range; expected an int from 2 to 16"),
    ({"nodeprune": {"rules": ["random"]}}, "nodeprune.rules: 'random' is not allowed; expected one of adaptive, xmax, l1"),
    ({"nodeprune": {"z": 0}}, "nodeprune.z: "),
    ({"chains": ["fullyqt:8-all > kmeans:4-full"]}, "fullyqt cannot start a chain link"),
    ({"runtime": {"device": "tpu"}}, "runtime.device: 'tpu' is not allowed; expected one of auto, cpu, cuda"),
    ({"data": "files", "files": {s: f"data/corpus/{s}" for s in ("train_source", "train_target", "valid_source",
                                 "valid_target", "test_source")} | {"test_target": "/home/me/test.de"}},
     "files.test_target: /home/me/test.de is outside data/corpus/; copy your corpus there"),
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


def test_resolve_stage_stops_with_one_line_and_writes_nothing(tmp_path):
    """Only `resolve` reads params.yaml's values, and it runs first: a bad value stops the pipeline there."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(train={"batch_tokens": -5})))
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "resolve.py"), "--out", "out", "--cells",
                           str(REPO / "stages" / "cells.yaml")], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: train.batch_tokens: -5 is out of range; expected int >= 16"]
    assert not (tmp_path / "out").exists()


def test_a_stale_stage_list_is_named_with_its_command(tmp_path):
    params = params_from_dict(tiny_params())
    (tmp_path / "cells.yaml").write_text(cells_file_text(params))
    check_cells_file(params, tmp_path / "cells.yaml")
    wider = params_from_dict(tiny_params(catalog={"imp": {"groups": ["att", "full"]}}))
    with pytest.raises(ConfigError, match=r"lacks imp-att .*run `tcompress catalog`"):
        check_cells_file(wider, tmp_path / "cells.yaml")
