"""compress: one grid cell -> its compressed checkpoint (or an 'off' marker when the plan says so)."""

import json
from pathlib import Path

import click

from tcompress.grid import read_plan, write_off
from tcompress.stage import guarded, write_json


@click.command()
@click.option("--plan", "plan_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--baseline", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@guarded
def main(plan_file: str, baseline: str, tokenized: str, out: str) -> None:
    entry = read_plan(plan_file)
    if not entry["selected"]:
        write_off(out, entry)  # before importing torch: off cells cost DVC's overhead only
        return
    from tcompress.compress.cells import compress_cell
    from tcompress.stage import pick_device, seed_everything

    seed_everything(entry["seed"])
    facts = compress_cell(entry, baseline, tokenized, out, pick_device(entry["device"]))
    write_json(Path(out) / "cell.json", facts)
    click.echo(json.dumps({k: facts[k] for k in ("cell", "compression_ratio", "compress_seconds")}))


if __name__ == "__main__":
    main()
