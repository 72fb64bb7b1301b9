"""resolve: validate params.yaml and write each stage's resolved config (data/config/<stage>.json)."""

from pathlib import Path

import click

from tcompress.params import load_params
from tcompress.grid import check_cells_file
from tcompress.plan import resolve, write_json
from tcompress.preview import estimate_line, last_entries, measured_seconds
from tcompress.stage import PARAMS_FILE, guarded


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--cells", "cells_file", required=True, type=click.Path(dir_okay=False),
              help="the catalog's stage list dvc.yaml expands (written by `tcompress catalog`)")
@click.option("--last-plans", type=click.Path(file_okay=False), help="the cells' plans of the last run (read only "
              "to say what will be recomputed, not a dependency)")
@click.option("--measured", type=click.Path(file_okay=False), help="cells' metrics: measured cost per method")
@guarded
def main(out: str, cells_file: str, last_plans: str | None, measured: str | None) -> None:
    params = load_params(PARAMS_FILE)
    check_cells_file(params, cells_file)
    configs = resolve(params)
    for name, config in configs.items():
        write_json(Path(out) / f"{name}.json", config)
    selected = list(configs["cells"]["cells"])
    click.echo(f"corpus {params.data}; {len(selected)} of {len(configs['cells']['catalog'])} catalog cells "
               f"selected: {', '.join(selected) or 'none'}")
    if last_plans:
        cells = configs["cells"]["cells"]
        click.echo(estimate_line(last_entries(Path(last_plans), cells),
                                 cells, measured_seconds(Path(measured)) if measured else {}))


if __name__ == "__main__":
    main()
