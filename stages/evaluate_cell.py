"""evaluate-cell: decode the test split with one compressed checkpoint; metrics as the baseline's."""

import json
from pathlib import Path

import click

from tcompress.cellfiles import is_off
from tcompress.stage import guarded, read_config, write_json


@click.command()
@click.option("--plan", "plan_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--cell-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--tokenized", required=True, type=click.Path(file_okay=False))
@click.option("--test", "test_split", required=True, type=click.Path(dir_okay=False))
@click.option("--metrics", required=True, type=click.Path(dir_okay=False))
@click.option("--hypotheses", required=True, type=click.Path(dir_okay=False))
@guarded
def main(plan_file: str, cell_dir: str, tokenized: str, test_split: str, metrics: str, hypotheses: str) -> None:
    entry = read_config(plan_file)
    Path(hypotheses).parent.mkdir(parents=True, exist_ok=True)
    if not entry["selected"] or is_off(cell_dir):
        write_json(metrics, {})  # an off cell has no numbers; `dvc metrics show` lists nothing for it
        Path(hypotheses).write_text("")
        return
    from tcompress.compress.artifact import load_model
    from tcompress.data.corpora import read_split
    from tcompress.decode import DecodeOptions, translate
    from tcompress.evaluation import score
    from tcompress.plan import verify_inputs
    from tcompress.stage import runtime, setup_torch
    from tcompress.tokenizer import Tokenizer

    verify_inputs(entry, {"tokenized": Path(tokenized), "test": Path(test_split)})
    device = setup_torch(runtime())
    e = entry["evaluate"]
    facts = json.loads((Path(cell_dir) / "cell.json").read_text())
    model, _ = load_model(Path(cell_dir) / "model.pt", device)
    sources, references = read_split(test_split)
    opts = DecodeOptions(e["beam_size"], e["length_penalty"], e["batch_sentences"], e["max_len_a"], e["max_len_b"])
    hyps, speed = translate(model, Tokenizer.load(tokenized), sources, opts, device, progress=True, desc=facts["cell"])
    Path(hypotheses).write_text("\n".join(hyps) + "\n")
    scored = score(hyps, references)
    # Metrics stay flat scalars for `dvc metrics show/diff`; per-tensor sparsity and the fine-tuning
    # curve remain in the cell's cell.json.
    flat = {k: v for k, v in facts.items() if not isinstance(v, (dict, list))}
    if isinstance(facts.get("sparsity"), dict):
        flat["sparsity"] = facts["sparsity"]["total"]["sparsity"]
    write_json(metrics, {**flat, "bleu": scored["bleu"], "chrf": scored["chrf"],
                         "decoding": "greedy" if e["beam_size"] == 1 else f"beam{e['beam_size']}",
                         "sentences": len(sources), "sentences_per_second": round(speed, 2),
                         "signature": scored["signature"]})
    click.echo(f"{facts['cell']}: BLEU {scored['bleu']:.2f} at {facts['compression_ratio']:.3f}x")


if __name__ == "__main__":
    main()
