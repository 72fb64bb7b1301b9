"""prepare: read the corpus the resolved config names and write one Parquet file per split."""

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's tcompress, first (see tcompress/stage.py)
from tcompress.stage import guarded, read_config, write_json


def read_corpus(config: dict, download_dir: str, local_dir: str | None, url: str) -> dict:
    from tcompress.data import corpora
    from tcompress.data.synthetic import generate_splits

    data, c = config["data"], config[config["data"]]
    if data == "synthetic":
        splits = generate_splits(c["train_size"], c["valid_size"], c["test_size"], c["seed"])
        return {name: ([p[0] for p in pairs], [p[1] for p in pairs]) for name, pairs in splits.items()}
    if data == "multi30k":
        return corpora.read_multi30k(local_dir, download_dir, url, c["src_lang"], c["tgt_lang"])
    return corpora.read_parallel_files({split: (c[f"{split}_source"], c[f"{split}_target"])
                                        for split in ("train", "valid", "test")})


@click.command()
@click.option("--config", "config_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="directory for the Parquet splits")
@click.option("--stats", required=True, type=click.Path(dir_okay=False), help="JSON with the cleaning counts")
@click.option("--download-dir", default="data/downloads", show_default=True, type=click.Path(file_okay=False))
@guarded
def main(config_file: str, out: str, stats: str, download_dir: str) -> None:
    from tcompress.config import Multi30kConfig, load_section
    from tcompress.data import corpora
    from tcompress.stage import PARAMS_FILE

    config = read_config(config_file)
    # Where the checksummed Multi30k files come from is not a dependency: read it from params.yaml.
    m30k = load_section("multi30k", Multi30kConfig, PARAMS_FILE)
    splits = read_corpus(config, download_dir, m30k.local_dir, m30k.url)
    cleaning = config["cleaning"]
    src, tgt, counts = corpora.clean_train(*splits["train"], cleaning["max_len_ratio"], cleaning["max_words"])
    corpora.write_split(Path(out) / "train.parquet", src, tgt)
    # valid and test stay raw: BLEU is scored against the references exactly as published.
    for name in ("valid", "test"):
        corpora.write_split(Path(out) / f"{name}.parquet", *splits[name])
    write_json(stats, {"corpus": config["data"], "train": counts.to_dict(),
                       "valid": len(splits["valid"][0]), "test": len(splits["test"][0])})
    click.echo(f"prepared {config['data']}: train {counts.kept}/{counts.input} kept, "
               f"valid {len(splits['valid'][0])}, test {len(splits['test'][0])}")


if __name__ == "__main__":
    main()
