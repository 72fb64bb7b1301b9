"""What an unselected catalog cell costs, and what reruns when code or the catalog changes.

    python benchmarks/catalog_overhead.py --project /tmp/fresh

``--project`` is a clone whose default `dvc repro` has finished; the script works on a copy of it.
It measures, with DVC's own commands:

1. a no-op `dvc repro` with the catalog as committed;
2. the catalog grown (more bits, groups and schedules), `tcompress catalog`, then the first
   `dvc repro` (every new cell is unselected: it runs once to write its 'off' marker) and a no-op
   `dvc repro` again: the per-cell overhead of the catalog is the difference over the added cells;
3. an edit of one method's file (a comment in tcompress/methods/ptq/__init__.py): which stages run.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml


def dvc(project: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(project),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - start, proc.stdout


def ran(out: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", out)


def n_cells(project: Path) -> int:
    return len(yaml.safe_load((project / "stages/cells.yaml").read_text())["cells"])


@click.command()
@click.option("--project", required=True, type=click.Path(exists=True, file_okay=False))
def main(project: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "project"
        shutil.copytree(project, work, symlinks=True)
        env_python = [sys.executable, "-m", "tcompress.cli", "catalog"]
        small = n_cells(work)
        t_small, out = dvc(work, "repro")
        assert not ran(out), f"the project is not up to date: {ran(out)}"
        click.echo(f"1. no-op dvc repro, {small} catalog cells (one stage each): {t_small:.2f} s")

        params = yaml.safe_load((work / "params.yaml").read_text())
        params["catalog"]["ptq"]["bits"] = [16, 8, 6, 5, 4, 3, 2]
        params["catalog"]["qat"]["bits"] = [16, 8, 6, 5, 4, 3, 2]
        params["catalog"]["agp"]["schedules"] = ["10-70-1", "45-70-3", "90-100-1", "20-80-2", "50-90-2"]
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        subprocess.run(env_python, cwd=work, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(work)})
        large = n_cells(work)
        t_first, out = dvc(work, "repro")
        stages = ran(out)
        heavy = [s for s in stages if s.startswith("cell@")]
        click.echo(f"2. catalog grown to {large} cells: first dvc repro {t_first:.1f} s, ran {len(stages)} stages "
                   f"({len(heavy)} stages of new, unselected cells: {t_first / max(len(heavy), 1):.2f} s each, once)")
        t_large, out = dvc(work, "repro")
        assert not ran(out)
        per_cell = (t_large - t_small) / (large - small)
        click.echo(f"   no-op dvc repro with {large} cells: {t_large:.2f} s; overhead per added unselected cell "
                   f"{per_cell * 1000:.1f} ms")

        with open(work / "tcompress/methods/ptq/__init__.py", "a") as f:
            f.write("\n# an edit that changes no result\n")
        t_edit, out = dvc(work, "repro")
        click.echo(f"3. a comment added to tcompress/methods/ptq/__init__.py: dvc repro {t_edit:.1f} s, ran: {', '.join(ran(out))}")


if __name__ == "__main__":
    main()
