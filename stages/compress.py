"""compress: one grid cell -> its compressed checkpoint (or an 'off' marker when the plan says so).

Trained cells resume from ``--resume`` after an interruption."""

import json
from pathlib import Path

import click

from tcompress.cellfiles import write_off
from tcompress.stage import guarded, read_config, write_json


@click.command()
@click.option("--plan", "plan_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--baseline", required=True, type=click.Path(dir_okay=False))
@click.option("--tokenized", required=True, type=click.Path(file_okay=False))
@click.option("--valid", "valid_split", required=True, type=click.Path(dir_okay=False),
              help="validation split (raw text) for the per-epoch BLEU of trained cells")
@click.option("--resume", "resume_path", required=True, type=click.Path(dir_okay=False),
              help="resumable checkpoint of a trained cell, kept outside DVC's outputs")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@guarded
def main(plan_file: str, baseline: str, tokenized: str, valid_split: str, resume_path: str, out: str) -> None:
    entry = read_config(plan_file)
    if not entry["selected"]:
        write_off(out, entry)  # before importing torch: an off cell costs DVC's overhead only
        return
    from tcompress.compress.cells import CellContext, compress_cell
    from tcompress.plan import verify_inputs
    from tcompress.stage import runtime, seed_everything, setup_torch

    paths = {"baseline": Path(baseline), "tokenized": Path(tokenized), "valid": Path(valid_split)}
    verify_inputs(entry, paths)
    rt = runtime()
    device = setup_torch(rt)
    seed_everything(entry["seed"])
    ctx = CellContext(entry, tokenized, valid_split, resume_path, device, rt.checkpoint_every)
    facts = compress_cell(entry, baseline, out, ctx)
    write_json(Path(out) / "cell.json", facts)
    click.echo(json.dumps({k: facts[k] for k in ("cell", "compression_ratio", "compress_seconds")}))


if __name__ == "__main__":
    main()
