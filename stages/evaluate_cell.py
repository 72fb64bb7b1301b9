"""evaluate-cell: decode the test split with one compressed checkpoint; metrics as the baseline's."""

import json
from pathlib import Path

import click

from tcompress.config import load_params
from tcompress.grid import is_off
from tcompress.stage import PARAMS_FILE, guarded, write_json


@click.command()
@click.option("--cell-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--test", "test_split", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--metrics", required=True, type=click.Path(dir_okay=False))
@click.option("--hypotheses", required=True, type=click.Path(dir_okay=False))
@guarded
def main(cell_dir: str, tokenized: str, test_split: str, metrics: str, hypotheses: str) -> None:
    Path(hypotheses).parent.mkdir(parents=True, exist_ok=True)
    if is_off(cell_dir):
        write_json(metrics, {})  # an off cell has no numbers; `dvc metrics show` lists nothing for it
        Path(hypotheses).write_text("")
        return
    from tcompress.compress.artifact import load_any
    from tcompress.data.corpora import read_split
    from tcompress.decode import DecodeOptions, translate
    from tcompress.evaluation import score
    from tcompress.stage import pick_device
    from tcompress.tokenizer import Tokenizer

    params = load_params(PARAMS_FILE)
    e, device = params.evaluate, pick_device(params.train.device)
    facts = json.loads((Path(cell_dir) / "cell.json").read_text())
    model, _ = load_any(Path(cell_dir) / "model.pt", device)
    sources, references = read_split(test_split)
    opts = DecodeOptions(e.cell_beam_size, e.length_penalty, e.batch_sentences, e.max_len_a, e.max_len_b)
    hyps, speed = translate(model, Tokenizer.load(tokenized), sources, opts, device, progress=True, desc=facts["cell"])
    Path(hypotheses).write_text("\n".join(hyps) + "\n")
    scored = score(hyps, references)
    # Metrics stay flat scalars for `dvc metrics show/diff`; per-tensor sparsity and the fine-tuning
    # curve remain in the cell's cell.json.
    flat = {k: v for k, v in facts.items() if k not in ("finetune_curve", "sparsity")}
    if "sparsity" in facts:
        flat["sparsity"] = facts["sparsity"]["total"]["sparsity"]
    write_json(metrics, {**flat, "bleu": scored["bleu"], "chrf": scored["chrf"],
                         "decoding": "greedy" if e.cell_beam_size == 1 else f"beam{e.cell_beam_size}",
                         "sentences": len(sources), "sentences_per_second": round(speed, 2),
                         "signature": scored["signature"]})
    click.echo(f"{facts['cell']}: BLEU {scored['bleu']:.2f} at {facts['compression_ratio']:.3f}x")


if __name__ == "__main__":
    main()
