"""Aggregate: the baseline and every cell's metrics -> one table, thesis-style Markdown, a summary.

Loops over the method registry: each method's table has a row per combination of its ``row_axes``
(labelled by its ``row_label``: "8-bit Asym.", "10% / 70% / 1") and a column per layer group in its
catalog's order, each entry "BLEU / ratio" as in the thesis's Tables 4.1–4.6. A cell's BLEU is
compared with the baseline decoded the same way (greedy for the thesis's setting), never with a
differently decoded number.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tcompress.methods import get, registered

METRIC_COLUMNS = ["bleu", "delta_bleu", "chrf", "compression_ratio", "n_compressed", "n_model", "nonzero",
                  "decoding", "stored_megabytes", "sentences_per_second", "finetune_steps", "finetune_seconds",
                  "compress_seconds", "precision"]


def axis_columns() -> list[str]:
    names: list[str] = []
    for method in registered():
        names += [a.name for a in method.axes if a.name not in names]
    return names


def baseline_row(baseline: dict, decoding: str) -> dict:
    scored = baseline["greedy"] if decoding == "greedy" else baseline.get("beam", baseline)
    n = baseline["parameters"]
    return {"cell": "baseline", "method": "baseline", "bleu": scored["bleu"], "chrf": scored["chrf"],
            "compression_ratio": 1.0, "n_compressed": 0, "n_model": n, "decoding": decoding,
            "stored_megabytes": round(n * 4 / 1e6, 3), "sentences_per_second": scored.get("sentences_per_second"),
            "precision": baseline.get("precision")}


def collect(baseline_file: str | Path, cells_dir: str | Path) -> pd.DataFrame:
    """One row per evaluated cell plus the baseline row(s) for the decodings the cells used."""
    baseline = json.loads(Path(baseline_file).read_text())
    cells = [json.loads(p.read_text()) for p in sorted(Path(cells_dir).glob("*.json"))]
    cells = [c for c in cells if c]  # cells the plan switched off have empty metrics
    decodings = sorted({c["decoding"] for c in cells}) or ["greedy"]
    rows = [baseline_row(baseline, d) for d in decodings]
    base_bleu = {r["decoding"]: r["bleu"] for r in rows}
    columns = ["cell", "method", *axis_columns(), *METRIC_COLUMNS]
    for c in cells:
        rows.append({**{k: c.get(k) for k in columns}, "stored_megabytes": round(c["stored_bits"] / 8e6, 3)})
    frame = pd.DataFrame(rows, columns=columns)
    frame["delta_bleu"] = (frame["bleu"] - frame["decoding"].map(base_bleu)).round(4)
    return frame


def _order(values: list, catalog: list) -> list:
    return [v for v in catalog if v in values] + sorted(v for v in values if v not in catalog)


def method_table(frame: pd.DataFrame, method_name: str, columns: list[str]) -> str:
    """Rows (one per combination of the method's row axes) by layer groups, each "BLEU / ratio×"."""
    method = get(method_name)
    cells = frame[frame["method"] == method_name]
    groups = _order(list(cells["group"].dropna().unique()), columns) if "group" in cells else []
    lines = ["| | " + " | ".join(g.upper().replace("+", ",") for g in groups) + " |",
             "|" + "---|" * (len(groups) + 1)]
    rows = cells[list(method.row_axes)].drop_duplicates() if method.row_axes else pd.DataFrame([{}])
    for _, key in rows.iterrows():
        mask = pd.Series(True, index=cells.index)
        for axis in method.row_axes:
            mask &= cells[axis] == key[axis]
        row = cells[mask].set_index("group")
        values = {a: (int(key[a]) if method.axis(a).kind is int else key[a]) for a in method.row_axes}
        entries = [f"{row.at[g, 'bleu']:.2f} / {row.at[g, 'compression_ratio']:.3f}x" if g in row.index else "–"
                   for g in groups]
        lines.append(f"| {method.row_label(values)} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


def _row_sort(frame: pd.DataFrame) -> pd.DataFrame:
    """Quantization rows from the widest bit width down, as the thesis prints them."""
    if "bits" in frame:
        return frame.sort_values(["bits", "mode"], ascending=[False, True], na_position="last", kind="stable")
    return frame


def markdown_report(frame: pd.DataFrame, layout: dict[str, dict]) -> str:
    """``layout``: per method, the column order of its table (the catalog's groups)."""
    base = frame[frame["method"] == "baseline"]
    parts = ["# Compression results", "",
             "Each cell: test BLEU / compression ratio: r = n_m·32 / (n_c·b + (n_m − n_c)·32) for "
             "quantization, r = n_m / NNZ for pruning (thesis §4.1).", ""]
    for _, b in base.iterrows():
        parts.append(f"Baseline ({b['decoding']}): BLEU {b['bleu']:.2f}, {int(b['n_model']):,} parameters.")
    present = set(frame["method"].unique())
    for method in registered():
        if method.name in present:
            cells = _row_sort(frame[frame["method"] == method.name])
            parts += ["", f"## {method.title}", "",
                      method_table(cells, method.name, layout.get(method.name, {}).get("columns", []))]
    return "\n".join(parts) + "\n"


def summary(frame: pd.DataFrame) -> dict:
    cells = frame[frame["method"] != "baseline"]
    base = frame[frame["method"] == "baseline"]
    out: dict = {"baseline_bleu": float(base["bleu"].iloc[0]) if len(base) else None,
                 "decoding": base["decoding"].iloc[0] if len(base) else None, "cells": int(len(cells))}
    for ratio in (4, 8):
        eligible = cells[cells["compression_ratio"] >= ratio - 1e-6]
        key = f"best_bleu_at_{ratio}x"
        if eligible.empty:
            out[key], out[f"best_cell_at_{ratio}x"] = None, None
        else:
            best = eligible.loc[eligible["bleu"].idxmax()]
            out[key], out[f"best_cell_at_{ratio}x"] = float(best["bleu"]), best["cell"]
    return out


def plot_points(frame: pd.DataFrame) -> list[dict]:
    """BLEU against ratio, one series per method (quantization: per method and mode)."""
    points = []
    for _, r in frame.iterrows():
        if r["method"] == "baseline":
            series = "baseline"
        else:
            method = get(r["method"])
            series = method.series_of({a.name: r[a.name] for a in method.axes})
        points.append({"series": series, "cell": r["cell"], "compression_ratio": float(r["compression_ratio"]),
                       "bleu": float(r["bleu"])})
    return points
