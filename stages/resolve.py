"""resolve: validate params.yaml and write each stage's resolved config (data/config/<stage>.json)."""

import sys
import json
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's tcompress, first (see tcompress/stage.py)
from tcompress.closure import file_digest
from tcompress.params import load_params
from tcompress.grid import check_cells_file
from tcompress.plan import resolve, write_json
from tcompress.preview import baseline_line, estimate_line, last_entries, measured_seconds
from tcompress.stage import PARAMS_FILE, guarded


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--cells", "cells_file", required=True, type=click.Path(dir_okay=False),
              help="the catalog's stage list dvc.yaml expands (written by `tcompress catalog`)")
@click.option("--last-plans", type=click.Path(file_okay=False), help="the cells' plans of the last run (read only "
              "to say what will be recomputed, not a dependency)")
@click.option("--measured", type=click.Path(file_okay=False), help="cells' metrics: measured cost per method")
@click.option("--last-train", type=click.Path(dir_okay=False), help="the baseline's last training metrics (read only "
              "to estimate its cost, not a dependency)")
@click.option("--baseline", type=click.Path(dir_okay=False),
              help="the baseline checkpoint (only whether it exists is read)")
@guarded
def main(out: str, cells_file: str, last_plans: str | None, measured: str | None, last_train: str | None,
         baseline: str | None) -> None:
    params = load_params(PARAMS_FILE)
    check_cells_file(params, cells_file)
    configs = resolve(params)
    for name, config in configs.items():
        write_json(Path(out) / f"{name}.json", config)
    selected = list(configs["cells"]["cells"])
    click.echo(f"corpus {params.data}; {len(selected)} of {len(configs['cells']['catalog'])} catalog cells "
               f"selected: {', '.join(selected) or 'none'}")
    if params.extra_seeds:
        click.echo(f"seeds {', '.join(map(str, params.seeds))}: each seed after the first trains its own baseline "
                   f"and runs these cells again (data/seeds/, metrics/seeds/)")
    if last_train and baseline:
        last_run = json.loads(Path(last_train).read_text()) if Path(last_train).exists() else None
        click.echo(baseline_line(file_digest(Path(out) / "train.json"), Path(baseline).exists(), last_run))
    if last_plans:
        cells = configs["cells"]["cells"]
        click.echo(estimate_line(last_entries(Path(last_plans), cells),
                                 cells, measured_seconds(Path(measured)) if measured else {}))


if __name__ == "__main__":
    main()
