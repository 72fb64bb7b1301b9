"""sensitivity: each Linear's validation-loss increase per bit width when it alone is rounded
(tcompress.sensitivity), or an 'off' marker when no selected cell reads it."""

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
@click.option("--calibration", required=True, type=click.Path(exists=True, file_okay=False),
              help="the calibrate stage's output: each Linear's Gram matrix, for GPTQ")
@click.option("--resume", required=True, type=click.Path(file_okay=False),
              help="each module's result so far, kept outside DVC's outputs so an interrupted run continues")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@guarded
def main(config_file: str, baseline: str, tokenized: str, calibration: str, resume: str, out: str) -> None:
    from tcompress.post_config import SENSITIVITY_FILE

    config = read_config(config_file)
    if not config["enabled"]:   # before importing torch: costs DVC's bookkeeping only
        write_json(Path(out) / SENSITIVITY_FILE, {"enabled": False})
        click.echo("sensitivity: no selected cell reads per-Linear sensitivities; nothing to compute")
        return
    import time

    from tcompress.baseline import load_baseline
    from tcompress.closure import file_digest
    from tcompress.compress.calibration import load as load_calibration
    from tcompress.post_config import CALIBRATION_FILE
    from tcompress.sensitivity import check_widths, measure, save, validation_batches
    from tcompress.stage import runtime, setup_torch

    widths = tuple(config["bits"])
    check_widths(widths)
    start = time.perf_counter()
    device = setup_torch(runtime())
    model, _ = load_baseline(baseline, device)
    batches = validation_batches(tokenized, config["sentences"], device)
    statistics = Path(calibration) / CALIBRATION_FILE
    identity = {"baseline": file_digest(Path(baseline)), "calibration": file_digest(statistics),
                "settings": {k: config[k] for k in ("bits", "mode", "sentences", "embeddings")}}
    result = measure(model, load_calibration(statistics), batches, widths, config["mode"], config["embeddings"],
                     resume=Path(resume), identity=identity)
    Path(out).mkdir(parents=True, exist_ok=True)
    save(result, Path(out) / SENSITIVITY_FILE, {"bits": list(widths), "mode": config["mode"],
                                                "sentences": sum(len(b[0]) for b in batches)})
    click.echo(f"sensitivity: {len(result['linears'])} Linears and {len(result['embeddings'])} embedding tables x "
               f"{len(widths)} widths, float loss "
               f"{result['base_loss']:.4f}, {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
