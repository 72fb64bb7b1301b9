"""A stage runs its own repository's code, or refuses in one line.

DVC hashes the files of the clone it runs in; a stage imports whichever ``tcompress`` comes first on
sys.path. A second copy of the project run with this checkout's package first (as an editable
install of another clone would put it) must refuse rather than record the copy's hashes for this
checkout's results; run with its own package, it runs its own code.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARK = "imported from the second copy"


def second_copy(tmp_path: Path) -> Path:
    """stages/ and tcompress/ copied; the copy's package says so when it is imported."""
    project = tmp_path / "second"
    for part in ("stages", "tcompress"):
        shutil.copytree(REPO / part, project / part, ignore=shutil.ignore_patterns("__pycache__"))
    with open(project / "tcompress" / "__init__.py", "a") as f:
        f.write(f"\nimport sys as _sys\n_sys.stderr.write({MARK!r} + '\\n')\n")
    return project


def run_off_cell(project: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    """The cell stage on a switched-off cell's plan: torch-free, it only writes a marker."""
    plan = project / "plan.json"
    plan.write_text(json.dumps({"cell": "ptq-sym-8-ff", "selected": False}))
    args = ["--plan", str(plan), "--baseline", "b", "--tokenized", "t", "--valid", "v", "--test", "t",
            "--resume", "r", "--out", "out", "--metrics", "metrics.json"]
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([sys.executable, "stages/cell.py", *args], cwd=project, env=env,
                          capture_output=True, text=True)


def test_a_stage_run_with_another_copys_package_refuses_in_one_line(tmp_path):
    project = second_copy(tmp_path)
    done = run_off_cell(project, pythonpath=REPO)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cell.py is "), done.stderr
    assert str(project.resolve()) in lines[0] and str((REPO / "tcompress").resolve()) in lines[0]
    assert "pip install -e ." in lines[0] and f"PYTHONPATH={project.resolve()}" in lines[0]
    assert not (project / "out").exists() and not (project / "metrics.json").exists()


def test_a_stage_run_with_its_own_package_runs_its_own_code(tmp_path):
    project = second_copy(tmp_path)
    done = run_off_cell(project, pythonpath=project)
    assert done.returncode == 0, done.stderr
    assert MARK in done.stderr
    assert json.loads((project / "metrics.json").read_text()) == {}
