"""plan: one compress and one evaluate plan per catalog cell, holding its inputs' and code's hashes."""

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's tcompress, first (see tcompress/stage.py)
from tcompress.plan import write_plan
from tcompress.stage import guarded, read_config


@click.command()
@click.option("--config", "config_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--baseline", required=True, type=click.Path(dir_okay=False),
              help="hashed into every selected cell's plan (absent for a seed that is not selected)")
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--valid", "valid_split", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--test", "test_split", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--teacher", required=True, type=click.Path(exists=True, file_okay=False),
              help="the teacher stage's output: hashed into the plan of every cell that trains on it")
@click.option("--calibration", required=True, type=click.Path(exists=True, file_okay=False),
              help="the calibrate stage's output: hashed into the plan of every cell that reads it")
@click.option("--sensitivity", required=True, type=click.Path(exists=True, file_okay=False),
              help="the sensitivity stage's output: hashed into the plan of every cell that reads it")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@guarded
def main(config_file: str, baseline: str, tokenized: str, valid_split: str, test_split: str, teacher: str,
         calibration: str, sensitivity: str, out: str) -> None:
    selected = write_plan(read_config(config_file), Path(baseline), Path(tokenized), Path(valid_split),
                          Path(test_split), Path(out), teacher=Path(teacher), calibration=Path(calibration),
                          sensitivity=Path(sensitivity))
    click.echo(f"planned {len(selected)} selected cells")


if __name__ == "__main__":
    main()
