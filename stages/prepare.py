"""prepare: read the corpus that params.data names and write one Parquet file per split."""

from pathlib import Path

import click

from tcompress.config import Params
from tcompress.data import corpora
from tcompress.data.synthetic import generate_splits
from tcompress.stage import stage, write_json


def read_corpus(params: Params, download_dir: str) -> dict[str, tuple[list[str], list[str]]]:
    if params.data == "synthetic":
        s = params.synthetic
        splits = generate_splits(s.train_size, s.valid_size, s.test_size, s.seed)
        return {name: ([p[0] for p in pairs], [p[1] for p in pairs]) for name, pairs in splits.items()}
    if params.data == "multi30k":
        m = params.multi30k
        return corpora.read_multi30k(m.local_dir, download_dir, m.url, m.src_lang, m.tgt_lang)
    f = params.files
    return corpora.read_parallel_files({"train": (f.train_source, f.train_target),
                                        "valid": (f.valid_source, f.valid_target),
                                        "test": (f.test_source, f.test_target)})


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="directory for the Parquet splits")
@click.option("--stats", required=True, type=click.Path(dir_okay=False), help="JSON with the cleaning counts")
@click.option("--download-dir", default="data/downloads", show_default=True, type=click.Path(file_okay=False))
@stage
def main(params: Params, out: str, stats: str, download_dir: str) -> None:
    splits = read_corpus(params, download_dir)
    src, tgt, counts = corpora.clean_train(*splits["train"], params.cleaning.max_len_ratio, params.cleaning.max_words)
    corpora.write_split(Path(out) / "train.parquet", src, tgt)
    # valid and test stay raw: BLEU is scored against the references exactly as published.
    for name in ("valid", "test"):
        corpora.write_split(Path(out) / f"{name}.parquet", *splits[name])
    write_json(stats, {"corpus": params.data, "train": counts.to_dict(),
                       "valid": len(splits["valid"][0]), "test": len(splits["test"][0])})
    click.echo(f"prepared {params.data}: train {counts.kept}/{counts.input} kept, "
               f"valid {len(splits['valid'][0])}, test {len(splits['test'][0])}")


if __name__ == "__main__":
    main()
