"""calibrate: the baseline's per-Linear input statistics on calibration batches of the training split
(tcompress.compress.calibration), or an 'off' marker when no selected cell reads them."""

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's tcompress, first (see tcompress/stage.py)
from tcompress.stage import guarded, read_config, write_json


@click.command()
@click.option("--config", "config_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--baseline", required=True, type=click.Path(dir_okay=False),
              help="the baseline (absent for a seed that is not selected: its stage writes an 'off' marker)")
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@guarded
def main(config_file: str, baseline: str, tokenized: str, out: str) -> None:
    config = read_config(config_file)
    if not config["enabled"]:   # before importing torch: costs DVC's bookkeeping only
        write_json(Path(out) / "calibration.json", {"enabled": False})
        click.echo("calibrate: no selected cell reads calibration statistics; nothing to compute")
        return
    from tcompress.baseline import load_baseline
    from tcompress.compress.calibration import calibration_batches, collect, save
    from tcompress.post_config import CALIBRATION_FILE
    from tcompress.stage import runtime, setup_torch

    device = setup_torch(runtime())
    model, _ = load_baseline(baseline, device)
    batches = calibration_batches(tokenized, config["batches"], config["batch_tokens"], config["seed"], device)
    stats = collect(model, batches)
    settings = {k: config[k] for k in ("batches", "batch_tokens", "seed")}
    save(stats, Path(out) / CALIBRATION_FILE, settings)
    write_json(Path(out) / "calibration.json", {"enabled": True, **settings, "batches_run": len(batches),
                                                "rows_seen": {name: s.count for name, s in stats.items()}})
    click.echo(f"calibrate: {len(stats)} Linears over {len(batches)} batches")


if __name__ == "__main__":
    main()
