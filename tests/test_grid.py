"""The compression grid through real DVC commands on the tiny configuration.

One project (its baseline, and the cells the session's shared project also has, restored from the
shared run-cache), PTQ alone so that the summary and `dvc metrics diff` speak of its cells only; its
catalog is the grid's values and their neighbours. Each test changes the grid the way a user would
and checks what DVC ran: only the affected cells (and resolve, plan and the aggregate, which take a
second), never prepare/tokenize/train.
"""

import json

import pandas as pd
import pytest
import sacrebleu
import yaml

from conftest import cell_stage_without_torch, dvc, make_project, ran_stages, run, tiny_catalog, tiny_params
from tcompress.data.corpora import read_split

pytestmark = pytest.mark.slow
UPSTREAM = ("prepare", "tokenize", "train", "evaluate")
BOOKKEEPING = {"resolve", "plan", "aggregate"}


def cell_metrics(project, cell: str) -> dict:
    return json.loads((project / "metrics" / "cells" / f"{cell}.json").read_text())


def commit_all(project, message: str) -> None:
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", message], project)


@pytest.fixture(scope="module")
def grid_project(tmp_path_factory, shared_cache):
    """Trained tiny project whose grid is the four 8-bit PTQ cells {sym, asym} x {ff, full}, committed."""
    catalog = tiny_catalog(ptq={"bits": [8, 4], "modes": ["sym", "asym"], "groups": ["ff", "att", "full"]})
    params = tiny_params(bits=8, modes=["sym", "asym"], groups=["ff", "full"], methods=["ptq"], catalog=catalog)
    project = make_project(tmp_path_factory.mktemp("grid"), params, shared_cache)
    dvc(["repro"], project)
    commit_all(project, "8-bit grid")
    return project


def test_repro_computes_selected_cells_and_aggregates(grid_project):
    baseline = json.loads((grid_project / "metrics/baseline.json").read_text())
    n_model = baseline["parameters"]
    for mode in ("sym", "asym"):
        for group in ("ff", "full"):
            m = cell_metrics(grid_project, f"ptq-{mode}-8-{group}")
            n_c = baseline["group_parameters"][group]
            assert m["n_compressed"] == n_c
            assert m["compression_ratio"] == pytest.approx(n_model * 32 / (n_c * 8 + (n_model - n_c) * 32), abs=1e-4)
            assert m["decoding"] == "greedy" and m["precision"] == "fp32"   # calibration and decoding
            # the score is sacrebleu's on the cell's own hypotheses file
            hyps = (grid_project / f"data/cells/ptq-{mode}-8-{group}/hyps.txt").read_text().split("\n")[:-1]
            refs = read_split(grid_project / "data/prepared/test.parquet")[1]
            assert m["bleu"] == round(sacrebleu.corpus_bleu(hyps, [refs]).score, 4)
    assert cell_metrics(grid_project, "ptq-sym-8-full")["compression_ratio"] == 4.0
    # Catalog cells outside the grid exist as stages but hold no numbers.
    assert cell_metrics(grid_project, "ptq-sym-4-ff") == {}
    assert cell_metrics(grid_project, "ptq-asym-8-att") == {}

    frame = pd.read_parquet(grid_project / "data/results/results.parquet")
    assert sorted(frame["cell"]) == sorted(["baseline", "ptq-sym-8-ff", "ptq-sym-8-full", "ptq-asym-8-ff", "ptq-asym-8-full"])
    assert frame.set_index("cell").at["baseline", "bleu"] == baseline["greedy"]["bleu"]
    assert pd.read_csv(grid_project / "metrics/results.csv").shape[0] == 5
    summary = json.loads((grid_project / "metrics/summary.json").read_text())
    assert summary["cells"] == 4 and summary["baseline_bleu"] == baseline["greedy"]["bleu"]
    full_bleus = [cell_metrics(grid_project, f"ptq-{m}-8-full")["bleu"] for m in ("sym", "asym")]
    assert summary["best_bleu_at_4x"] == max(full_bleus) and summary["best_bleu_at_8x"] is None
    tables = (grid_project / "metrics/tables.md").read_text()
    assert "| 8-bit Asym. |" in tables and "| 8-bit Sym. |" in tables and "| FF | FULL |" in tables
    points = json.loads((grid_project / "metrics/bleu_vs_ratio.json").read_text())
    assert {p["series"] for p in points} == {"baseline", "ptq/sym", "ptq/asym"}


def test_exp_run_with_scalar_bits_runs_only_those_cells(grid_project):
    out = dvc(["exp", "run", "-S", "bits=4"], grid_project).stdout
    stages = ran_stages(out)
    assert not stages & set(UPSTREAM), out
    computed = {s for s in stages if s.startswith("cell@")}
    # 4-bit cells computed (or restored from the run-cache the test projects share), 8-bit ones off
    # (a cell whose plan another test project already ran is restored from the shared run-cache instead)
    assert computed <= {f"cell@ptq-{m}-{b}-{g}" for m in ("sym", "asym") for b in (8, 4) for g in ("ff", "full")}
    assert "aggregate" in stages
    # 4-bit cells now have numbers; the 8-bit ones were switched off, nothing else was touched.
    assert cell_metrics(grid_project, "ptq-sym-4-full")["compression_ratio"] == 8.0
    assert cell_metrics(grid_project, "ptq-sym-8-full") == {}
    assert not any(s.endswith("-att") for s in stages)

    diff = json.loads(dvc(["metrics", "diff", "--json"], grid_project).stdout)
    assert "metrics/cells/ptq-sym-4-full.json" in diff and "bleu" in diff["metrics/cells/ptq-sym-4-full.json"]
    assert diff["metrics/summary.json"]["best_bleu_at_8x"]["old"] is None
    assert diff["metrics/summary.json"]["best_bleu_at_8x"]["new"] is not None

    # Back to the committed grid: every cell comes back from DVC's run-cache, nothing is recomputed.
    run(["git", "checkout", "-q", "--", "params.yaml"], grid_project)
    back = dvc(["repro"], grid_project).stdout
    assert ran_stages(back) <= BOOKKEEPING, back
    assert cell_metrics(grid_project, "ptq-sym-8-full")["compression_ratio"] == 4.0
    run(["git", "checkout", "-q", "--", "."], grid_project)


def test_one_new_grid_value_reruns_only_its_cells(grid_project):
    params = yaml.safe_load((grid_project / "params.yaml").read_text())
    params["groups"] = ["ff", "att", "full"]
    (grid_project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        out = dvc(["repro"], grid_project).stdout
        stages = ran_stages(out)
        # before any cell runs, resolve says what will be computed and what it should take
        assert "2 cells with new settings: about" in out
        assert stages - BOOKKEEPING <= {"cell@ptq-sym-8-att", "cell@ptq-asym-8-att"} and "aggregate" in stages
        assert cell_metrics(grid_project, "ptq-asym-8-att")["group"] == "att"
    finally:
        run(["git", "checkout", "-q", "--", "."], grid_project)
        dvc(["repro"], grid_project)


# Every other bad value is checked in process (tests/test_config.py): the same loader, no DVC needed.
@pytest.mark.parametrize("key, value, named", [("groups", ["ff", "convs"], "convs"), ("bits", 3, "catalog.ptq.bits")])
def test_bad_grid_value_fails_before_any_cell(grid_project, key, value, named):
    params = yaml.safe_load((grid_project / "params.yaml").read_text())
    params[key] = value
    (grid_project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        proc = dvc(["repro"], grid_project, check=False)
        assert proc.returncode != 0
        assert named in proc.stderr + proc.stdout
        assert not ran_stages(proc.stdout) - {"resolve"}, proc.stdout
    finally:
        run(["git", "checkout", "-q", "--", "."], grid_project)


def test_push_then_fresh_clone_pull_runs_nothing(grid_project, tmp_path):
    remote = tmp_path / "remote"
    dvc(["remote", "add", "-d", "team", str(remote)], grid_project)
    dvc(["push", "--run-cache"], grid_project)
    commit_all(grid_project, "team remote")
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(grid_project), str(clone)], tmp_path)
    dvc(["pull", "--run-cache"], clone)
    out = dvc(["repro"], clone).stdout
    assert not ran_stages(out), out
    assert cell_metrics(clone, "ptq-sym-8-full") == cell_metrics(grid_project, "ptq-sym-8-full")
    assert (clone / "data/cells/ptq-sym-8-full/model.safetensors").read_bytes() == \
        (grid_project / "data/cells/ptq-sym-8-full/model.safetensors").read_bytes()


def test_off_cell_never_imports_torch(tmp_path):
    cell_stage_without_torch({"cell": "ptq-sym-4-ff", "selected": False}, tmp_path)
    assert json.loads((tmp_path / "cell" / "off.json").read_text())["selected"] is False
    assert json.loads((tmp_path / "m.json").read_text()) == {}
