"""Our PTQ grid beside the thesis's Table 4.1 (Multi30k), as Markdown.

    python benchmarks/compare_thesis.py --results metrics/results.csv [--thesis benchmarks/thesis_table_4_1.csv]

Each cell: "ours ΔBLEU / thesis ΔBLEU", both relative to their own greedy baseline (ours 36.24 on a
9.6M-parameter model, the thesis's 34.713 on a 63.7M one), then the two compression ratios.
"""

from pathlib import Path

import click
import pandas as pd

THESIS_BASELINE = 34.713  # seed 000, §4.1
GROUPS = ["ff", "att", "emb", "gen", "ff+emb+gen", "full"]


@click.command()
@click.option("--results", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--thesis", default=str(Path(__file__).with_name("thesis_table_4_1.csv")), show_default=True,
              type=click.Path(exists=True, dir_okay=False))
def main(results: str, thesis: str) -> None:
    ours = pd.read_csv(results)
    base = float(ours.loc[ours["cell"] == "baseline", "bleu"].iloc[0])
    ours = ours[ours["method"] == "ptq"].set_index(["bits", "mode", "group"])
    theirs = pd.read_csv(thesis).set_index(["bits", "mode", "group"])
    print(f"ours: baseline {base:.2f} greedy; thesis: baseline {THESIS_BASELINE} greedy\n")
    print("| ΔBLEU ours / thesis (ratio ours, thesis) | " + " | ".join(g.upper().replace("+", ",") for g in GROUPS) + " |")
    print("|" + "---|" * (len(GROUPS) + 1))
    for bits in (16, 8, 4, 3):
        for mode in ("asym", "sym"):
            cells = []
            for g in GROUPS:
                key = (bits, mode, g)
                if key not in ours.index:
                    cells.append("–")
                    continue
                o, t = ours.loc[key], theirs.loc[key]
                cells.append(f"{o['bleu'] - base:+.2f} / {t['bleu'] - THESIS_BASELINE:+.2f} "
                             f"({o['compression_ratio']:.3f}x, {t['compression_ratio']:.3f}x)")
            print(f"| {bits}-bit {mode} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
