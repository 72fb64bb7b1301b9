"""k-means, binarization, BS-Flex and QSGD cells and a prune-then-share chain through `dvc repro` on
the tiny configuration: each artifact holds the method's stored form, the chain keeps its parent's
zeros, and DVC reruns a chain when its parent changes and nothing else."""

import json

import pandas as pd
import pytest
import torch
import yaml

from conftest import (computing, dvc, ran_stages, repro_committed, scored_cells, shared_controls, tiny_catalog,
                      tiny_params)
from tcompress.compress.artifact import nonzero_bits
from tcompress.compress.codebook import CodebookModule
from tcompress.compress.quantized import QuantizedModule
from tcompress.layer_groups import select_modules
from tcompress.loader import load_model
from tcompress.model import make_model

pytestmark = pytest.mark.slow
CHAIN = "agp-10-70-1-full_then_kmeans-4-full"
METHODS = ["kmeans", "kmeans_ptq", "binary", "bsflex", "qsgd"]


def metrics(project, cell: str) -> dict:
    return json.loads((project / "metrics" / "cells" / f"{cell}.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory, shared_cache):
    grid = {"kmeans": {"bits": [4], "groups": ["att"]}, "kmeans_ptq": {"bits": [4], "groups": ["att"]},
            "binary": {"groups": ["att"]}, "bsflex": {"centroids": ["flex"], "groups": ["att"]},
            "qsgd": {"bits": [8], "groups": ["att"]}}
    chains = ["agp:10-70-1-full > kmeans:4"]   # the chain's start: the AGP cell of the session's shared project
    catalog = tiny_catalog(**grid, agp={"schedules": ["10-70-1"], "groups": ["full"]}, chains=chains)
    params = tiny_params(methods=METHODS, chains=chains, **grid, catalog=catalog)
    return repro_committed(tmp_path_factory, shared_cache, "seeds", params)


def cell_model(project, cell: str):
    return load_model(project / "data" / "cells" / cell / "model.safetensors")[0]


def test_each_cell_is_scored_from_its_artifact(project):
    assert scored_cells(project) == {"kmeans-4-att", "kmeans-control", "kmeans_ptq-4-att", "binary-att",
                                     "bsflex-flex-att", "qsgd-8-att", "agp-10-70-1-full", CHAIN}


def test_one_budget_trains_one_control_that_every_method_is_compared_with(project):
    """k-means, binarization, BS-Flex and QSGD fine-tune with the same budget: one control trains,
    and each method's table still has its control, with that control's results."""
    shared = shared_controls(project)
    assert shared == {"binary-control": "kmeans-control", "bsflex-control": "kmeans-control",
                      "qsgd-control": "kmeans-control"}
    results = pd.read_csv(project / "metrics/results.csv").set_index("cell")
    for control in shared:
        assert results.loc[control, "bleu"] == results.loc["kmeans-control", "bleu"] == \
            metrics(project, "kmeans-control")["bleu"]
    binary = results.loc["binary-att"]
    assert binary["delta_control"] == pytest.approx(binary["bleu"] - results.loc["kmeans-control", "bleu"], abs=1e-4)
    assert "Control `binary-control` (the same fine-tuning, nothing compressed; trained once with `kmeans-control`" \
        in (project / "metrics/tables.md").read_text()


@pytest.mark.parametrize("cell, bits", [("kmeans-4-att", 4), ("kmeans_ptq-4-att", 4), ("binary-att", 1),
                                        ("bsflex-flex-att", 1)])
def test_shared_weight_cells_store_codes_and_a_codebook(project, cell, bits):
    model = cell_model(project, cell)
    coded = {name: m for name, m in model.named_modules() if isinstance(m, CodebookModule)}
    float_model = make_model(model.cfg, model.vocab)
    assert set(coded) == set(select_modules(float_model, "att"))  # every attention projection, nothing else
    for m in coded.values():
        assert m.bits == bits and m.weight_codebook.shape == (1, 2 ** bits)
        assert m.inner.weight.unique().numel() <= 2 ** bits       # the weight is its codebook's values
        assert m.inner.bias is not None and m.inner.bias.requires_grad   # biases stay float parameters
    assert metrics(project, cell)["n_compressed"] == sum(m.weight_codes.numel() for m in coded.values())


def test_qsgd_cell_stores_weight_codes_and_float_biases(project):
    model = cell_model(project, "qsgd-8-att")
    coded = [m for m in model.modules() if isinstance(m, QuantizedModule)]
    assert coded and all(m.param_names == ("weight",) and m.spec.bits == 8 for m in coded)
    for m in coded:   # codes within ±s, one step per output row (bucket: row)
        assert int(m.weight_q.abs().max()) <= 127 and m.weight_scale.shape == (m.weight_q.shape[0],)
    assert metrics(project, "qsgd-8-att")["code_bits"] == 8


def test_the_chain_keeps_its_parents_zeros_and_counts_them(project):
    parent, chain = cell_model(project, "agp-10-70-1-full"), cell_model(project, CHAIN)
    for name, module in select_modules(parent, "full").items():
        weight = getattr(module, "weight", None)
        if weight is None or weight.dim() < 2:
            continue
        coded = chain.get_submodule(name)
        assert isinstance(coded, CodebookModule), name
        assert torch.equal(coded.inner.weight == 0, weight == 0), name   # the same zeros, no new ones
    m = metrics(project, CHAIN)
    assert m["chain"] == "agp:10-70-1-full > kmeans:4" and m["parent"] == "agp-10-70-1-full"
    assert m["compression_ratio"] == round(m["n_model"] * 32 / nonzero_bits(chain), 4)
    assert m["compression_ratio"] > max(metrics(project, "agp-10-70-1-full")["compression_ratio"], m["link_ratio"])
    tables = (project / "metrics/tables.md").read_text()
    assert "## Chains" in tables and "| agp:10-70-1-full > kmeans:4 |" in tables
    assert "## Pareto front: BLEU against the formula's ratio" in tables


def test_a_changed_parent_reruns_its_chain_and_nothing_else(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["agp"]["lr"] = 4.0e-4   # a value no other test project runs: the shared run-cache would restore it
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(["repro"], project).stdout
    assert {s for s in computing(project, ran_stages(out)) if s.startswith(("cell@", "chain@"))} == \
        {"cell@agp-10-70-1-full", f"chain@{CHAIN}"}
    # The chain's own method changes: the chain and kmeans's cells rerun, not the parent. kmeans's
    # control trained the other methods' control too: binarization's now trains on its own, and
    # BS-Flex's and QSGD's stages rewrite their markers to name it.
    params["kmeans"]["lr"] = 4.0e-4
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(["repro"], project).stdout
    assert {s for s in ran_stages(out) if s.startswith(("cell@", "chain@"))} == \
        {"cell@kmeans-4-att", "cell@kmeans-control", f"chain@{CHAIN}", "cell@binary-control", "cell@bsflex-control",
         "cell@qsgd-control"}
    assert shared_controls(project) == {"bsflex-control": "binary-control", "qsgd-control": "binary-control"}
