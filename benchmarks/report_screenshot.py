"""The README's picture of the HTML report: metrics/report.png, the page's first screen and first plot.

    python benchmarks/report_screenshot.py                                 # from the committed metrics
    python benchmarks/report_screenshot.py --html metrics/report.html      # the aggregate stage's page

Without --html it builds the report as the aggregate stage does, from metrics/baseline.json,
metrics/cells/ and metrics/train_curve.json, taking the 95 % intervals from metrics/significance.json
(a checkout without data/cells/*/hyps.txt cannot bootstrap them again), and prints how long that
took. The screenshot comes from headless Chromium with the network cut off.
"""

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import click

from tcompress.report import write_report
from tcompress.results import collect

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
OFFLINE = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--proxy-server=127.0.0.1:9",
           "--proxy-bypass-list=<-loopback>"]


def with_intervals(frame, significance: dict):
    """The committed intervals, p-values and significance marks, by cell."""
    frame = frame.copy()
    frame["significant"] = frame["significant"].astype(object)
    for cell, values in significance.items():
        rows = frame.index[frame["cell"] == cell]
        for column, value in values.items():
            if column in frame and value is not None:
                frame.loc[rows, column] = value
    return frame


@click.command()
@click.option("--metrics", default="metrics", type=click.Path(exists=True, file_okay=False))
@click.option("--cell-dirs", default="data/cells", help="trained cells' cell.json (fine-tuning curves), if present")
@click.option("--html", "html_file", type=click.Path(exists=True, dir_okay=False),
              help="screenshot this report instead of building one")
@click.option("--out", default="metrics/report.png", type=click.Path(dir_okay=False))
@click.option("--size", default="1280,1500", help="window width,height in pixels: the part of the page shown")
def main(metrics: str, cell_dirs: str, html_file: str | None, out: str, size: str) -> None:
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        raise click.ClickException("no chromium on PATH (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as work:
        if html_file is None:
            m = Path(metrics)
            start = time.perf_counter()
            frame = collect(m / "baseline.json", m / "cells")
            if (m / "significance.json").exists():
                frame = with_intervals(frame, json.loads((m / "significance.json").read_text()))
            html = write_report(Path(work) / "report.html", frame, m / "baseline.json", None,
                                m / "train_curve.json", cell_dirs)
            click.echo(f"built {html}: {len(frame) - 1} cells, {html.stat().st_size:,} bytes in "
                       f"{time.perf_counter() - start:.2f} s")
        else:
            html = Path(html_file)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([browser, *OFFLINE, f"--user-data-dir={Path(work) / 'profile'}", f"--window-size={size}",
                        f"--screenshot={Path(out).resolve()}", html.resolve().as_uri()],
                       check=True, capture_output=True, timeout=180)
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
