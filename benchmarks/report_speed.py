"""How long the aggregate's HTML report takes to build, and how big it is, at the size of a grid.

Usage (from a workspace where `dvc repro` has run):
    python benchmarks/report_speed.py --baseline metrics/baseline.json --cells metrics/cells \
        --train-curve metrics/train_curve.json --cell-dirs data/cells --copies 10

Builds the results frame as the aggregate stage does (without re-running the bootstrap) and times
``write_report`` alone. ``--copies N`` repeats every cell N times under new names (``<cell>~k``, group ``<group>~k``), to
reach the size of the thesis's Multi30k grids (about 130 cells) from a smaller workspace.
"""

import tempfile
import time
from pathlib import Path

import click
import pandas as pd

from tcompress.report import write_report
from tcompress.results import collect


@click.command()
@click.option("--baseline", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--cells", "cells_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--train-curve", type=click.Path(exists=True, dir_okay=False))
@click.option("--cell-dirs", type=click.Path(exists=True, file_okay=False))
@click.option("--copies", default=1, show_default=True)
def main(baseline, cells_dir, train_curve, cell_dirs, copies):
    frame = collect(baseline, cells_dir)
    cells = frame[frame["method"] != "baseline"]
    # A copy's layer group is renamed too, so every copy is its own table entry.
    extra = [cells.assign(cell=cells["cell"] + f"~{k}", group=cells["group"] + f"~{k}") for k in range(1, copies)]
    frame = pd.concat([frame, *extra], ignore_index=True)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        page = write_report(Path(tmp) / "report.html", frame, baseline, None, train_curve, cell_dirs)
        seconds = time.perf_counter() - start
        size = page.stat().st_size
    print(f"report of {int((frame['method'] != 'baseline').sum())} cells: {seconds:.2f} s, {size:,} bytes")


if __name__ == "__main__":
    main()
