"""FullyQT, its post-training variant, its single-operation ablation and node pruning (on the
baseline and as a chain on the FullyQT cell) through `dvc repro` on the tiny configuration."""

import json

import pytest

from conftest import repro_committed, scored_cells, tiny_catalog, tiny_params
from tcompress.compress.quantized import QuantizedModule
from tcompress.loader import load_model
from tcompress.methods.fullyqt.modules import ActQuant
from tcompress.methods.nodeprune.nodes import NodePrunedFeedForward, feed_forwards

pytestmark = pytest.mark.slow
CHAIN = "fullyqt-8-all_then_nodeprune-adaptive"


def metrics(project, cell: str) -> dict:
    return json.loads((project / "metrics" / "cells" / f"{cell}.json").read_text())


def facts(project, cell: str) -> dict:
    """The cell's whole record, lists and per-layer counts included (metrics hold its scalars)."""
    return json.loads((project / "data" / "cells" / cell / "cell.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory, shared_cache):
    grid = {"fullyqt": {"bits": [8], "ops": ["all", "qkv", "ln_den"]}, "fullyqt_ptq": {"bits": [8], "ops": ["all"]},
            "nodeprune": {"rules": ["adaptive", "xmax", "l1"]}}
    chains = ["fullyqt:8-all > nodeprune:adaptive"]
    params = tiny_params(methods=list(grid), chains=chains, **grid, catalog=tiny_catalog(**grid, chains=chains))
    params["nodeprune"]["z"] = 1.0     # a tiny model has few useless nodes at the paper's z
    return repro_committed(tmp_path_factory, shared_cache, "fullyqt", params)


def cell_model(project, cell: str):
    return load_model(project / "data" / "cells" / cell / "model.safetensors")


def test_every_cell_is_scored_from_its_artifact(project):
    assert scored_cells(project) == {"fullyqt-8-all", "fullyqt-8-qkv", "fullyqt-8-ln_den", "fullyqt-control",
                                     "fullyqt_ptq-8-all", "nodeprune-adaptive", "nodeprune-xmax", "nodeprune-l1",
                                     CHAIN}


def test_fullyqt_cells_store_8_bit_weight_codes_and_frozen_ranges_and_run_on_integer_matmuls(project):
    for cell in ("fullyqt-8-all", "fullyqt_ptq-8-all"):
        model, payload = cell_model(project, cell)
        points = {q.point for q in model.modules() if isinstance(q, ActQuant) and q.used}
        assert len(points) == 12 and all(bool(q.seen) for q in model.modules() if isinstance(q, ActQuant) and q.used)
        coded = [m for m in model.modules() if isinstance(m, QuantizedModule)]
        assert coded and {m.spec.bits for m in coded} == {8} and all(m.param_names == ("weight",) for m in coded)
        m = metrics(project, cell)
        assert facts(project, cell)["quantized_points"] == sorted(points) and 3.0 < m["compression_ratio"] < 4.0
        assert "bleu_int8" in m, cell           # the evaluate stage's integer-matmul decode of the same artifact
    assert facts(project, "fullyqt-8-qkv")["quantized_points"] == ["qkv"]
    assert metrics(project, "fullyqt-8-qkv")["compression_ratio"] == 1.0


def test_node_pruning_shrinks_the_model_and_the_fixed_rules_prune_as_many_nodes(project):
    pruned = {rule: facts(project, f"nodeprune-{rule}") for rule in ("adaptive", "xmax", "l1")}
    counts = {rule: sum(m["nodes_pruned"].values()) for rule, m in pruned.items()}
    assert counts["adaptive"] > 0 and len(set(counts.values())) == 1
    assert pruned["adaptive"]["compression_ratio"] > 1.0
    model, payload = cell_model(project, "nodeprune-adaptive")
    widths = {n: f.w_1.out_features for n, f in feed_forwards(model).items() if isinstance(f, NodePrunedFeedForward)}
    assert widths and all(64 - widths[n] == k for n, k in pruned["adaptive"]["nodes_pruned"].items() if k)
    assert metrics(project, "nodeprune-adaptive")["file_bytes"] < metrics(project, "fullyqt-control")["fp32_file_bytes"]


def test_node_pruning_continues_the_fullyqt_cell_and_multiplies_its_ratio(project):
    chain, parent = facts(project, CHAIN) | metrics(project, CHAIN), metrics(project, "fullyqt-8-all")
    assert chain["parent"] == "fullyqt-8-all" and sum(chain["nodes_pruned"].values()) > 0
    assert chain["compression_ratio"] > parent["compression_ratio"]
    assert chain["file_bytes"] < parent["file_bytes"]
    model, _ = cell_model(project, CHAIN)
    ffns = feed_forwards(model)
    assert any(isinstance(f, NodePrunedFeedForward) and isinstance(f.w_1, QuantizedModule) for f in ffns.values())
    assert any(isinstance(q, ActQuant) for q in model.modules())


def test_the_aggregate_lists_the_new_methods(project):
    tables = (project / "metrics" / "tables.md").read_text()
    for title in ("FullyQT", "Node pruning"):
        assert title in tables
