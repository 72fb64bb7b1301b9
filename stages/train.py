"""train: the baseline Transformer, resumable, keeping the checkpoint with the best validation BLEU."""

import sys
import hashlib
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's tcompress, first (see tcompress/stage.py)
from tcompress.stage import guarded, read_config, write_json


@click.command()
@click.option("--config", "config_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--prepared", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="directory for the best checkpoint")
@click.option("--resume", "resume_path", required=True, type=click.Path(dir_okay=False),
              help="resumable checkpoint; kept outside DVC's outputs so an interrupted run can continue")
@click.option("--metrics", required=True, type=click.Path(dir_okay=False))
@click.option("--curve", required=True, type=click.Path(dir_okay=False), help="per-epoch metrics for dvc plots")
@guarded
def main(config_file: str, tokenized: str, prepared: str, out: str, resume_path: str, metrics: str,
         curve: str) -> None:
    config = read_config(config_file)
    if not config.get("enabled", True):   # a catalog seed that `seeds` does not select: no torch, no model
        write_json(Path(out) / "off.json", {"enabled": False})
        write_json(metrics, {})
        write_json(curve, [])
        click.echo("train: this seed is not selected (params.yaml's seeds); nothing to train")
        return
    from tcompress.config import ModelConfig, TrainConfig
    from tcompress.data.corpora import read_ids, read_split
    from tcompress.model import Vocab, count_parameters, make_model
    from tcompress.precision import resolve_precision
    from tcompress.schema import build
    from tcompress.stage import runtime, setup_torch
    from tcompress.tokenizer import Tokenizer
    from tcompress.training import ParallelData, fingerprint, fit, ids_digest, seed_everything

    model_cfg, train_cfg = build(ModelConfig, config["model"], "model"), build(TrainConfig, config["train"], "train")
    rt = runtime()
    device = setup_torch(rt)
    tok = Tokenizer.load(tokenized)
    train = ParallelData(*read_ids(tokenized, "train"))
    valid = ParallelData(*read_ids(tokenized, "valid"), references=read_split(Path(prepared) / "valid.parquet")[1])
    seed_everything(config["seed"])
    model = make_model(model_cfg, Vocab(tok.src_vocab_size, tok.tgt_vocab_size))
    precision = resolve_precision(train_cfg.precision, device)
    identity = {"config": fingerprint(config), "train ids": ids_digest(train.src, train.tgt),
                "valid ids": ids_digest(valid.src, valid.tgt)}
    click.echo(f"model: {count_parameters(model):,} parameters on {device} ({precision}); "
               f"{len(train.src):,} training pairs")
    state = fit(model, train, valid, train_cfg, seed=config["seed"], best_path=Path(out) / "model.pt",
                resume_path=resume_path, identity=identity, decode_tgt=tok.decode_tgt, device=device,
                checkpoint_every=rt.checkpoint_every)
    best = state.history[state.best_epoch - 1]
    write_json(metrics, {"best_epoch": state.best_epoch, "epochs": state.epoch, "steps": state.step,
                         "best_val_bleu": best.get("val_bleu"), "best_val_loss": best["val_loss"],
                         "parameters": count_parameters(model), "precision": precision,
                         "train_seconds": round(state.train_seconds, 1), "wall_seconds": round(state.wall_seconds, 1),
                         "train_tokens_per_second": round(state.train_tokens / max(state.train_seconds, 1e-9), 1),
                         # resolve compares it with a new config to say whether (and how long) the baseline trains
                         "config_md5": hashlib.md5(Path(config_file).read_bytes()).hexdigest()})
    write_json(curve, state.history)
    Path(resume_path).unlink(missing_ok=True)  # finished: the best checkpoint is the output now


if __name__ == "__main__":
    main()
