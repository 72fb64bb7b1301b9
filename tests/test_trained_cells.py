"""QAT, AGP and IMP cells through `dvc repro` on the tiny configuration (the session's shared
project, `tiny_pipeline`): one training loop, the same artifact, the same evaluation and aggregate
as PTQ. (A changed param reruns only the stages that read it: tests/test_pipeline.py for QAT's
budget, tests/test_reliability.py, whose two concurrent repros change an AGP param, for AGP's.)"""

import json

import pytest
import sacrebleu
import yaml

from conftest import dvc, ran_stages, run
from tcompress.data.corpora import read_split
from tcompress.compress.quantized import QuantizedModule
from tcompress.layer_groups import select_modules
from tcompress.loader import load_model

pytestmark = pytest.mark.slow
PRUNED = ("agp-10-70-1-full", "imp-full")


def metrics(project, cell: str) -> dict:
    return json.loads((project / "metrics" / "cells" / f"{cell}.json").read_text())


def test_qat_cell_is_a_quantized_model_evaluated_like_ptq(tiny_pipeline):
    m = metrics(tiny_pipeline, "qat-sym-4-full")
    assert m["compression_ratio"] == 8.0 and m["decoding"] == "greedy"
    hyps = (tiny_pipeline / "data/cells/qat-sym-4-full/hyps.txt").read_text().split("\n")[:-1]
    refs = read_split(tiny_pipeline / "data/prepared/test.parquet")[1]
    assert m["bleu"] == round(sacrebleu.corpus_bleu(hyps, [refs]).score, 4)
    assert m["precision"] == "fp32"  # the tiny config asks for fp32 explicitly
    facts = json.loads((tiny_pipeline / "data/cells/qat-sym-4-full/cell.json").read_text())
    assert m["finetune_steps"] > 0 and len(facts["finetune_curve"]) == 1  # qat.epochs: 1
    # metrics stay flat scalars so that `dvc metrics show/diff` can tabulate them
    assert all(not isinstance(v, (dict, list)) for v in m.values())
    model, _ = load_model(tiny_pipeline / "data/cells/qat-sym-4-full/model.safetensors")
    wrapped = [mod for mod in model.modules() if isinstance(mod, QuantizedModule)]
    assert wrapped and all(mod.spec.bits == 4 and mod.spec.mode == "sym" for mod in wrapped)
    assert not list(model.parameters())  # every parameter is integer codes now
    # Only the selected cells ran: FullyQT is not in `methods` (its control's stage is off), and the
    # 8-bit QAT cell and PTQ's attention cell are in the catalog, off.
    assert metrics(tiny_pipeline, "fullyqt-control") == {}
    assert metrics(tiny_pipeline, "qat-sym-8-full") == {} and metrics(tiny_pipeline, "ptq-sym-8-att") == {}


@pytest.mark.parametrize("cell, sparsity", [("agp-10-70-1-full", 0.7), ("imp-full", 1 - 0.8 ** 2)])
def test_pruned_cells_reach_their_final_sparsity_per_tensor(tiny_pipeline, cell, sparsity):
    m = metrics(tiny_pipeline, cell)
    assert m["sparsity"] == pytest.approx(sparsity, abs=1e-3)
    model, _ = load_model(tiny_pipeline / f"data/cells/{cell}/model.safetensors")
    nonzero = sum(int((p != 0).sum()) for p in model.parameters())
    assert m["nonzero"] == nonzero
    assert m["compression_ratio"] == pytest.approx(m["n_model"] / nonzero, abs=1e-4)
    for name, module in select_modules(model, "full").items():
        weight = getattr(module, "weight", None)
        if weight is None or weight.dim() < 2:
            continue  # LayerNorm gains and biases are not pruned
        zeros = int((weight == 0).sum())
        assert abs(zeros - round(sparsity * weight.numel())) <= 1, name


def test_aggregate_has_the_thesis_tables(tiny_pipeline):
    tables = (tiny_pipeline / "metrics/tables.md").read_text()
    assert "## Quantization-aware training" in tables and "| 4-bit Sym. |" in tables
    assert "## Automated gradual pruning" in tables and "| 10% / 70% / 1 |" in tables
    assert "## Iterative magnitude pruning" in tables
    summary = json.loads((tiny_pipeline / "metrics/summary.json").read_text())
    assert summary["cells"] == 8   # three trained cells, their methods' controls and the two PTQ cells
    assert "Control `qat-control` (the same fine-tuning, nothing compressed)" in tables


def test_a_control_fine_tunes_like_its_method_and_compresses_nothing(tiny_pipeline):
    control, cell = metrics(tiny_pipeline, "qat-control"), metrics(tiny_pipeline, "qat-sym-4-full")
    assert control["control"] is True and control["compression_ratio"] == 1.0 and control["n_compressed"] == 0
    for key in ("finetune_steps", "finetune_sentences"):
        assert control[key] == cell[key] > 0


def test_a_schedule_longer_than_its_budget_fails_in_plan_before_any_cell(tiny_pipeline):
    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    params["agp"]["end"] = 100   # the tiny budget is 2 epochs of a few steps
    (tiny_pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        proc = dvc(["repro"], tiny_pipeline, check=False)
        assert proc.returncode != 0
        assert "agp.end: the schedule prunes until step 100 but the fine-tuning budget is" in proc.stderr + proc.stdout
        assert ran_stages(proc.stdout) <= {"resolve", "plan"}, proc.stdout
    finally:
        run(["git", "checkout", "-q", "--", "."], tiny_pipeline)
        dvc(["repro"], tiny_pipeline)


@pytest.mark.parametrize("keep", ["last", "best"])
def test_a_trained_cell_keeps_the_last_or_the_best_epoch(tiny_pipeline, tmp_path, keep):
    import torch

    from tcompress.loader import load_model
    from tcompress.runner import CellContext
    from tcompress.training import Hook

    class Snapshots(Hook):
        def __init__(self):
            self.by_epoch, self.val_loss = {}, {}

        def on_epoch_end(self, model, state, metrics):
            self.by_epoch[state.epoch] = {k: v.clone() for k, v in model.state_dict().items()}
            self.val_loss[state.epoch] = metrics["val_loss"]

    entry = {"cell": "qat-control", "seed": 3, "params": {"train_sentences": 0, "keep": keep},
             "train": {"epochs": 3, "batch_tokens": 400, "warmup_steps": 2, "lr": 3e-3, "precision": "fp32"}}
    data = tiny_pipeline / "data"
    ctx = CellContext(entry, data / "tokenized", None, tmp_path / "resume.pt", torch.device("cpu"))
    model, _ = load_model(data / "model/model.pt")
    snapshots = Snapshots()
    facts = ctx.finetune(model, [snapshots])
    # no references: fit ranks epochs by validation loss
    best = min(snapshots.val_loss, key=lambda e: (snapshots.val_loss[e], e))
    assert facts["kept_epoch"] == (3 if keep == "last" else best)
    kept = snapshots.by_epoch[facts["kept_epoch"]]
    assert all(torch.equal(kept[k], v) for k, v in model.state_dict().items())


def test_a_cells_resume_file_from_another_plan_is_ignored(tiny_pipeline, tmp_path, capsys):
    """After the baseline is retrained (a new hash in the plan), an old cell's resume file is stale."""
    import torch

    from tcompress.checkpoint import save_atomic
    from tcompress.loader import load_model
    from tcompress.runner import CellContext
    from tcompress.training import fingerprint

    entry = {"cell": "qat-control", "seed": 3, "params": {"train_sentences": 0}, "inputs": {"baseline": "new"},
             "train": {"epochs": 1, "batch_tokens": 400, "warmup_steps": 2, "precision": "fp32"}}
    old = {**entry, "inputs": {"baseline": "old"}}
    save_atomic({"identity": {"plan": fingerprint(old)}}, tmp_path / "resume.pt")
    data = tiny_pipeline / "data"
    model, _ = load_model(data / "model/model.pt")
    facts = CellContext(entry, data / "tokenized", None, tmp_path / "resume.pt", torch.device("cpu")).finetune(model, [])
    captured = capsys.readouterr()
    assert "ignoring" in captured.out + captured.err and "its plan differs from this run's" in captured.out + captured.err
    assert facts["finetune_steps"] > 0 and not (tmp_path / "resume.pt").exists()


def test_a_word_kd_cell_reads_the_training_split_once(tiny_pipeline, tmp_path, monkeypatch):
    """The teacher's top-k pass and the training loop share one read of the training ids."""
    import torch

    import tcompress.runner as cells
    from tcompress.methods.distill import DistillParams, compress

    splits, read_ids = [], cells.read_ids
    monkeypatch.setattr(cells, "read_ids", lambda folder, split: splits.append(split) or read_ids(folder, split))
    entry = {"cell": "distill-word-32-1-64", "seed": 3, "params": {"train_sentences": 0},
             "train": {"epochs": 1, "batch_tokens": 400, "warmup_steps": 2, "precision": "fp32"}}
    data = tiny_pipeline / "data"
    ctx = cells.CellContext(entry, data / "tokenized", None, tmp_path / "resume.pt", torch.device("cpu"))
    teacher, _ = load_model(data / "model/model.pt")
    facts = compress(teacher, {"kd": "word", "d_model": 32, "layers": 1, "d_ff": 64},
                     DistillParams(top_k=4, n_heads=2), ctx)
    assert facts["finetune_steps"] > 0 and "teacher_top_k_seconds" in facts
    assert splits.count("train") == 1, splits
