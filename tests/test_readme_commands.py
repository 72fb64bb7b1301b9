"""The README's `dvc exp run -S …` commands work: parsed out of README.md (so the docs cannot drift
from what works), each override applied to params.yaml by DVC's own code, then loaded and planned.

Running them through `dvc exp run` takes minutes to hours (BENCHMARKS.md lists their costs); what
can go wrong before any stage computes (DVC refusing an override, a value the loader rejects, a
grid value outside the catalog) is checked here in seconds.
"""

import shlex
import shutil

import pytest
from dvc.utils.hydra import apply_overrides

from conftest import REPO
from tcompress.grid import selected_cells
from tcompress.params import load_params


def readme_commands(prefix: str = "dvc exp run") -> list[str]:
    commands, in_code, pending = [], False, ""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if not in_code:
            continue
        line = pending + line.split("  #")[0].strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line.startswith(prefix):
            commands.append(line)
    return commands


COMMANDS = readme_commands()


def overrides(command: str) -> list[str]:
    words = shlex.split(command)
    return [words[i + 1] for i, w in enumerate(words) if w in ("-S", "--set-param")]


def test_the_readme_shows_exp_run_commands():
    assert len(COMMANDS) >= 6 and any("-S bits=4" in c for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_exp_run_command_is_accepted(command, tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    apply_overrides(params, overrides(command))   # raises where DVC itself would refuse the override
    loaded = load_params(params)
    assert selected_cells(loaded) or not loaded.methods


def test_scalar_and_list_overrides_select_what_they_say(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    apply_overrides(params, ["bits=4"])
    ptq = [c for c in selected_cells(load_params(params)) if c.method == "ptq"]
    assert {c["bits"] for c in ptq} == {4} and len(ptq) == 4
    apply_overrides(params, ["bits=[8,4]", "groups=[ff,att]", "modes=sym"])
    ptq = [c.id for c in selected_cells(load_params(params)) if c.method == "ptq"]
    assert ptq == ["ptq-sym-8-ff", "ptq-sym-8-att", "ptq-sym-4-ff", "ptq-sym-4-att"]


VIEW_PREFIXES = ("dvc metrics show", "dvc metrics diff", "dvc plots show", "dvc dag", "dvc exp show", "dvc status")


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted({c for c in readme_commands("dvc") if c.startswith(VIEW_PREFIXES)}))
def test_readme_view_commands_run_on_a_finished_pipeline(command, tiny_pipeline):
    from conftest import dvc

    dvc(shlex.split(command)[1:], tiny_pipeline)   # fails the test on a non-zero exit


def test_the_readme_shows_the_views_it_promises():
    views = [c for c in readme_commands("dvc") if c.startswith(VIEW_PREFIXES)]
    assert {"dvc metrics show metrics/summary.json", "dvc dag --mermaid", "dvc plots show"} <= set(views)
