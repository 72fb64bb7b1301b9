"""compress: one grid cell -> its compressed checkpoint (or an 'off' marker when the plan says so).

Trained cells (QAT, AGP, IMP) resume from ``--resume`` after an interruption."""

import json
from pathlib import Path

import click

from tcompress.grid import read_plan, write_off
from tcompress.stage import guarded, write_json


@click.command()
@click.option("--plan", "plan_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--baseline", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--valid", "valid_split", type=click.Path(exists=True, dir_okay=False),
              help="validation split (raw text) for the per-epoch BLEU of trained cells")
@click.option("--resume", "resume_path", type=click.Path(dir_okay=False),
              help="resumable checkpoint of a trained cell, kept outside DVC's outputs")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@guarded
def main(plan_file: str, baseline: str, tokenized: str, valid_split: str | None, resume_path: str | None,
         out: str) -> None:
    entry = read_plan(plan_file)
    if not entry["selected"]:
        write_off(out, entry)  # before importing torch: off cells cost DVC's overhead only
        return
    from tcompress.compress.cells import Context, compress_cell
    from tcompress.stage import pick_device, seed_everything

    seed_everything(entry["seed"])
    ctx = Context(tokenized, valid_split, resume_path, pick_device(entry["device"]))
    facts = compress_cell(entry, baseline, out, ctx)
    write_json(Path(out) / "cell.json", facts)
    click.echo(json.dumps({k: facts[k] for k in ("cell", "compression_ratio", "compress_seconds")}))


if __name__ == "__main__":
    main()
