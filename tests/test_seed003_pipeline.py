"""Q8BERT, Quant-Noise (int4, iPQ, iPQ with int8 codebooks), lottery tickets (one-shot, random
re-init, and a second round as a chain) and distillation (word-level, sequence-level, references
only) through `dvc repro` on the tiny configuration: each cell is scored from its artifact, stores
its method's form, and reports the ratio of what it stores; a ticket restarts from exactly the
weights the train stage started from; the teacher's translations are decoded once, for the
sequence-level student only."""

import json
import sys

import pytest
import torch
import yaml

from click.testing import CliRunner

from conftest import (computing, dvc, ran_stages, repro_committed, run, scored_cells, shared_controls, tiny_catalog,
                      tiny_params)
from tcompress.compress.artifact import stored_bits
from tcompress.compress.codebook import weight_matrices
from tcompress.compress.quantized import QuantizedModule
from tcompress.data.corpora import read_split
from tcompress.layer_groups import select_modules
from tcompress.loader import load_model
from tcompress.methods.lottery import initial_model
from tcompress.methods.quant_noise.product_quant import ProductCodebookModule
from tcompress.model import make_model

pytestmark = pytest.mark.slow
CHAIN = "lottery-50-rewind-full_then_lottery-80-rewind-full"
TICKETS = {"lottery-50-rewind-full", "lottery-50-random-full", "lottery-control", CHAIN}
STUDENTS = {f"distill-{kd}-16-1-32" for kd in ("word", "seq", "none")}
CELLS = {"q8bert-8-full", "q8bert-control", "quant_noise-int4-10-full", "quant_noise-int4-100-full",
         "quant_noise-ipq-10-full", "quant_noise-ipq-100-full", "quant_noise-ipq_int8-10-full"}


def metrics(project, cell: str) -> dict:
    return json.loads((project / "metrics" / "cells" / f"{cell}.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory, shared_cache):
    grid = {"q8bert": {"bits": [8], "groups": ["full"]},
            "quant_noise": {"quantizers": ["int4", "ipq", "ipq_int8"], "rates": [10, 100], "groups": ["full"]},
            "lottery": {"sparsities": [50], "inits": ["rewind", "random"], "groups": ["full"]},
            "distill": {"kds": ["word", "seq", "none"], "d_models": [16], "layers": [1], "d_ffs": [32]}}
    chains = ["lottery:50-rewind-full > lottery:80-rewind"]
    params = tiny_params(methods=list(grid), chains=chains, **grid, catalog=tiny_catalog(**grid, chains=chains))
    return repro_committed(tmp_path_factory, shared_cache, "seed003", params)


def cell_model(project, cell: str):
    return load_model(project / "data" / "cells" / cell / "model.safetensors")[0]


def test_every_cell_is_scored_from_its_artifact(project):
    assert scored_cells(project) == CELLS | TICKETS | STUDENTS | {"quant_noise-ipq_int8-100-full"}
    # Quant-Noise fine-tunes with Q8BERT's budget here: one control trains for both. The tickets'
    # control starts from θ₀, so it is its own.
    assert shared_controls(project) == {"quant_noise-control": "q8bert-control"}


def test_q8bert_stores_symmetric_8_bit_weights_of_every_matrix_with_float_biases(project):
    model = cell_model(project, "q8bert-8-full")
    coded = [m for m in model.modules() if isinstance(m, QuantizedModule)]
    assert len(coded) == len(weight_matrices(make_model(model.cfg, model.vocab), "full"))
    for m in coded:
        assert m.spec.mode == "sym" and m.spec.bits == 8 and m.param_names == ("weight",)
        assert int(m.weight_q.abs().max()) == 127          # S_W = 127 / max|W|: the largest weight is ±127


def test_int4_cells_store_4_bit_codes_per_row(project):
    for cell in ("quant_noise-int4-10-full", "quant_noise-int4-100-full"):
        coded = [m for m in cell_model(project, cell).modules() if isinstance(m, QuantizedModule)]
        assert coded and all(m.spec.bits == 4 and m.weight_scale.dim() == 1 for m in coded)
        assert metrics(project, cell)["compression_ratio"] > 6


@pytest.mark.parametrize("cell, codebook_bits", [("quant_noise-ipq-10-full", 32), ("quant_noise-ipq-100-full", 32),
                                                 ("quant_noise-ipq_int8-10-full", 8)])
def test_ipq_cells_store_codes_and_codebooks_and_their_ratio_counts_both(project, cell, codebook_bits):
    model = cell_model(project, cell)
    pq = {name: m for name, m in model.named_modules() if isinstance(m, ProductCodebookModule)}
    float_model = make_model(model.cfg, model.vocab)
    assert len(pq) == len(weight_matrices(float_model, "full"))
    attention = set(select_modules(float_model, "att"))
    for name, m in pq.items():
        block = 4 if name in attention else 8          # quant_noise.attention_block, quant_noise.block
        assert m.block == block and m.centroids == 16 and m.codebook_bits == codebook_bits
        assert m.inner.weight.reshape(-1, block).unique(dim=0).shape[0] <= 16   # every block is a centroid
    facts = json.loads((project / f"data/cells/{cell}/cell.json").read_text())
    assert facts["compression_ratio"] == round(facts["n_model"] * 32 / stored_bits(model), 4)
    if cell.endswith("-10-full"):   # noise first, then the two stages across the budget
        steps = facts["finetune_steps"]
        assert facts["ipq_stage_steps"] == [round(steps / 3), round(2 * steps / 3)]
    else:
        assert facts["ipq_stage_steps"] == [0]


def test_int8_codebooks_make_a_smaller_file(project):
    assert metrics(project, "quant_noise-ipq_int8-10-full")["file_bytes"] < \
        metrics(project, "quant_noise-ipq-10-full")["file_bytes"]


# ------------------------------------------------------------------------------------ lottery tickets

class Started(Exception):
    pass


def test_rewinding_restarts_from_the_weights_the_train_stage_started_from(project, monkeypatch):
    """Run the train stage's own entry point on the project's data, stopping it where training
    begins: its model is what ``initial_model`` rebuilds, bit for bit."""
    import tcompress.training

    def fit(model, *args, **kwargs):
        raise Started(model.state_dict())

    monkeypatch.setattr(tcompress.training, "fit", fit)
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project / "stages"))
    sys.modules.pop("train", None)
    import train as train_stage

    result = CliRunner().invoke(train_stage.main, [
        "--config", "data/config/train.json", "--tokenized", "data/tokenized", "--prepared", "data/prepared",
        "--out", "unused", "--resume", "unused.pt", "--metrics", "unused.json", "--curve", "unused_curve.json"])
    assert isinstance(result.exception, Started), result.output
    started = result.exception.args[0]
    baseline, _ = load_model(project / "data/model/model.pt")
    seed = json.loads((project / "data/config/train.json").read_text())["seed"]
    theta0 = initial_model(baseline.cfg, baseline.vocab, seed).state_dict()
    assert started.keys() == theta0.keys()
    assert all(torch.equal(started[k], theta0[k]) for k in theta0)


def _zeros(model) -> dict:
    return {name: m.weight == 0 for name, m in weight_matrices(model, "full").items()}


def test_a_ticket_prunes_the_trained_weights_smallest_and_random_reinit_shares_its_mask(project):
    baseline, _ = load_model(project / "data/model/model.pt")
    rewound, random = cell_model(project, "lottery-50-rewind-full"), cell_model(project, "lottery-50-random-full")
    masks = _zeros(rewound)
    assert masks.keys() == _zeros(baseline).keys()
    for name, pruned in masks.items():
        assert torch.equal(pruned, _zeros(random)[name])          # the same mask, both retrained
        w = dict(weight_matrices(baseline, "full"))[name].weight.detach().abs()
        assert pruned.sum() == round(0.5 * w.numel())
        assert w[pruned].max() <= w[~pruned].min()                # the trained baseline's smallest half
    assert not torch.equal(rewound.encoder.layers[0].feed_forward.w_1.weight,
                           random.encoder.layers[0].feed_forward.w_1.weight)
    facts = json.loads((project / "data/cells/lottery-50-rewind-full/cell.json").read_text())
    assert facts["compression_ratio"] == round(facts["n_model"] / facts["nonzero"], 4)


def test_a_second_round_prunes_its_parents_ticket_further_and_keeps_its_zeros(project):
    parent, chain = _zeros(cell_model(project, "lottery-50-rewind-full")), _zeros(cell_model(project, CHAIN))
    for name, pruned in chain.items():
        assert (pruned | ~parent[name]).all()                     # every zero of round one is still zero
        assert pruned.sum() == round(0.8 * pruned.numel())


# ------------------------------------------------------------------------------------- distillation

def test_students_are_smaller_models_and_only_the_sequence_level_one_reads_the_teachers_translations(project):
    baseline, _ = load_model(project / "data/model/model.pt")
    teacher = json.loads((project / "data/teacher/teacher.json").read_text())
    assert teacher["enabled"] and teacher["sentences"] == len(read_split(project / "data/prepared/train.parquet")[0])
    for cell in STUDENTS:
        student = cell_model(project, cell)
        assert (student.cfg.d_model, student.cfg.n_layers, student.cfg.d_ff) == (16, 1, 32)
        assert student.vocab == baseline.vocab
        m = metrics(project, cell)
        assert m["compression_ratio"] == round(m["n_model"] / m["n_student"], 4) and m["compression_ratio"] > 2
        assert m["file_ratio"] > 2                                # the shipped file is the student's
        plan = json.loads((project / f"data/plan/cells/{cell}.json").read_text())
        assert ("teacher" in plan["inputs"]) == (cell == "distill-seq-16-1-32")
    # The student trained on the teacher's translations saw them, not the references, as targets.
    facts = json.loads((project / "data/cells/distill-seq-16-1-32/cell.json").read_text())
    assert facts["finetune_sentences"] == teacher["sentences"]


def test_dropping_the_sequence_level_student_switches_the_teacher_off_and_reruns_no_other_cell(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["distill"]["kds"] = ["word", "none"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(["repro"], project).stdout
    try:
        assert json.loads((project / "data/teacher/teacher.json").read_text()) == {"enabled": False}
        assert computing(project, ran_stages(out)) <= {"resolve", "teacher", "plan", "cell@distill-seq-16-1-32",
                                                        "aggregate"}
    finally:
        run(["git", "checkout", "--", "params.yaml"], project)
        dvc(["repro"], project)      # the run-cache brings the translations back, decoded once
