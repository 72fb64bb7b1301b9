"""dvc.yaml cannot go stale: each stage lists the code it runs, and each cell's plan hashes its own.

A stage's code is the import closure of its script within tcompress/ (tcompress.closure, lazy
imports included). The plan stage hashes the closure of the cell stages into each cell's plan file,
with that cell's own method file and no other method's.
"""

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from tcompress.closure import closure
from tcompress.plan import CELL_SCRIPT, code_digest

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
# every stage that lists its own code (a seed's stages included); a cell's or a chain's code is
# hashed into its plan file instead (below)
PLAIN = {name: s.get("do", s) for name, s in STAGES.items() if name not in ("cell", "chain", "seed_cell", "seed_chain")}


def _script(cmd: str) -> Path:
    words = cmd.split()
    return Path(words[words.index("python") + 1])


def _covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in deps)


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_every_stage_depends_on_the_code_it_imports(name):
    stage = PLAIN[name]
    script = _script(stage["cmd"])
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]]
    assert _covered(script, deps), f"{name}: its script {script} is not a dependency"
    files = closure([REPO / script], REPO)
    missing = [str(f) for f in files if not _covered(f, deps)]
    assert not missing, f"dvc.yaml stage {name!r} imports but does not depend on: {', '.join(missing)}"
    # and no more: code it never imports would rerun it for nothing (a method's edit, the baseline's evaluation)
    extra = [d for d in deps if d.startswith("tcompress/") and not any(_covered(f, [d]) for f in files)]
    assert not extra, f"dvc.yaml stage {name!r} depends on code it does not import: {', '.join(extra)}"


def test_cell_stages_depend_on_their_plan_file_alone():
    cell = STAGES["cell"]["do"]
    assert cell["deps"] == ["data/plan/cells/${item}.json"]
    assert "params" not in cell


def test_closure_follows_lazy_imports_and_the_method_registry():
    files = {str(f) for f in closure([REPO / CELL_SCRIPT], REPO)}
    # imported inside main() only, after the off-cell early return
    assert {"tcompress/runner.py", "tcompress/training.py", "tcompress/compress/linear_quant.py",
            "tcompress/tokenizer.py", "tcompress/model.py"} <= files
    # tcompress.methods loads every module of its package
    assert {"tcompress/methods/ptq/__init__.py", "tcompress/methods/agp.py"} <= files
    assert "tcompress/results.py" not in files


def test_a_cells_code_hash_changes_with_its_code_only(tmp_path):
    for part in ("tcompress", "stages"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))

    def digests():
        return {m: code_digest(m, CELL_SCRIPT, tmp_path) for m in ("ptq", "agp")}

    before = digests()
    with open(tmp_path / "tcompress/methods/agp.py", "a") as f:
        f.write("\n# an edit\n")
    after = digests()
    assert after["agp"] != before["agp"]
    assert after["ptq"] == before["ptq"]   # another method's file
    with open(tmp_path / "tcompress/compress/linear_quant.py", "a") as f:
        f.write("\n# an edit\n")
    assert digests()["ptq"] != after["ptq"]
    with open(tmp_path / "tcompress/results.py", "a") as f:   # the aggregate's code, not a cell's
        f.write("\n# an edit\n")
    assert digests() == digests()
    unchanged = digests()
    with open(tmp_path / "tcompress/results.py", "a") as f:
        f.write("\n# another edit\n")
    assert digests() == unchanged


@pytest.mark.parametrize("name", ["train", "evaluate", "teacher", "calibrate", "sensitivity"])
def test_no_stage_before_the_cells_runs_a_methods_code(name):
    # editing a method reruns its cells, never a seed's baseline, its decode, statistics or sensitivities
    script = _script(PLAIN[name]["cmd"])
    runs = {str(f) for f in closure([REPO / script], REPO)}
    assert not {f for f in runs if f.startswith("tcompress/methods/")}
    assert "tcompress/loader.py" not in runs   # the float baseline's own loader reads it (tcompress.baseline)
