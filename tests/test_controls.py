"""Controls: a control's plan holds the budget it trains on and nothing else, and controls that would
train the same model are trained once (``tcompress.plan.share_controls``)."""

import json

import yaml

from conftest import REPO, cell_stage_without_torch, tiny_params
from tcompress.params import params_from_dict
from tcompress.plan import resolve
from tcompress.preview import estimate_line


def cells(**overrides) -> dict:
    raw = tiny_params(methods=["qat", "agp", "imp", "lottery"],
                      catalog={"lottery": {"sparsities": [50], "inits": ["rewind", "random"], "groups": ["full"]}})
    for section, values in overrides.items():
        raw[section] |= values
    return resolve(params_from_dict(raw))["cells"]["cells"]


def same_budget(**extra) -> dict:
    """QAT's, AGP's and IMP's budgets made equal, as they are in the repository's params.yaml."""
    budget = {"epochs": 1, "lr": 1.0e-3, "warmup_steps": 2, "train_sentences": 100}
    return {m: budget | extra.get(m, {}) for m in ("qat", "agp", "imp")}


def test_a_controls_plan_holds_its_budget_only():
    base = cells()
    # A pruning schedule is the pruned cells' setting, not the control's: its entry does not change.
    for section, key, value in (("agp", "end", 6), ("agp", "start", 1), ("imp", "rounds", 3), ("imp", "fraction", 0.3)):
        changed = cells(**{section: {key: value}})
        assert changed[f"{section}-control"] == base[f"{section}-control"], key
        assert changed != base, key   # ... while the pruned cell's entry does
    assert sorted(base["agp-control"]["params"]) == ["epochs", "from_scratch", "keep", "lr", "train_sentences",
                                                     "warmup_steps"]
    # The budget is: a changed learning rate changes the control's entry.
    assert cells(agp={"lr": 5.0e-4})["agp-control"] != base["agp-control"]
    # A ticket's control starts where a rewound ticket does, so it reads rewind_step too.
    assert base["lottery-control"]["params"]["rewind_step"] == 0
    assert cells(lottery={"rewind_step": 3})["lottery-control"] != base["lottery-control"]


def test_controls_with_one_budget_are_trained_once():
    shared = cells(**same_budget())
    assert "same_as" not in shared["qat-control"] and shared["qat-control"]["params"]["lr"] == 1.0e-3
    for method in ("agp", "imp"):
        assert shared[f"{method}-control"] == {"cell": f"{method}-control", "selected": True, "method": method,
                                               "control": True, "same_as": "qat-control"}
    # The lottery control starts from θ₀, not from the baseline: it is never shared.
    assert "same_as" not in shared["lottery-control"]
    # A budget that differs trains its own control ...
    apart = cells(**same_budget(imp={"lr": 5.0e-4}))
    assert apart["agp-control"]["same_as"] == "qat-control" and "same_as" not in apart["imp-control"]
    # ... and when the first control's budget changes, the next one trains and the rest share it.
    moved = cells(**same_budget(qat={"lr": 5.0e-4}))
    assert "same_as" not in moved["agp-control"] and moved["imp-control"]["same_as"] == "agp-control"
    # `tcompress plan` estimates nothing for a shared control: its stage writes a marker.
    assert estimate_line({}, {"imp-control": shared["imp-control"]}, {"imp": 90.0}).startswith(
        "1 cells with new settings: about 0.0 min")


def test_a_shared_controls_stage_writes_a_marker_without_torch(tmp_path):
    entry = {"cell": "agp-control", "selected": True, "method": "agp", "control": True, "same_as": "qat-control"}
    (tmp_path / "cell").mkdir()
    (tmp_path / "cell" / "model.safetensors").write_text("stale")   # a previous run's artifact goes
    proc = cell_stage_without_torch(entry, tmp_path)
    assert "agp-control: the same training as qat-control" in proc.stdout
    assert [p.name for p in (tmp_path / "cell").iterdir()] == ["same_as.json"]
    assert json.loads((tmp_path / "m.json").read_text()) == {k: entry[k] for k in ("cell", "method", "control",
                                                                                     "same_as")}


def test_the_default_grid_trains_one_control_for_qat_agp_and_imp():
    """What the README says of the repository's params.yaml."""
    shared = resolve(params_from_dict(yaml.safe_load((REPO / "params.yaml").read_text())))["cells"]["cells"]
    assert {c: e.get("same_as") for c, e in shared.items() if e["control"]} == \
        {"qat-control": None, "agp-control": "qat-control", "imp-control": "qat-control"}


def test_tcompress_plan_names_the_control_that_trains_a_shared_one(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tcompress.cli import main

    raw = tiny_params(methods=["qat", "agp", "imp"])
    for section, budget in same_budget(imp={"lr": 5.0e-4}).items():
        raw[section] |= budget
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["plan"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if "-control" in line.split()[0]}
    assert lines["agp-control"].endswith("new or changed, ~0 s; the model qat-control trains (the same budget)")
    assert "the model" not in lines["qat-control"] and "the model" not in lines["imp-control"]


def test_resolve_says_what_the_baseline_costs_before_it_trains():
    from tcompress.preview import baseline_line

    last = {"wall_seconds": 150.0, "steps": 312, "precision": "fp32", "config_md5": "abc"}
    assert baseline_line("abc", True, last) == "the baseline is trained (data/model, this config)"
    fresh = baseline_line("abc", False, last)   # a fresh clone: the committed metrics, no checkpoint
    assert "its last measured run of this config took 2.5 min (312 steps, fp32" in fresh
    assert "of another config took 2.5 min" in baseline_line("def", True, last)
    assert "no measured run" in baseline_line("abc", False, None)
