"""The aggregate's numbers: Δ against the right reference, intervals, and the best-cell picks."""

import json
import random

import pandas as pd
import pytest
import sacrebleu

from conftest import noisy, references
from tcompress.results import (best_deployed, best_deployed_text, collect, markdown_report, markdown_summary,
                               significance_by_cell, summary)


@pytest.fixture
def grid(tmp_path):
    """A baseline, a PTQ cell, and a QAT cell whose control gained more from fine-tuning than the cell."""
    rng = random.Random(1)
    refs = references(rng)
    hyps = {"baseline": noisy(refs, 0.30, rng), "ptq-sym-8-full": noisy(refs, 0.31, rng),
            "qat-control": noisy(refs, 0.20, rng), "qat-sym-4-full": noisy(refs, 0.24, rng)}
    bleu = {k: round(sacrebleu.corpus_bleu(v, [refs]).score, 4) for k, v in hyps.items()}
    (tmp_path / "eval").mkdir(), (tmp_path / "dirs").mkdir(), (tmp_path / "cells").mkdir()
    (tmp_path / "eval/baseline.greedy.txt").write_text("\n".join(hyps["baseline"]) + "\n")
    (tmp_path / "baseline.json").write_text(json.dumps({"parameters": 1000, "greedy": {"bleu": bleu["baseline"],
                                                                                       "chrf": 50.0}}))
    cells = {"ptq-sym-8-full": dict(method="ptq", mode="sym", bits=8, group="full", compression_ratio=4.0),
             "qat-control": dict(method="qat", control=True, compression_ratio=1.0),
             "qat-sym-4-full": dict(method="qat", mode="sym", bits=4, group="full", compression_ratio=8.0)}
    for name, facts in cells.items():
        (tmp_path / f"dirs/{name}").mkdir()
        (tmp_path / f"dirs/{name}/hyps.txt").write_text("\n".join(hyps[name]) + "\n")
        (tmp_path / f"cells/{name}.json").write_text(json.dumps(
            {"cell": name, **facts, "bleu": bleu[name], "chrf": 50.0, "decoding": "greedy", "stored_bits": 8000}))
    (tmp_path / "cells/ptq-asym-4-ff.json").write_text("{}")  # an unselected cell
    frame = collect(tmp_path / "baseline.json", tmp_path / "cells", tmp_path / "dirs", tmp_path / "eval", refs)
    return frame.set_index("cell"), bleu


def test_each_cell_is_compared_with_its_reference(grid):
    frame, bleu = grid
    assert list(frame.index) == ["baseline", "ptq-sym-8-full", "qat-control", "qat-sym-4-full"]
    qat = frame.loc["qat-sym-4-full"]
    assert qat["delta_bleu"] == pytest.approx(bleu["qat-sym-4-full"] - bleu["baseline"], abs=1e-4)
    assert qat["delta_control"] == pytest.approx(bleu["qat-sym-4-full"] - bleu["qat-control"], abs=1e-4)
    assert qat["delta_ref"] == qat["delta_control"] < 0 < qat["delta_bleu"]   # fine-tuning, not compression, gained
    ptq = frame.loc["ptq-sym-8-full"]
    assert pd.isna(ptq["delta_control"]) and ptq["delta_ref"] == ptq["delta_bleu"]
    for cell in ("ptq-sym-8-full", "qat-sym-4-full"):
        row = frame.loc[cell]
        assert row["delta_ci_low"] <= row["delta_bleu"] <= row["delta_ci_high"]
    assert qat["delta_control_ci_low"] <= qat["delta_control"] <= qat["delta_control_ci_high"]
    assert frame.loc["qat-control", "significant"] and frame.loc["qat-control", "delta_ci_low"] > 0
    flat = significance_by_cell(frame.reset_index())
    assert set(flat) == {"ptq-sym-8-full", "qat-control", "qat-sym-4-full"}
    assert flat["qat-sym-4-full"]["delta_control"] == pytest.approx(qat["delta_control"])
    assert flat["ptq-sym-8-full"]["delta_control"] is None and isinstance(flat["qat-control"]["significant"], bool)


def test_tables_and_summary_rank_by_the_control_relative_delta(grid):
    frame, bleu = grid
    facts = summary(frame.reset_index())
    qat = facts["by_method"]["qat"]["8x"]
    assert qat["cell"] == "qat-sym-4-full" and qat["reference"] == "control"
    assert qat["delta_ref"] == pytest.approx(bleu["qat-sym-4-full"] - bleu["qat-control"], abs=1e-4)
    # the best cell at >= 4x overall is ranked by Δ against its reference, not by raw BLEU
    assert facts["best_cell_at_4x"] == max(("ptq-sym-8-full", "qat-sym-4-full"), key=lambda c: frame.loc[c, "delta_ref"])
    text = markdown_report(frame.reset_index(), {"ptq": {"columns": ["full"]}, "qat": {"columns": ["full"]}})
    assert "Control `qat-control`" in text and f"{bleu['qat-sym-4-full']:.2f} (" in text
    assert "vs control" in markdown_summary(facts)


def test_without_trained_methods_there_is_no_control_column_to_fill(grid, tmp_path):
    frame, _ = grid
    cells = tmp_path / "ptq_only"
    cells.mkdir()
    src = next(p for p in tmp_path.rglob("ptq-sym-8-full.json"))
    (cells / src.name).write_text(src.read_text())
    only = collect(next(tmp_path.rglob("baseline.json")), cells).set_index("cell")
    assert list(only.index) == ["baseline", "ptq-sym-8-full"]
    assert only["delta_control"].isna().all() and only.loc["ptq-sym-8-full", "delta_ref"] == \
        only.loc["ptq-sym-8-full", "delta_bleu"]


def test_a_cell_trained_from_scratch_is_named_so_in_its_table(grid):
    frame, _ = grid
    frame = frame.reset_index()
    layout = {"ptq": {"columns": ["full"]}, "qat": {"columns": ["full"]}}
    assert "(from scratch)" not in markdown_report(frame, layout)
    frame.loc[frame["cell"] == "qat-sym-4-full", "from_scratch"] = True
    rows = [line for line in markdown_report(frame, layout).splitlines() if "(from scratch)" in line]
    assert len(rows) == 1 and rows[0].startswith("| 4-bit Sym. (from scratch) |")


def test_a_control_trained_once_for_two_methods_serves_both(grid, tmp_path):
    """``agp-control`` shares ``qat-control``'s training (``same_as``): it appears under its own name
    with that control's results, and AGP's cells are compared with those translations."""
    _, bleu = grid
    cells, dirs = tmp_path / "cells", tmp_path / "dirs"
    qat_hyps = (dirs / "qat-control/hyps.txt").read_text().split("\n")[:-1]
    agp_hyps = [h if i % 3 else h + " the" for i, h in enumerate(qat_hyps)]
    (dirs / "agp-10-70-1-full").mkdir()
    (dirs / "agp-10-70-1-full/hyps.txt").write_text("\n".join(agp_hyps) + "\n")
    (dirs / "agp-control").mkdir()   # the marker stage's folder holds no translations
    (cells / "agp-control.json").write_text(json.dumps(
        {"cell": "agp-control", "method": "agp", "control": True, "same_as": "qat-control"}))
    refs = references(random.Random(1))   # the fixture's references, drawn again
    agp_bleu = round(sacrebleu.corpus_bleu(agp_hyps, [refs]).score, 4)
    (cells / "agp-10-70-1-full.json").write_text(json.dumps(
        {"cell": "agp-10-70-1-full", "method": "agp", "schedule": "10-70-1", "group": "full", "compression_ratio": 3.3,
         "bleu": agp_bleu, "chrf": 50.0, "decoding": "greedy", "stored_bits": 8000}))
    frame = collect(tmp_path / "baseline.json", cells, dirs, tmp_path / "eval", refs).set_index("cell")
    shared = frame.loc["agp-control"]
    assert shared["method"] == "agp" and shared["control"] and shared["same_as"] == "qat-control"
    assert shared["bleu"] == bleu["qat-control"] and shared["delta_ci_low"] == frame.loc["qat-control", "delta_ci_low"]
    agp = frame.loc["agp-10-70-1-full"]
    assert agp["delta_control"] == pytest.approx(agp_bleu - bleu["qat-control"], abs=1e-4)
    assert agp["delta_control_ci_low"] <= agp["delta_control"] <= agp["delta_control_ci_high"] < 0
    assert pd.isna(frame.loc["qat-control", "same_as"])
    text = markdown_report(frame.reset_index(), {"agp": {"columns": ["full"]}})
    assert "Control `agp-control` (the same fine-tuning, nothing compressed; trained once with `qat-control`" in text
    (cells / "qat-control.json").unlink()
    with pytest.raises(ValueError, match=r"agp-control is trained by qat-control's stage .*`dvc repro cell@qat-control`"):
        collect(tmp_path / "baseline.json", cells, dirs, tmp_path / "eval", refs)


@pytest.mark.parametrize("baseline_speed", [120.0, 1000.0])
def test_the_best_deployable_point_is_the_best_export_faster_than_fp32_pytorch(grid, baseline_speed):
    """Among the exported cells, the highest CTranslate2 BLEU whose speed beats the baseline's fp32
    PyTorch greedy decoding; when none does, the fastest export. Absent without deployed numbers."""
    frame, bleu = grid
    frame = frame.reset_index()
    assert "best_deployed" not in summary(frame) and "deployable" not in markdown_summary(summary(frame))
    student = frame[frame["cell"] == "qat-sym-4-full"].assign(cell="distill-none-16-1-32", method="distill")
    frame = pd.concat([frame, student], ignore_index=True)
    exports = {"ptq-sym-8-full": (31.5, 150.0, 1_100_000), "qat-sym-4-full": (31.0, 90.0, 600_000),
               "distill-none-16-1-32": (30.5, 400.0, 300_000)}
    for cell, (b, speed, size) in exports.items():
        frame.loc[frame["cell"] == cell, ["bleu_deployed", "sentences_per_second_deployed", "deployed_bytes"]] = \
            [b, speed, size]
    frame.loc[frame["cell"] == "baseline", ["sentences_per_second", "file_bytes"]] = [baseline_speed, 4_000_000]
    faster = {c: e for c, e in exports.items() if e[1] > baseline_speed}
    expected = (max(faster, key=lambda c: faster[c][0]) if faster else max(exports, key=lambda c: exports[c][1]))
    facts = summary(frame)
    point = facts["best_deployed"]
    b, speed, size = exports[expected]
    fastest = max(exports, key=lambda c: exports[c][1])   # the student, here
    quick = {} if fastest == expected else {"fastest": {
        "cell": fastest, "bleu_deployed": exports[fastest][0], "sentences_per_second_deployed": exports[fastest][1],
        "deployed_bytes": exports[fastest][2], "speedup": round(exports[fastest][1] / baseline_speed, 3),
        "bytes_ratio": round(4_000_000 / exports[fastest][2], 3)}}
    assert bool(quick) == (baseline_speed < 150)   # a faster export with more BLEU than the fastest
    assert point == {"cell": expected, "rule": "faster than the baseline" if faster else "fastest export",
                     "bleu_deployed": b, "sentences_per_second_deployed": speed, "deployed_bytes": size,
                     "baseline_bleu": bleu["baseline"], "baseline_decoding": "greedy",
                     "baseline_sentences_per_second": baseline_speed,
                     "speedup": round(speed / baseline_speed, 3), "baseline_bytes": 4_000_000,
                     "bytes_ratio": round(4_000_000 / size, 3), **quick}
    line = next(line for line in markdown_summary(facts).splitlines() if line.startswith("The best deployable point"))
    assert f"`{expected}`" in line and f"BLEU {b:.2f} against the baseline's fp32 PyTorch {bleu['baseline']:.2f}" in line
    assert f"{speed / baseline_speed:.2f}× the baseline's fp32 PyTorch {baseline_speed:.0f}" in line
    assert f"{size / 1e6:.2f} MB against the baseline checkpoint's 4.00 MB" in line
    assert ("the fastest one" in line) == (not faster) and "first seed" not in line
    assert ("The fastest export: `distill-none-16-1-32`, BLEU 30.50, 400 sentences/s" in line) == bool(faster)
    frame["n_seeds"] = 3   # over several seeds the frame holds the first seed's numbers, and says so
    assert "Numbers of the first seed's run (of 3)." in best_deployed_text(best_deployed(frame))
