"""How fast can decoding get by making the Linear layers faster? An upper bound, measured.

Usage (from a workspace where the baseline exists):
    python benchmarks/archive/int8_ceiling.py --baseline data/model/model.pt --tokenized data/tokenized \
        --test data/prepared/test.parquet --threads 2 --out benchmarks/archive/results/int8_ceiling.json

The target was an int8 path ≥ 3× our fp32 greedy decoding at batch 128 and ≥ 2.5× at batch 1.
An int8 path replaces ``nn.Linear`` modules and leaves the rest of a decoding step (embedding,
LayerNorm, attention over the cache, the cache's concatenation, argmax, the Python loop) as it is.
This measures the best any such replacement can do: it decodes once in fp32, recording every Linear's
output in call order (a "tape"), then decodes again with every Linear replaced by a module that hands
back its recorded output and does no arithmetic at all (``linear-oracle``). The decode is
deterministic, so the oracle takes the same path and emits the same tokens (checked). Its speed over
fp32 is the ceiling of any Linear-level kernel, int8 or other, in this decoder; our int8 path
(``ours-int8``: the baseline quantized to 8 bits per row, weights only, through ``to_int8_inference``)
is measured in the same run for scale.

In one process, alternating the systems within each setting, after a warm-up; the fastest of
``--rounds`` runs counts. Greedy and beam 4, batch 128 over the test split and batch 1 over its
first ``--batch1-sentences`` sentences, as ``int8_speed.py`` does.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import click
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: int8_speed.py, the sibling measurement
from int8_speed import cpu_flags, decode, load_system, make_weight_only_cell  # noqa: E402

from tcompress.compress.walker import replace_module  # noqa: E402
from tcompress.data.corpora import read_split  # noqa: E402
from tcompress.tokenizer import Tokenizer  # noqa: E402


class Tape:
    """Every recorded Linear output, in the order the decode produced them."""

    def __init__(self):
        self.outputs: list[torch.Tensor] = []
        self.position = 0

    def record(self, module, inputs, output):  # a forward hook
        self.outputs.append(output.clone())

    def rewind(self) -> None:
        self.position = 0


class Replay(nn.Module):
    """Stands in for a Linear: returns the next recorded output, computing nothing."""

    def __init__(self, tape: Tape):
        super().__init__()
        self.tape = tape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tape.outputs[self.tape.position]
        self.tape.position += 1
        return out


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def with_replays(model: nn.Module, tape: Tape) -> nn.Module:
    for name in linear_names(model):
        replace_module(model, model.get_submodule(name), Replay(tape))
    return model


@click.command()
@click.option("--baseline", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--test", "test_split", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", default=2, show_default=True)
@click.option("--batch1-sentences", default=200, show_default=True, help="sentences decoded one at a time")
@click.option("--sentences", default=0, help="limit the test split (0: all of it), for a smoke run")
@click.option("--rounds", default=3, show_default=True, help="timed runs per system and setting; the fastest counts")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def main(baseline, tokenized, test_split, threads, batch1_sentences, sentences, rounds, out):
    torch.set_num_threads(threads)
    cell = str(Path(out).with_suffix(".cell.safetensors"))
    make_weight_only_cell(baseline, cell)
    tok = Tokenizer.load(tokenized)
    sources, _ = read_split(test_split)
    ids = tok.encode_src(sources[:sentences] if sentences else sources)
    fp32 = load_system("fp32", baseline, cell)[0]
    int8 = load_system("ours-int8", baseline, cell)[0]
    n_linear = len(linear_names(fp32))
    for model in (fp32, int8):
        decode(model, ids[:8], 4, 8)  # warm-up
    rows = []
    for beam in (1, 4):
        for batch, subset in ((128, ids), (1, ids[:batch1_sentences])):
            tape = Tape()
            recorder = load_system("fp32", baseline, cell)[0]
            for name in linear_names(recorder):
                recorder.get_submodule(name).register_forward_hook(tape.record)
            reference = decode(recorder, subset, beam, batch)[0]
            oracle = with_replays(recorder, tape)
            del recorder
            times = {"fp32": [], "ours-int8": [], "linear-oracle": []}
            for _ in range(rounds):  # alternating, back to back
                times["fp32"].append(decode(fp32, subset, beam, batch)[1])
                times["ours-int8"].append(decode(int8, subset, beam, batch)[1])
                tape.rewind()
                hyps, seconds = decode(oracle, subset, beam, batch)
                if hyps != reference or tape.position != len(tape.outputs):
                    raise SystemExit("the oracle left the recorded path: the decode is not deterministic here")
                times["linear-oracle"].append(seconds)
            base = min(times["fp32"])
            for name, runs in times.items():
                row = {"system": name, "decoding": "greedy" if beam == 1 else f"beam{beam}", "batch": batch,
                       "sentences": len(subset), "sentences_per_second": round(len(subset) / min(runs), 1),
                       "x_fp32": round(base / min(runs), 2)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            del oracle, tape
    result = {"command": " ".join(sys.argv), "torch": torch.__version__, "threads": threads,
              "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(),
              "linear_modules": n_linear, "rows": rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    Path(cell).unlink(missing_ok=True)
    print(f"\ncpu flags: {' '.join(result['cpu_flags'])}; torch {torch.__version__}; {threads} threads; "
          f"{n_linear} Linear modules")
    print("| system | decoding | batch | sentences/s | × fp32 |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['system']} | {r['decoding']} | {r['batch']} | {r['sentences_per_second']} | {r['x_fp32']} |")


if __name__ == "__main__":
    main()
