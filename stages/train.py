"""train: the baseline Transformer, resumable, keeping the checkpoint with the best validation BLEU."""

import dataclasses
from pathlib import Path

import click
import pyarrow.parquet as pq

from tcompress.config import Params
from tcompress.data.corpora import read_split
from tcompress.model import Vocab, count_parameters, make_model
from tcompress.stage import pick_device, seed_everything, stage, write_json
from tcompress.tokenizer import Tokenizer
from tcompress.training import ParallelData, fingerprint, fit


def load_ids(path: Path) -> tuple[list[list[int]], list[list[int]]]:
    table = pq.read_table(path)
    return table.column("src_ids").to_pylist(), table.column("tgt_ids").to_pylist()


@click.command()
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--prepared", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="directory for the best checkpoint")
@click.option("--resume", "resume_path", required=True, type=click.Path(dir_okay=False),
              help="resumable checkpoint; kept outside DVC's outputs so an interrupted run can continue")
@click.option("--metrics", required=True, type=click.Path(dir_okay=False))
@click.option("--curve", required=True, type=click.Path(dir_okay=False), help="per-epoch metrics for dvc plots")
@stage
def main(params: Params, tokenized: str, prepared: str, out: str, resume_path: str, metrics: str, curve: str) -> None:
    import torch

    if params.train.threads:
        torch.set_num_threads(params.train.threads)
    device = pick_device(params.train.device)
    tok = Tokenizer.load(tokenized)
    train = ParallelData(*load_ids(Path(tokenized) / "train.ids.parquet"))
    valid = ParallelData(*load_ids(Path(tokenized) / "valid.ids.parquet"),
                         references=read_split(Path(prepared) / "valid.parquet")[1])
    seed_everything(params.seed)
    model = make_model(params.model, Vocab(tok.src_vocab_size, tok.tgt_vocab_size))
    run_id = fingerprint(dataclasses.asdict(params.model), dataclasses.asdict(params.train), params.seed,
                         [len(s) for s in train.src[:1000]], train.tgt[:50], len(train.src))
    click.echo(f"model: {count_parameters(model):,} parameters on {device}; {len(train.src):,} training pairs")
    state = fit(model, train, valid, params.train, seed=params.seed, best_path=Path(out) / "model.pt",
                resume_path=resume_path, run_id=run_id, decode_tgt=tok.decode_tgt, device=device)
    best = state.history[state.best_epoch - 1]
    write_json(metrics, {"best_epoch": state.best_epoch, "epochs": state.epoch, "steps": state.step,
                         "best_val_bleu": best.get("val_bleu"), "best_val_loss": best["val_loss"],
                         "parameters": count_parameters(model), "train_seconds": round(state.train_seconds, 1),
                         "wall_seconds": round(state.wall_seconds, 1),
                         "train_tokens_per_second": round(state.train_tokens / max(state.train_seconds, 1e-9), 1)})
    write_json(curve, state.history)
    Path(resume_path).unlink(missing_ok=True)  # finished: the best checkpoint is the output now


if __name__ == "__main__":
    main()
