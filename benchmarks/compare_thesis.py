"""Our Multi30k grids beside the thesis's Tables 4.1 (PTQ), 4.3 (AGP) and 4.5 (QAT), as Markdown.

    python benchmarks/compare_thesis.py --results metrics/results.csv --method ptq   # Table 4.1
    python benchmarks/compare_thesis.py --results metrics/results.csv --method qat   # Table 4.5
    python benchmarks/compare_thesis.py --results metrics/results.csv --method agp   # Table 4.3

Each cell: "ours ΔBLEU / thesis ΔBLEU", both relative to their own greedy baseline (ours on a
9.6M-parameter model, the thesis's 34.713 on a 63.7M one), then the two compression ratios.
A cell our results do not hold yet shows "–".
"""

from pathlib import Path

import click
import pandas as pd

THESIS_BASELINE = 34.713  # seed 000, §4.1
HERE = Path(__file__).parent
# method -> (thesis table file, key columns, row keys in the thesis's order, column groups)
TABLES = {
    "ptq": ("thesis_table_4_1.csv", ["bits", "mode"],
            [(b, m) for b in (16, 8, 4, 3) for m in ("asym", "sym")],
            ["ff", "att", "emb", "gen", "ff+emb+gen", "full"]),
    "qat": ("thesis_table_4_5.csv", ["bits", "mode"],
            [(b, m) for b in (16, 8, 4, 3) for m in ("asym", "sym")],
            ["ff", "att", "emb", "gen", "ff+emb+gen", "full"]),
    "agp": ("thesis_table_4_3.csv", ["schedule"],
            [("10-70-1",), ("45-70-3",), ("90-100-1",)],
            ["ff", "att", "emb", "gen", "ff+att", "full"]),
}


def _label(key: tuple) -> str:
    if len(key) == 1:
        initial, final, freq = key[0].split("-")
        return f"{initial}% → {final}% / {freq}"
    return f"{key[0]}-bit {key[1]}"


@click.command()
@click.option("--results", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--method", type=click.Choice(sorted(TABLES)), default="ptq", show_default=True)
def main(results: str, method: str) -> None:
    table, keys, rows, groups = TABLES[method]
    ours = pd.read_csv(results)
    base = float(ours.loc[ours["cell"] == "baseline", "bleu"].iloc[0])
    ours = ours[ours["method"] == method]
    if "bits" in keys:
        ours = ours.astype({"bits": int})
    ours = ours.set_index(keys + ["group"])
    theirs = pd.read_csv(HERE / table).set_index(keys + ["group"])
    print(f"ours: baseline {base:.2f} greedy; thesis: baseline {THESIS_BASELINE} greedy ({table})\n")
    print("| ΔBLEU ours / thesis (ratio ours, thesis) | "
          + " | ".join(g.upper().replace("+", ",") for g in groups) + " |")
    print("|" + "---|" * (len(groups) + 1))
    for row in rows:
        cells = []
        for g in groups:
            key = (*row, g)
            if key not in ours.index:
                cells.append("–")
                continue
            o, t = ours.loc[key], theirs.loc[key]
            cells.append(f"{o['bleu'] - base:+.2f} / {t['bleu'] - THESIS_BASELINE:+.2f} "
                         f"({o['compression_ratio']:.3f}x, {t['compression_ratio']:.3f}x)")
        print(f"| {_label(row)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
