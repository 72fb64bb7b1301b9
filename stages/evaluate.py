"""evaluate: translate the test split greedily and with beam search, score with sacrebleu."""

from pathlib import Path

import click

from tcompress.checkpoint import load_model
from tcompress.config import Params
from tcompress.data.corpora import read_split
from tcompress.decode import DecodeOptions
from tcompress.evaluation import evaluate_model, model_facts
from tcompress.stage import pick_device, stage, write_json
from tcompress.tokenizer import Tokenizer


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--test", "test_split", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--metrics", required=True, type=click.Path(dir_okay=False))
@click.option("--hypotheses", required=True, type=click.Path(file_okay=False))
@stage
def main(params: Params, checkpoint: str, tokenized: str, test_split: str, metrics: str, hypotheses: str) -> None:
    device = pick_device(params.train.device)
    model, _ = load_model(checkpoint, device)
    sources, references = read_split(test_split)
    e = params.evaluate
    opts = DecodeOptions(e.beam_size, e.length_penalty, e.batch_sentences, e.max_len_a, e.max_len_b)
    result = evaluate_model(model, Tokenizer.load(tokenized), sources, references, opts, device,
                            hypotheses_dir=hypotheses, name="baseline")
    write_json(metrics, {"corpus": params.data, "sentences": len(sources), **result,
                         **model_facts(model, checkpoint)})
    click.echo(f"test BLEU {result['bleu']:.2f} (greedy {result['greedy']['bleu']:.2f}), chrF {result['chrf']:.2f}")


if __name__ == "__main__":
    main()
