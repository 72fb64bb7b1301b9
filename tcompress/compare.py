"""Comparisons the grid's own tables do not make: two cells against each other, and our grids
beside the thesis's.

``pairwise`` (``tcompress pairwise``) runs the grid's paired bootstrap (``tcompress.significance``:
1,000 resamples, seed 12345) on two cells' translations, for comparisons across methods or across
grids: Δ BLEU (B − A) with its 95 % interval and sacrebleu's p-value. A cell's translations are its
folder's ``hyps.txt``, what the evaluate step decoded from its artifact.

``thesis_table`` (``tcompress compare-thesis``) sets our Multi30k PTQ, QAT or AGP grid beside the
thesis's Table 4.1, 4.5 or 4.3 as Markdown. Each cell: "ours ΔBLEU / thesis ΔBLEU", both relative
to their own greedy baseline (ours on a 9.6M-parameter model, the thesis's 34.713 on a 63.7M one),
then the two compression ratios; a cell our results do not hold shows "–". The thesis's numbers are
the CSV files in ``thesis/`` beside this module.
"""

from __future__ import annotations

from pathlib import Path

from tcompress.schema import UserError

THESIS_BASELINE = 34.713  # seed 000, §4.1
THESIS_TABLES = Path(__file__).parent / "thesis"
# method -> (thesis table file, key columns, row keys in the thesis's order, column groups)
TABLES = {
    "ptq": ("table_4_1.csv", ["bits", "mode"],
            [(b, m) for b in (16, 8, 4, 3) for m in ("asym", "sym")],
            ["ff", "att", "emb", "gen", "ff+emb+gen", "full"]),
    "qat": ("table_4_5.csv", ["bits", "mode"],
            [(b, m) for b in (16, 8, 4, 3) for m in ("asym", "sym")],
            ["ff", "att", "emb", "gen", "ff+emb+gen", "full"]),
    "agp": ("table_4_3.csv", ["schedule"],
            [("10-70-1",), ("45-70-3",), ("90-100-1",)],
            ["ff", "att", "emb", "gen", "ff+att", "full"]),
}


def parse_pair(text: str) -> tuple[str, str]:
    """``CELL_A:CELL_B`` as the two cell names."""
    a, sep, b = text.partition(":")
    if not sep or not a or not b:
        raise UserError(f"{text!r}: expected CELL_A:CELL_B")
    return a, b


def cell_hyps(cells: Path, cell: str) -> list[str]:
    path = cells / cell / "hyps.txt"
    if not path.is_file():
        raise UserError(f"{path}: no such file; {cells} holds no translations of cell {cell!r}")
    return path.read_text().split("\n")[:-1]


def pairwise(cells: Path, test_split: Path, pairs: list[tuple[str, str]]) -> list[dict]:
    """For each pair (A, B): B's BLEU minus A's on the test split, its 95 % interval and p-value."""
    from tcompress.data.corpora import read_split
    from tcompress.significance import paired_bootstrap

    references = read_split(test_split)[1]
    return [{"a": a, "b": b, **paired_bootstrap(cell_hyps(cells, a), {b: cell_hyps(cells, b)}, references)[b]}
            for a, b in pairs]


def _label(key: tuple) -> str:
    if len(key) == 1:
        initial, final, freq = key[0].split("-")
        return f"{initial}% → {final}% / {freq}"
    return f"{key[0]}-bit {key[1]}"


def thesis_table(results: Path, method: str) -> str:
    """Our ``method`` cells of the aggregate's ``results.csv`` beside the thesis's table, as Markdown."""
    import pandas as pd

    table, keys, rows, groups = TABLES[method]
    ours = pd.read_csv(results)
    baseline = ours.loc[ours["cell"] == "baseline", "bleu"]
    if baseline.empty:
        raise UserError(f"{results}: no baseline row; expected the aggregate stage's results.csv")
    base = float(baseline.iloc[0])
    ours = ours[ours["method"] == method]
    if "bits" in keys:
        ours = ours.astype({"bits": int})
    ours = ours.set_index(keys + ["group"])
    theirs = pd.read_csv(THESIS_TABLES / table).set_index(keys + ["group"])
    lines = [f"ours: baseline {base:.2f} greedy; thesis: baseline {THESIS_BASELINE} greedy ({table})", "",
             "| ΔBLEU ours / thesis (ratio ours, thesis) | "
             + " | ".join(g.upper().replace("+", ",") for g in groups) + " |",
             "|" + "---|" * (len(groups) + 1)]
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
        lines.append(f"| {_label(row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
