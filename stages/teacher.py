"""teacher: the baseline's translations of the training sources (sequence-level distillation's
targets), or an 'off' marker when no selected cell uses them."""

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's tcompress, first (see tcompress/stage.py)
from tcompress.stage import guarded, read_config, write_json


@click.command()
@click.option("--config", "config_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--baseline", required=True, type=click.Path(dir_okay=False))
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--resume", required=True, type=click.Path(file_okay=False),
              help="decoded chunks so far, kept outside DVC's outputs so an interrupted run continues")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@guarded
def main(config_file: str, baseline: str, tokenized: str, resume: str, out: str) -> None:
    config = read_config(config_file)
    if not config["enabled"]:   # before importing torch: costs DVC's bookkeeping only
        write_json(Path(out) / "teacher.json", {"enabled": False})
        click.echo("teacher: no selected cell trains on the baseline's translations; nothing to decode")
        return
    from tcompress.baseline import load_baseline
    from tcompress.stage import runtime, setup_torch
    from tcompress.teacher import run

    device = setup_torch(runtime())
    model, _ = load_baseline(baseline, device)
    facts = run(config, model, Path(baseline), Path(tokenized), Path(resume), Path(out), device)
    write_json(Path(out) / "teacher.json", facts)
    click.echo(f"teacher: {facts['sentences']:,} training sources translated (beam {facts['beam_size']})")


if __name__ == "__main__":
    main()
