"""A stage runs its own repository's code, whatever else is on sys.path.

DVC hashes the files of the clone it runs in. A second copy of the project (another clone, or the
temporary copy DVC's experiment queue runs each experiment in) run with this checkout's package
first on PYTHONPATH, as an editable install of this checkout would put it, must still import the
copy's own package: else DVC would record the copy's hashes for this checkout's results.
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


def test_a_stage_runs_its_own_copys_package_before_another_on_pythonpath(tmp_path):
    project = second_copy(tmp_path)
    for pythonpath in (REPO, project):
        done = run_off_cell(project, pythonpath=pythonpath)
        assert done.returncode == 0, done.stderr
        assert MARK in done.stderr, pythonpath
        assert json.loads((project / "metrics.json").read_text()) == {}
        (project / "metrics.json").unlink()


def test_every_stage_script_puts_its_repository_first_before_importing_the_package():
    line = "sys.path.insert(0, str(Path(__file__).resolve().parents[1]))"
    for script in sorted((REPO / "stages").glob("*.py")):
        text = script.read_text()
        first_import = min(text.index(s) for s in ("\nfrom tcompress", "\nimport tcompress") if s in text)
        assert line in text[:first_import], f"{script.name}: {line} must come before it imports tcompress"
