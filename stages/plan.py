"""plan: validate the grid in params.yaml and write one plan file per catalog cell."""

import click

from tcompress.config import Params
from tcompress.grid import write_plan
from tcompress.stage import stage


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False))
@stage
def main(params: Params, out: str) -> None:
    entries = write_plan(params, out)
    selected = [e["cell"] for e in entries if e["selected"]]
    click.echo(f"{len(selected)} of {len(entries)} catalog cells selected: {', '.join(selected)}")


if __name__ == "__main__":
    main()
