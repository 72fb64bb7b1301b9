"""tokenize: train SentencePiece on the training split and store the ids of train and valid."""

import sys
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's tcompress, first (see tcompress/stage.py)
from tcompress.config import TokenizerConfig
from tcompress.data.corpora import read_split
from tcompress.schema import build
from tcompress.stage import guarded, read_config
from tcompress.tokenizer import build_tokenizer


@click.command()
@click.option("--config", "config_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--prepared", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@guarded
def main(config_file: str, prepared: str, out: str) -> None:
    cfg = build(TokenizerConfig, read_config(config_file)["tokenizer"], "tokenizer")
    train_src, train_tgt = read_split(Path(prepared) / "train.parquet")
    tok = build_tokenizer(train_src, train_tgt, cfg, out)
    for name in ("train", "valid"):
        src, tgt = read_split(Path(prepared) / f"{name}.parquet")
        table = pa.table({"src_ids": pa.array(tok.encode_src(src), pa.list_(pa.int32())),
                          "tgt_ids": pa.array(tok.encode_tgt(tgt), pa.list_(pa.int32()))})
        pq.write_table(table, Path(out) / f"{name}.ids.parquet")
    click.echo(f"vocabulary: source {tok.src_vocab_size}, target {tok.tgt_vocab_size} pieces "
               f"({'joint' if tok.joint else 'separate'})")


if __name__ == "__main__":
    main()
