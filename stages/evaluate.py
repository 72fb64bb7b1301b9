"""evaluate: translate the test split greedily and with beam search, score with sacrebleu; with the
deploy section on, also export the baseline as float32 and decode with the export (``*_deployed``)."""

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's tcompress, first (see tcompress/stage.py)
from tcompress.stage import guarded, read_config, write_json


@click.command()
@click.option("--config", "config_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False),
              help="the baseline (absent for a seed that is not selected: its train stage wrote an 'off' marker)")
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--test", "test_split", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--metrics", required=True, type=click.Path(dir_okay=False))
@click.option("--hypotheses", required=True, type=click.Path(file_okay=False))
@guarded
def main(config_file: str, checkpoint: str, tokenized: str, test_split: str, metrics: str, hypotheses: str) -> None:
    e = read_config(config_file)
    if not e.get("enabled", True):   # a catalog seed that `seeds` does not select
        write_json(Path(hypotheses) / "off.json", {"enabled": False})
        write_json(metrics, {})
        click.echo("evaluate: this seed is not selected (params.yaml's seeds); nothing to translate")
        return
    from tcompress.baseline import load_baseline
    from tcompress.data.corpora import read_split
    from tcompress.deploy import check_installed, deploy
    from tcompress.decode import DecodeOptions
    from tcompress.evaluation import evaluate_model, model_facts
    from tcompress.stage import runtime, setup_torch
    from tcompress.tokenizer import Tokenizer

    check_installed(e.get("deploy"))   # before any work: one line saying how to install CTranslate2
    device = setup_torch(runtime())
    model, payload = load_baseline(checkpoint, device)
    sources, references = read_split(test_split)
    opts = DecodeOptions(e["beam_size"], e["length_penalty"], e["batch_sentences"], e["max_len_a"], e["max_len_b"])
    result = evaluate_model(model, Tokenizer.load(tokenized), sources, references, opts, device,
                            hypotheses_dir=hypotheses, name="baseline")
    deployed = {}
    if e.get("deploy"):   # the float32 export, beside the cells' int8 ones: decoded as the cells are
        deployed = deploy((model, payload), checkpoint, tokenized, hypotheses, e["deploy"], sources, references,
                          opts, int8=False)
    write_json(metrics, {"sentences": len(sources), **result, "precision": "fp32",
                         **model_facts(model, checkpoint), **deployed})
    click.echo(f"test BLEU {result['bleu']:.2f} (greedy {result['greedy']['bleu']:.2f}), chrF {result['chrf']:.2f}")


if __name__ == "__main__":
    main()
