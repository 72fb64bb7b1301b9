"""The record: its definition plans, its runner runs end to end, and BENCHMARKS.md is what the
generator makes of the committed raw outputs.

The runner's end-to-end check runs it on TINY's grid with two seeds and a second part, in a project
of its own (`benchmarks/record/run.py --clone`), and reads back what it collected. The generator's
checks build a small raw record by hand in tmp_path, so each expected answer is known.
"""

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, make_project, ran_stages, restored_stages, tiny_params

RECORD = REPO / "benchmarks/record"
sys.path.insert(0, str(RECORD))
import generate  # noqa: E402
import run as record_run  # noqa: E402


def test_benchmarks_md_is_generated_from_the_committed_raw_outputs():
    """A hand edit of BENCHMARKS.md, or a raw file changed without regenerating, fails here."""
    assert (REPO / "BENCHMARKS.md").read_text() == generate.render(REPO), \
        "BENCHMARKS.md is stale: run `python benchmarks/record/generate.py`"
    assert generate.FRONT.read_text() == generate.front_svg(generate.load_parts(REPO)), \
        f"{generate.FRONT.name} is stale: run `python benchmarks/record/generate.py`"


def test_the_record_plans_every_cell_its_claims_name(tmp_path):
    """The record's overlay, applied with DVC's code to params.yaml, loads and selects every cell
    and chain claims.yaml compares, in every part that names them; its seeds and precision hold."""
    from tcompress.grid import selected_cells, selected_chains
    from tcompress.params import load_params

    record = record_run.load_record(RECORD / "record.yaml")
    selected = {}
    for part in record_run.part_names(record):
        shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
        record_run.apply_part(tmp_path / "params.yaml", record, part, str(tmp_path))
        params = load_params(tmp_path / "params.yaml")
        assert params.seeds == (1234, 2, 3) and params.seed_catalog == (2, 3)
        assert params.train.precision == "fp32" and params.data == "multi30k"
        assert params.multi30k.local_dir == str(tmp_path.resolve())
        selected[part] = {c.id for c in selected_cells(params)} | {c.id for c in selected_chains(params)}
    for paper in yaml.safe_load((RECORD / "claims.yaml").read_text())["papers"]:
        for row in paper["rows"]:
            if row.get("cell"):
                part = row.get("part", "main")
                names = {row["cell"], row.get("against", "reference")} - {"reference", "baseline"}
                assert names <= selected[part], (row["claim"], names - selected[part])


@pytest.mark.slow
def test_the_runner_runs_and_collects_a_two_seed_record_of_the_tiny_grid(tmp_path, shared_cache):
    """`run.py` on TINY's grid, seeds 1234 and 5 and a second part: every selected cell's metrics and
    the hash of its translations per seed, the aggregate over both seeds, a named pair's interval, the
    machine; then a collect into the same folder after one cell's metrics went missing keeps it."""
    params = tiny_params()
    (tmp_path / "project").mkdir()
    # The session's DVC cache: seed 1234's stages are the shared tiny project's (TINY's params), and seed
    # 5's those test_seeds adds to a copy of it, restored from the run-cache when they ran earlier.
    project = make_project(tmp_path / "project", params, shared_cache)
    record = {"catalog": {"seeds": [5]}, "set": ["seeds=[1234,5]"],
              "parts": {"att": ["methods=[ptq]", "ptq.groups=[att]"]}}
    (tmp_path / "record.yaml").write_text(yaml.safe_dump(record))
    claims = {"papers": [{"id": "t", "title": "t", "rows": [
        {"claim": "x", "paper": "x", "cell": "qat-sym-4-full", "against": "ptq-sym-8-full", "bound": -1.0}]}]}
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump(claims))
    out = tmp_path / "record"

    def runner(part):
        done = subprocess.run([sys.executable, str(RECORD / "run.py"), "--clone", str(project), "--record",
                               str(tmp_path / "record.yaml"), "--claims", str(tmp_path / "claims.yaml"), "--out",
                               str(out), "--part", part], capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    runner("main")

    main = out / "main"
    expected = {"ptq-sym-8-ff", "ptq-sym-8-full", "qat-control", "qat-sym-4-full", "agp-10-70-1-full", "imp-full"}
    for seed, folder in ((1234, project), (5, project / "data/seeds/5")):
        cells = {p.stem for p in (main / f"seed{seed}/cells").glob("*.json")}
        assert expected <= cells, (seed, cells)
        assert json.loads((main / f"seed{seed}/baseline.json").read_text())["checkpoint_bytes"] > 0
        hashes = dict(reversed(line.split("  ")) for line in (main / f"seed{seed}/hyps.sha256").read_text().splitlines())
        cells_dir = project / "data/cells" if seed == 1234 else folder / "cells"
        assert hashes["ptq-sym-8-full"] == hashlib.sha256((cells_dir / "ptq-sym-8-full/hyps.txt").read_bytes()).hexdigest()
        assert {"baseline.greedy", "baseline.beam"} <= set(hashes)
    results = pd.read_csv(main / "aggregate/results.csv").set_index("cell")
    assert (results.loc[sorted(expected), "n_seeds"] == 2).all()
    pair = json.loads((main / "pairs.json").read_text())["pairs"][0]
    assert (pair["a"], pair["b"], pair["n"]) == ("ptq-sym-8-full", "qat-sym-4-full", 2)
    assert pair["ci_low"] <= pair["ci_high"]
    assert yaml.safe_load((main / "params.yaml").read_text())["seeds"] == [1234, 5]
    assert json.loads((main / "machine.json").read_text())["commit"]
    # the second part (its overrides on top of the first's) runs ptq-sym-8-att in both seeds, collected apart
    runner("att")
    for seed in (1234, 5):
        assert "ptq-sym-8-att" in {p.stem for p in (out / f"att/seed{seed}/cells").glob("*.json")}
        assert not (out / f"att/seed{seed}/cells/ptq-sym-8-full.json").exists()
    # each cell against its reference over both seeds: the baseline's greedy translations, or its control
    deltas = {(d["a"], d["b"]): d for d in json.loads((main / "deltas.json").read_text())["deltas"]}
    assert deltas[("baseline", "ptq-sym-8-full")]["n"] == 2 and deltas[("qat-control", "qat-sym-4-full")]["n"] == 2
    assert deltas[("agp-control", "agp-10-70-1-full")]["n"] == 2   # a shared control: its twin's translations
    assert not any(b == "qat-control" for _, b in deltas)
    # additive: a cell the project no longer holds stays in the record
    (project / "metrics/cells/imp-full.json").unlink()
    record_run.collect(project, out / "att", [])
    record_run.collect(project, main, [])
    assert (main / "seed1234/cells/imp-full.json").exists()
    # metrics no up-to-date stage wrote (a clone's copies from git, an earlier baseline's) are not collected
    # (the project is in the second part's state now: its one cell is up to date, the first part's are not)
    stale = json.loads((project / "metrics/cells/ptq-sym-8-att.json").read_text())
    (project / "metrics/cells/ptq-asym-8-att.json").write_text(json.dumps({**stale, "cell": "ptq-asym-8-att"}))
    record_run.collect(project, tmp_path / "fresh", [])
    assert {p.stem for p in (tmp_path / "fresh/seed1234/cells").glob("*.json")} == {"ptq-sym-8-att"}



def test_a_comparison_is_reused_while_its_translations_are_unchanged_and_never_narrowed(tmp_path):
    """A collect recomputes a cell's Δ only when one of its translation files changed, and a clone
    holding fewer seeds (a worker that ran one) does not replace a comparison over more."""
    project, collected = tmp_path / "project", tmp_path / "record"
    references = ["a small dog runs on the grass", "two men ride their bikes down the street",
                  "a woman is reading a book in the park", "children play football at the beach"]
    (project / "data/prepared").mkdir(parents=True)
    pd.DataFrame({"source": references, "target": references}).to_parquet(project / "data/prepared/test.parquet")
    sources = record_run.seed_sources(project, [1234, 2])

    def write(seed, cell_hyps):
        src = sources[seed]
        for path, text in ((src["eval"] / "baseline.greedy.txt", references),
                           (src["cells"] / "ptq-sym-4-full/hyps.txt", cell_hyps)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(line + "\n" for line in text))
        (src["metrics"] / "cells").mkdir(parents=True, exist_ok=True)
        (src["metrics"] / "cells/ptq-sym-4-full.json").write_text(json.dumps({"cell": "ptq-sym-4-full", "method": "ptq"}))
        (collected / f"seed{seed}").mkdir(parents=True, exist_ok=True)
        (collected / f"seed{seed}/hyps.sha256").write_text("".join(
            f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {name}\n" for name, p in
            (("baseline.greedy", src["eval"] / "baseline.greedy.txt"),
             ("ptq-sym-4-full", src["cells"] / "ptq-sym-4-full/hyps.txt"))))

    worse = ["a dog runs on grass", *references[1:]]
    write(1234, worse)
    write(2, worse)
    pair = [("baseline", "ptq-sym-4-full")]
    (first,) = record_run.compare_pairs(project, [1234, 2], pair, collected)
    assert first["n"] == 2 and first["delta_mean"] < 0
    stored = {("baseline", "ptq-sym-4-full"): {**first, "delta_mean": 123.0}}
    assert record_run.compare_pairs(project, [1234, 2], pair, collected, stored)[0]["delta_mean"] == 123.0
    write(2, references)                 # seed 2's cell decoded again, differently: recomputed
    (again,) = record_run.compare_pairs(project, [1234, 2], pair, collected, stored)
    assert again["delta_mean"] != 123.0 and again["inputs"]["1234"] == first["inputs"]["1234"]
    assert again["inputs"]["2"] != first["inputs"]["2"]
    # a clone with seed 2 alone does not narrow the two-seed entry; one with both seeds replaces it
    (sources[1234]["cells"] / "ptq-sym-4-full/hyps.txt").unlink()
    (one,) = record_run.compare_pairs(project, [1234, 2], pair, collected)
    assert one["seeds"] == [2]
    key = ("baseline", "ptq-sym-4-full")
    assert record_run.merge_comparisons({key: first}, [one])[key] is first
    assert record_run.merge_comparisons({key: first}, [again])[key] is again
    assert record_run.merge_comparisons({}, [one])[key] is one


def fabricated_part(folder, cells: dict, pairs: list) -> None:
    """A collected part of three seeds: ``cells`` maps a cell to (method, control, file bytes, BLEU,
    Δ, interval low, interval high); the baseline checkpoint is 1,000 bytes."""
    for seed in (1234, 2, 3):
        (folder / f"seed{seed}/cells").mkdir(parents=True)
        (folder / f"seed{seed}/baseline.json").write_text(json.dumps({"checkpoint_bytes": 1000}))
        for cell, (method, control, size, *_rest) in cells.items():
            (folder / f"seed{seed}/cells/{cell}.json").write_text(json.dumps(
                {"cell": cell, "method": method, "control": control, "file_bytes": size, "sentences_per_second": 50.0,
                 "compress_seconds": 2.0, "precision": "fp32"}))
    rows = [{"cell": "baseline", "method": "baseline", "control": False, "bleu": 40.0, "n_seeds": 3, "bleu_mean": 40.0,
             "bleu_sd": 0.1}]
    rows += [{"cell": cell, "method": method, "control": control, "bleu": bleu, "n_seeds": 3, "bleu_mean": bleu,
              "bleu_sd": 0.2, "delta_ref_mean": delta, "seeds_ci_low": low, "seeds_ci_high": high}
             for cell, (method, control, _size, bleu, delta, low, high) in cells.items()]
    (folder / "aggregate").mkdir()
    pd.DataFrame(rows).to_csv(folder / "aggregate/results.csv", index=False)
    (folder / "pairs.json").write_text(json.dumps({"pairs": pairs}))


def test_a_cell_the_aggregate_has_not_reached_takes_the_runner_s_delta_against_its_reference(tmp_path):
    """Without an aggregate row (a partial record), a cell's row is the runner's deltas.json entry:
    Δ and interval as computed, BLEU mean and sd over the seeds that have it."""
    folder = tmp_path / "benchmarks/results/record/main"
    for seed, bleu in ((1234, 30.0), (2, 31.0)):
        (folder / f"seed{seed}/cells").mkdir(parents=True)
        (folder / f"seed{seed}/baseline.json").write_text(json.dumps({"checkpoint_bytes": 1000}))
        (folder / f"seed{seed}/cells/gptq-x.json").write_text(json.dumps(
            {"cell": "gptq-x", "method": "gptq", "control": False, "bleu": bleu, "file_bytes": 100}))
    (folder / "deltas.json").write_text(json.dumps({"deltas": [
        {"a": "baseline", "b": "gptq-x", "n": 2, "seeds": [1234, 2], "delta_mean": -0.4, "ci_low": -0.9,
         "ci_high": 0.1}]}))
    part = generate.load_parts(tmp_path)["main"]
    row = part.row("gptq-x")
    assert (row["n"], row["bleu"], row["delta"], row["low"], row["high"]) == (2, 30.5, -0.4, -0.9, 0.1)
    assert row["sd"] == pytest.approx(0.7071, abs=1e-4) and part.row("absent") is None
    assert generate.best_at({"main": part}, 8)["cell"] == "gptq-x"
    claim = {"claim": "c", "paper": "p", "cell": "gptq-x", "bound": -1.0}
    assert generate.measured({"main": part}, claim)["delta"] == -0.4


@pytest.fixture
def fabricated(tmp_path):
    cells = {"ptq-a": ("ptq", False, 200, 30.0, -0.2, -0.6, 0.1),      # 5×
             "ptq-b": ("ptq", False, 200, 32.0, 0.3, 0.1, 0.5),        # 5×: the best at ≥ 4×
             "qat-c": ("qat", False, 100, 25.0, -2.0, -3.0, -1.0),     # 10×: the best at ≥ 8×
             "qat-d": ("qat", False, 50, 10.0, -20.0, -21.0, -19.0),   # 20×: the only one at ≥ 16×
             "qat-control": ("qat", True, 1000, 41.0, 0.0, 0.0, 0.0),
             "agp-control": ("agp", True, 40, 45.0, 0.0, 0.0, 0.0)}    # a control at 25×: never the answer
    pairs = [{"a": "ptq-a", "b": "ptq-b", "n": 3, "delta_mean": -0.3, "ci_low": -0.8, "ci_high": 0.2}]
    fabricated_part(tmp_path / "benchmarks/results/record/main", cells, pairs)
    rows = [{"claim": "near", "paper": "p1", "cell": "ptq-a", "bound": -0.5},
            {"claim": "better", "paper": "p2", "cell": "ptq-b", "bound": 0},
            {"claim": "no loss", "paper": "p3", "cell": "qat-c", "bound": 0},
            {"claim": "b beats a", "paper": "p4", "cell": "ptq-b", "against": "ptq-a", "bound": 0,
             "facts": {"seconds": "compress_seconds"}},
            {"claim": "large loss", "paper": "p5", "cell": "qat-d", "bound": -5, "below": True},
            {"claim": "not run", "paper": "p6", "cell": "ptq-z", "bound": 0}]
    (tmp_path / "benchmarks/record").mkdir(parents=True)
    (tmp_path / "benchmarks/record/claims.yaml").write_text(yaml.safe_dump(
        {"papers": [{"id": "900", "title": "fabricated", "rows": rows}]}))
    return tmp_path


def test_the_answer_is_the_best_non_control_cell_at_each_file_ratio(fabricated):
    parts = generate.load_parts(fabricated)
    picks = {t: generate.best_at(parts, t) for t in (4, 8, 16)}
    assert {t: p["cell"] for t, p in picks.items()} == {4: "ptq-b", 8: "qat-c", 16: "qat-d"}
    assert picks[8]["ratio"] == 10.0 and picks[8]["bytes"] == 100 and picks[8]["n"] == 3
    assert generate.best_at(parts, 50) is None
    text = generate.answer_section(parts)
    assert "| ≥ 4× | `ptq-b` | 32.00 ± 0.20 | 3 | +0.30 [+0.10, +0.50] | 200 | 5.00× | 50.0 |" in text
    assert "| ≥ 16× | `qat-d` |" in text
    assert "pending" in generate.answer_section({})
    assert "So far" not in text
    some = generate.answer_section(parts, ["ptq-a", "ptq-b", "qat-c", "qat-d", "ptq-z", "ptq-y"])
    assert "So far 4 of the record's 6 cells and chains are measured" in some


def test_the_front_draws_every_cell_above_the_floor_and_rings_the_answer(fabricated):
    svg = generate.front_svg(generate.load_parts(fabricated))
    drawn = set(re.findall(r'class="mark" data-cell="([^"]+)"', svg))
    assert drawn == {"ptq-a", "ptq-b", "qat-c"}          # no control; qat-d (Δ −20) is below the floor
    assert "1 cells below −5 BLEU not drawn" in svg
    assert svg.count('class="ring"') == 2                # ptq-b (≥ 4×) and qat-c (≥ 8×); qat-d is off the chart
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"') and "http" not in svg.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")      # a file that opens offline


def test_each_claim_gets_the_verdict_its_rule_gives_and_rows_without_data_are_pending(fabricated):
    text = generate.claims_section(fabricated, generate.load_parts(fabricated))
    verdicts = {line.split(" | ")[0].strip("| "): line.rstrip(" |").rsplit(" | ", 1)[1]
                for line in text.splitlines() if line.startswith("| ") and " | p" in line and not line.startswith("| claim ")}
    assert verdicts == {"near": "trend", "better": "reproduced", "no loss": "contradicted", "b beats a": "inconclusive",
                        "large loss": "reproduced", "not run": "pending"}
    # the cell's file ratio (the baseline's 1,000 bytes over its 200) and its facts, the mean over the
    # seeds; both post-training, so no training steps on either side
    assert ("| b beats a | p4 | `ptq-b` | 5.00×; seconds 2 | `ptq-a` | 0 / 0 | ≥ +0.00 | −0.30 [−0.80, +0.20] | 3 "
            "| inconclusive |") in text


@pytest.mark.parametrize("delta, low, high, bound, below, expected", [
    (1.0, 0.5, 1.5, 0.0, False, "reproduced"), (1.0, 0.0, 1.5, 0.0, False, "reproduced"),
    (0.2, -0.1, 0.5, 0.0, False, "trend"), (-0.2, -0.5, 0.1, 0.0, False, "inconclusive"),
    (-1.0, -1.5, -0.5, 0.0, False, "contradicted"), (-8.0, -9.0, -7.0, -5.0, True, "reproduced"),
    (-4.0, -6.0, -2.0, -5.0, True, "inconclusive"), (-2.0, -3.0, -1.0, -5.0, True, "contradicted"),
    (float("nan"), 0.0, 0.0, 0.0, False, "pending")])
def test_verdict_rule(delta, low, high, bound, below, expected):
    assert generate.verdict(delta, low, high, bound, below) == expected


def test_all_seeds_turns_each_cell_target_into_that_cell_in_every_seed():
    seeds = [1234, 2, 3]
    assert record_run.across_seeds(["seed_cell@agp-*.seed2"], seeds) == [
        "cell@agp-*", "seed_cell@agp-*.seed2", "seed_cell@agp-*.seed3"]
    assert record_run.across_seeds(["chain@a_then_b", "seed_train@2"], seeds) == [
        "chain@a_then_b", "seed_chain@a_then_b.seed2", "seed_chain@a_then_b.seed3", "seed_train@2"]
    # a cell named twice (in two seeds) is targeted once per seed
    assert record_run.across_seeds(["cell@x", "seed_cell@x.seed3"], [1234, 3]) == ["cell@x", "seed_cell@x.seed3"]
    assert record_run.across_seeds(["cell@x"], [1234]) == ["cell@x"]


def test_a_claim_shows_each_side_s_training_steps_over_the_seeds_that_have_both(tmp_path):
    """Training steps, the baseline's not counted: a fine-tuned cell's own, a chain's with its parent's, a shared
    control's its twin's, a post-training cell's 0; averaged over the seeds where both sides exist."""
    folder = tmp_path / "main"
    cells = {1234: {"qat-x": {"method": "qat", "finetune_steps": 70}, "qat-control": {"method": "qat", "finetune_steps": 70},
                    "kmeans-control": {"method": "kmeans", "same_as": "qat-control"},
                    "kmeans-y": {"method": "kmeans", "finetune_steps": 70},
                    "agp-z": {"method": "agp", "finetune_steps": 300},
                    "agp-z_then_kmeans-y": {"method": "kmeans", "finetune_steps": 70, "parent": "agp-z"},
                    "ptq-w": {"method": "ptq"}},
             2: {"qat-x": {"method": "qat", "finetune_steps": 74}, "qat-control": {"method": "qat", "finetune_steps": 74}}}
    for seed, found in cells.items():
        (folder / f"seed{seed}/cells").mkdir(parents=True)
        for cell, metrics in found.items():
            (folder / f"seed{seed}/cells/{cell}.json").write_text(json.dumps({"cell": cell, **metrics}))
    # each cell's reference, as the runner computed its Δ against it
    references = {"qat-x": "qat-control", "kmeans-y": "kmeans-control", "ptq-w": "baseline"}
    (folder / "deltas.json").write_text(json.dumps({"deltas": [{"a": a, "b": b} for b, a in references.items()]}))
    part = generate.Part(folder)
    assert generate.training_steps(part, "qat-x", "reference") == "72 / 72"
    assert generate.training_steps(part, "kmeans-y", "reference") == "70 / 70"   # seed 1234 alone has kmeans-y
    assert generate.training_steps(part, "agp-z_then_kmeans-y", "baseline") == "370 / 0"
    assert generate.training_steps(part, "ptq-w", "qat-x") == "0 / 70"
    assert generate.training_steps(part, "ptq-w", "reference") == "0 / 0"
    assert generate.training_steps(part, "lottery-v", "reference") == ""


def test_gather_takes_the_cells_another_clone_ran_with_this_clone_s_inputs(tmp_path):
    """A cell whose plan here equals the one the other clone ran it with is gathered (its `dvc repro`
    restores it from the run-cache); one with another plan, no plan here, or already recorded here is
    not; a chain comes with its parent, or when this clone holds the parent's folder it read."""
    project, other = tmp_path / "project", tmp_path / "other"
    plans = {"a": "plan a", "b": "plan b here", "c": "plan c", "d": "plan d", "a_then_x": "chain plan",
             "d_then_x": "chain plan d"}
    for name, text in plans.items():
        (project / "data/plan/cells").mkdir(parents=True, exist_ok=True)
        (project / f"data/plan/cells/{name}.json").write_text(text)
    md5 = {name: hashlib.md5(text.encode()).hexdigest() for name, text in plans.items()}

    def stage(name, plan_md5, extra_deps=()):
        return {"cmd": "x", "deps": [{"path": f"data/plan/cells/{name}.json", "md5": plan_md5}, *extra_deps],
                "outs": [{"path": f"data/cells/{name}", "md5": f"{name}-out.dir"}]}

    theirs = {"cell@a": stage("a", md5["a"]), "cell@b": stage("b", hashlib.md5(b"plan b there").hexdigest()),
              "cell@c": stage("c", md5["c"]), "cell@e": stage("e", "f" * 32), "seed_train@2": stage("t", "0" * 32),
              "chain@a_then_x": stage("a_then_x", md5["a_then_x"], [{"path": "data/cells/a", "md5": "a-out.dir"}]),
              "chain@d_then_x": stage("d_then_x", md5["d_then_x"], [{"path": "data/cells/d", "md5": "d-out.dir"}])}
    ours = {"cell@c": stage("c", md5["c"])}
    (other / "data").mkdir(parents=True)
    (other / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": theirs}))
    (project / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": ours}))
    assert record_run.gather_targets(project, [other]) == ["cell@a", "chain@a_then_x"]
    # this clone holds the folder chain d read (its own cell d, run with the same outputs): gathered too
    ours["cell@d"] = stage("d", md5["d"])
    (project / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": ours}))
    assert record_run.gather_targets(project, [other]) == ["cell@a", "chain@a_then_x", "chain@d_then_x"]


def test_collect_refuses_cells_on_another_baseline_of_a_recorded_seed_and_forget_seed_starts_it_over(tmp_path):
    """A seed's recorded cells were measured on one baseline (known by its greedy translations' hash):
    a clone whose baseline of that seed differs (trained again), or cannot be shown, adds nothing to
    it; the same baseline, or a seed the record has no cells of, passes; clones collected together
    must hold one model of each seed. ``forget_seed`` drops the seed's folder and every comparison
    computed over it, and nothing else."""
    project, out = tmp_path / "project", tmp_path / "record"
    sources = record_run.seed_sources(project, [1234, 2])
    for seed, text in ((1234, "ein Hund\n"), (2, "zwei Hunde\n")):
        sources[seed]["eval"].mkdir(parents=True)
        (sources[seed]["eval"] / "baseline.greedy.txt").write_text(text)
        (out / f"seed{seed}/cells").mkdir(parents=True)
        (out / f"seed{seed}/cells/ptq-sym-8-full.json").write_text("{}")
        digest = hashlib.sha256(text.encode()).hexdigest()
        (out / f"seed{seed}/hyps.sha256").write_text(f"{digest}  baseline.greedy\n")

    def everything_current(clone, path):
        return True

    def check(*clones, up_to_date=everything_current):
        record_run.check_baselines(out, list(clones or [project]), [1234, 2], up_to_date)

    check()
    (sources[2]["eval"] / "baseline.greedy.txt").write_text("zwei andere Hunde\n")   # seed 2 trained again
    with pytest.raises(SystemExit, match="seed 2: this clone's baseline is not the one"):
        check()
    def cells_only(clone, path):   # the cells up to date, the baseline's evaluation not
        return "cells" in path.parts

    for seed in (1234, 2):
        (sources[seed]["metrics"] / "cells").mkdir(parents=True)
        (sources[seed]["metrics"] / "cells/ptq-sym-8-full.json").write_text('{"bleu": 1.0}')
    with pytest.raises(SystemExit, match=r"seed 1234: .*cannot show.*dvc repro evaluate"):
        check(up_to_date=cells_only)
    check(up_to_date=lambda clone, path: False)   # nothing to add: nothing to check
    for f in (out / "seed2/cells").glob("*.json"):    # a seed with no recorded cells takes any baseline
        f.unlink()
    check()
    # two clones whose locks record different models of seed 2 are not collected together
    for clone, md5 in ((project, "a" * 32 + ".dir"), (tmp_path / "other", "b" * 32 + ".dir")):
        clone.mkdir(exist_ok=True)
        (clone / "dvc.lock").write_text(yaml.safe_dump({"stages": {"seed_train@2": {
            "outs": [{"path": "data/seeds/2/model", "md5": md5}]}}}))
    check(project)
    with pytest.raises(SystemExit, match="seed 2: the clones hold 2 different baselines"):
        check(project, tmp_path / "other")

    deltas = [{"a": "baseline", "b": "ptq-sym-8-full", "seeds": [1234, 2]},
              {"a": "baseline", "b": "ptq-sym-4-full", "seeds": [1234]}]
    (out / "deltas.json").write_text(json.dumps({"deltas": deltas}))
    (out / "pairs.json").write_text(json.dumps({"pairs": [{"a": "x", "b": "y", "seeds": [2]}]}))
    assert record_run.forget_seed(out, 2) == 2
    assert not (out / "seed2").exists() and (out / "seed1234/cells/ptq-sym-8-full.json").exists()
    assert json.loads((out / "deltas.json").read_text())["deltas"] == deltas[1:]
    assert json.loads((out / "pairs.json").read_text())["pairs"] == []


def test_a_comparison_takes_a_seed_the_clone_no_longer_holds_from_the_record_s_own_translations(tmp_path):
    """The record keeps each seed's translations (gzip'd, the same bytes for the same text), so a clone
    holding seed 1234 alone computes a comparison over seeds 1234 and 2; a kept file that is not what
    hyps.sha256 names is not used."""
    project, collected = tmp_path / "project", tmp_path / "record"
    references = ["a small dog runs on the grass", "two men ride their bikes down the street",
                  "a woman is reading a book in the park", "children play football at the beach"]
    (project / "data/prepared").mkdir(parents=True)
    pd.DataFrame({"source": references, "target": references}).to_parquet(project / "data/prepared/test.parquet")
    gone = tmp_path / "gone"   # the clone that ran seed 2, of which only the record is left
    for seed, root in ((1234, project), (2, gone)):
        src = record_run.seed_sources(root, [seed])[seed]
        dest = collected / f"seed{seed}"
        (dest / "cells").mkdir(parents=True)
        hashes = []
        for name, path, text in (("baseline.greedy", src["eval"] / "baseline.greedy.txt", references),
                                 ("ptq-sym-4-full", src["cells"] / "ptq-sym-4-full/hyps.txt",
                                  ["a dog runs on grass", *references[1:]])):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(line + "\n" for line in text))
            record_run.keep_translations(dest, name, path)
            hashes.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n")
        (dest / "hyps.sha256").write_text("".join(hashes))
        (src["metrics"] / "cells").mkdir(parents=True)
        metrics = json.dumps({"cell": "ptq-sym-4-full", "method": "ptq"})
        (src["metrics"] / "cells/ptq-sym-4-full.json").write_text(metrics)
        (dest / "cells/ptq-sym-4-full.json").write_text(metrics)
    kept = collected / "seed2/hyps/ptq-sym-4-full.txt.gz"
    packed = kept.read_bytes()
    record_run.keep_translations(collected / "seed2", "ptq-sym-4-full", gone / "data/cells/ptq-sym-4-full/hyps.txt")
    assert kept.read_bytes() == packed                      # no time stamp: the same text, the same bytes
    shutil.rmtree(gone)
    pair = [("baseline", "ptq-sym-4-full")]
    (both,) = record_run.compare_pairs(project, [1234], pair, collected)
    assert both["seeds"] == [1234, 2] and both["delta_mean"] < 0
    assert both["inputs"]["2"] == [line.split()[0] for line in (collected / "seed2/hyps.sha256").read_text().splitlines()]
    kept.write_bytes(gzip.compress(b"something else\n", mtime=0))   # not the translations the record names
    (one,) = record_run.compare_pairs(project, [1234], pair, collected)
    assert one["seeds"] == [1234]


def test_side_by_side_stops_what_runs_past_the_deadline_with_every_process_it_started(tmp_path):
    """The workers' runner: each job's output in its log, the failed ones named, and at the deadline
    a job still running is stopped together with the processes it started (a worker's `dvc repro`
    and its stage)."""
    child = tmp_path / "child.pid"
    slow = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
            f"open({str(child)!r}, 'w').write(str(p.pid)); print('started', flush=True); time.sleep(120)")
    jobs = [("quick", [sys.executable, "-c", "print('done')"]), ("fails", [sys.executable, "-c", "raise SystemExit(3)"]),
            ("slow", [sys.executable, "-c", slow])]
    started = time.time()
    failed = record_run.side_by_side(jobs, tmp_path / "logs", deadline=time.time() + 3)
    assert failed == ["fails", "slow (stopped at the deadline)"]
    assert time.time() - started < 60
    assert (tmp_path / "logs/quick.log").read_text() == "done\n"
    assert "started" in (tmp_path / "logs/slow.log").read_text()
    pid = int(child.read_text())
    for _ in range(50):   # the grandchild went with its group
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"process {pid}, started by the stopped job, still runs")


@pytest.mark.slow
def test_the_device_script_runs_a_two_seed_record_on_workers_and_packs_what_the_clone_collected(tmp_path, shared_cache):
    """`benchmarks/record/device.sh` (here on the CPU, TINY's grid, seeds 1234 and 5, two workers):
    two clones beside the project on its DVC cache train the two baselines side by side, then split
    both seeds' cells between them; their outputs are collected together (the project computes
    nothing): both seeds' metrics, translations and two-seed comparisons, which the script packs
    with the workers' logs."""
    work = tmp_path / "work"
    (work / "record").mkdir(parents=True)
    make_project(work / "record", tiny_params(), shared_cache)
    (tmp_path / "record.yaml").write_text(yaml.safe_dump({"catalog": {"seeds": [5]}, "set": ["seeds=[1234,5]"]}))
    (tmp_path / "data").mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "WORK": str(work),
           "OUT": str(tmp_path / "out"), "DEVICE": "cpu", "WORKERS": "2", "PARTS": "main", "DATA": str(tmp_path / "data"),
           "WHEELS": str(tmp_path / "none"), "RECORD": str(tmp_path / "record.yaml"), "CLAIMS": str(tmp_path / "none.yaml")}
    done = subprocess.run(["bash", str(RECORD / "device.sh")], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for i in (0, 1):   # each worker had cells of both seeds (run there or restored)
        log = (work / f"record.logs/record.{i}.log").read_text()
        stages = ran_stages(log) | restored_stages(log)
        assert any(s.startswith("seed_cell@") for s in stages) and any(s.startswith("cell@") for s in stages), i
    collecting = done.stdout.split("== main", 1)[1]
    assert not {s for s in ran_stages(collecting) if "cell@" in s or "train" in s}   # the project computed none
    with tarfile.open(tmp_path / "out/record.tgz") as tar:
        tar.extractall(tmp_path / "unpacked")
    out = tmp_path / "unpacked/results/main"
    expected = {"ptq-sym-8-full", "qat-control", "qat-sym-4-full", "agp-10-70-1-full", "imp-full"}
    for seed in (1234, 5):
        assert expected <= {p.stem for p in (out / f"seed{seed}/cells").glob("*.json")}, seed
        assert json.loads((out / f"seed{seed}/baseline.json").read_text())["checkpoint_bytes"] > 0
        assert (out / f"seed{seed}/hyps/baseline.greedy.txt.gz").exists()
    deltas = {(d["a"], d["b"]): d for d in json.loads((out / "deltas.json").read_text())["deltas"]}
    assert deltas[("baseline", "ptq-sym-8-full")]["seeds"] == [1234, 5]
    assert deltas[("qat-control", "qat-sym-4-full")]["n"] == 2
    assert (tmp_path / "out/logs.tgz").exists() and "== main" in (tmp_path / "out/record.log").read_text()
