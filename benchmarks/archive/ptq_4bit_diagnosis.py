"""Which part of 4-bit symmetric quantization costs BLEU: weights (per tensor / per channel) or
activations, per layer group. PTQ only, greedy decoding of the test split.

    python benchmarks/archive/ptq_4bit_diagnosis.py --data data    # a workspace with a trained model

Output, from a Multi30k workspace: benchmarks/archive/results/ptq_4bit_sym_diagnosis_multi30k.txt.
"""

from pathlib import Path

import click
import torch

from tcompress.data.corpora import read_split
from tcompress.decode import DecodeOptions
from tcompress.evaluation import evaluate_model
from tcompress.loader import load_model
from tcompress.methods.ptq.post_training import PTQConfig, post_training_quantize
from tcompress.runner import CellContext
from tcompress.tokenizer import Tokenizer

CASES = [("full", "none", False), ("full", "none", True), ("full", "inputs", True), ("full", "inputs", False),
         ("emb", "none", False), ("gen", "none", False), ("ff", "none", False), ("att", "none", False)]


@click.command()
@click.option("--data", "data_dir", default="data", show_default=True, type=click.Path(exists=True, file_okay=False))
def main(data_dir: str) -> None:
    d = Path(data_dir)
    sources, references = read_split(d / "prepared/test.parquet")
    tok = Tokenizer.load(d / "tokenized")
    batches = CellContext({"seed": 1234}, d / "tokenized", None, None, torch.device("cpu")).calibration_batches(8, 3000)
    for group, activations, per_channel in CASES:
        model, _ = load_model(d / "model/model.pt")
        post_training_quantize(model, PTQConfig(4, "sym", per_channel=per_channel, activations=activations), group,
                  calibration_batches=batches)
        result = evaluate_model(model, tok, sources, references, DecodeOptions(1, 0.6, 128, 1.5, 10), progress=False)
        print(group, activations, "per_channel" if per_channel else "per_tensor", result["bleu"], flush=True)


if __name__ == "__main__":
    main()
