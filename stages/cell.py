"""cell: one grid cell (or chain) -> its folder (compressed checkpoint, facts, test translations) and metrics.

A cell the plan switched off writes an 'off' marker and empty metrics without importing torch; so
does a control the plan shares with another (``same_as``), its metrics naming that control.
Trained cells resume from ``--resume`` after an interruption."""

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's tcompress, first (see tcompress/stage.py)
from tcompress.cellfiles import write_off, write_shared
from tcompress.stage import guarded, read_config, write_json


@click.command()
@click.option("--plan", "plan_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--baseline", required=True, type=click.Path(dir_okay=False))
@click.option("--tokenized", required=True, type=click.Path(file_okay=False))
@click.option("--valid", "valid_split", required=True, type=click.Path(dir_okay=False),
              help="validation split (raw text) for the per-epoch BLEU of trained cells")
@click.option("--test", "test_split", required=True, type=click.Path(dir_okay=False))
@click.option("--teacher", type=click.Path(file_okay=False),
              help="the teacher stage's output: the baseline's translations of the training sources")
@click.option("--resume", "resume_path", required=True, type=click.Path(dir_okay=False),
              help="resumable checkpoint of a trained cell, kept outside DVC's outputs")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="the cell's folder: model.safetensors (its artifact), cell.json, hyps.txt (its translations of the test split)")
@click.option("--metrics", required=True, type=click.Path(dir_okay=False))
@click.option("--start", "start_from", type=click.Path(dir_okay=False),
              help="a chain's parent's artifact: the model its last link starts from (file sizes stay against --baseline)")
@guarded
def main(plan_file: str, baseline: str, tokenized: str, valid_split: str, test_split: str, teacher: str | None,
         resume_path: str, out: str, metrics: str, start_from: str | None) -> None:
    entry = read_config(plan_file)
    if not entry["selected"]:
        # Before importing torch: an off cell costs DVC's bookkeeping only. Its metrics are empty,
        # so `dvc metrics show` lists nothing for it.
        write_off(out, entry)
        write_json(metrics, {})
        return
    if "same_as" in entry:
        write_json(metrics, write_shared(out, entry))
        click.echo(f"{entry['cell']}: the same training as {entry['same_as']}, whose stage runs it")
        return
    from tcompress.deploy import check_installed, deploy_cell
    from tcompress.loader import load_model
    from tcompress.plan import verify_inputs
    from tcompress.runner import ARTIFACT, CellContext, compress_cell, evaluate_cell
    from tcompress.stage import runtime, setup_torch
    from tcompress.training import seed_everything

    inputs = {"baseline": Path(baseline), "tokenized": Path(tokenized), "valid": Path(valid_split),
              "test": Path(test_split)}
    if "teacher" in entry["inputs"]:
        if teacher is None:
            raise click.UsageError(f"cell {entry['cell']} trains on the teacher's translations: pass --teacher")
        inputs["teacher"] = Path(teacher) / "train.ids.parquet"
    if "calibration" in entry["inputs"]:   # the calibrate stage's statistics, at the path the plan names
        inputs["calibration"] = Path(entry["calibration_file"])
    if "sensitivity" in entry["inputs"]:   # the sensitivity stage's measurements, likewise
        inputs["sensitivity"] = Path(entry["sensitivity_file"])
    verify_inputs(entry, inputs)
    check_installed(entry.get("deploy"))   # before any work: one line saying how to install CTranslate2
    rt = runtime()
    device = setup_torch(rt)
    seed_everything(entry["seed"])
    ctx = CellContext(entry, tokenized, valid_split, resume_path, device, rt.checkpoint_every, teacher)
    facts = compress_cell(entry, baseline, out, ctx, start_from)
    write_json(Path(out) / "cell.json", facts)
    result = evaluate_cell(entry, Path(out), facts, tokenized, test_split, device)
    if entry.get("deploy"):   # a deploying cell (tcompress.plan.deploys) with the section on: its export, decoded
        artifact = Path(out) / ARTIFACT
        result |= deploy_cell(entry, load_model(artifact), artifact, tokenized, test_split)
    write_json(metrics, result)
    click.echo(f"{facts['cell']}: BLEU {result['bleu']:.2f} at {facts['compression_ratio']:.3f}x "
               f"({facts['compress_seconds']:.1f} s to compress)")


if __name__ == "__main__":
    main()
