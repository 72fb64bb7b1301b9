"""What one lock update costs DVC: reading a dvc.lock and writing it back with DVC's own YAML code,
which `dvc repro` does after every stage it runs or restores.

    python benchmarks/lock_roundtrip.py dvc.lock [other.lock ...] [--rounds 5]

Each file is copied to a temporary folder first; prints, per file, its bytes, its entries and the
median seconds of ``--rounds`` round trips.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml
from dvc.utils.serialize import modify_yaml


@click.command()
@click.argument("locks", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(min=1))
def main(locks: tuple[str, ...], rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for i, lock in enumerate(locks):
            copy = Path(tmp) / f"{i}.lock"
            shutil.copy(lock, copy)
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                with modify_yaml(copy):
                    pass
                times.append(time.perf_counter() - start)
            entries = len((yaml.safe_load(copy.read_text()) or {}).get("stages", {}))
            click.echo(json.dumps({"lock": lock, "bytes": copy.stat().st_size, "entries": entries,
                                   "median_seconds": round(statistics.median(times), 3)}))
    click.echo(f"command: python benchmarks/lock_roundtrip.py {' '.join(sys.argv[1:])}", err=True)


if __name__ == "__main__":
    main()
