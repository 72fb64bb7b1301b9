"""Aggregate: the baseline and every cell's metrics -> one table, thesis-style Markdown, a summary.

The Markdown follows the thesis's tables: for quantization (PTQ, Tables 4.1–4.2; QAT, 4.5–4.6) a row
per bit width and mode, for AGP (4.3–4.4) a row per schedule, a column per layer group, each cell
"BLEU / ratio". BLEU of a cell is compared with the baseline decoded the same way
(greedy for the thesis's setting), never with a differently decoded number.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tcompress.config import METHODS

COLUMNS = ["cell", "method", "mode", "bits", "schedule", "group", "bleu", "delta_bleu", "chrf",
           "compression_ratio", "n_compressed", "n_model", "nonzero", "decoding", "stored_megabytes",
           "sentences_per_second", "finetune_steps", "finetune_seconds", "compress_seconds"]
MODE_NAMES = {"sym": "Sym.", "asym": "Asym."}


def baseline_row(baseline: dict, decoding: str) -> dict:
    scored = baseline["greedy"] if decoding == "greedy" else baseline.get("beam", baseline)
    n = baseline["parameters"]
    return {"cell": "baseline", "method": "baseline", "mode": None, "bits": 32, "group": None,
            "bleu": scored["bleu"], "chrf": scored["chrf"], "compression_ratio": 1.0, "n_compressed": 0,
            "n_model": n, "decoding": decoding, "stored_megabytes": round(n * 4 / 1e6, 3),
            "sentences_per_second": scored.get("sentences_per_second")}


def collect(baseline_file: str | Path, cells_dir: str | Path) -> pd.DataFrame:
    """One row per evaluated cell plus the baseline row(s) for the decodings the cells used."""
    baseline = json.loads(Path(baseline_file).read_text())
    cells = [json.loads(p.read_text()) for p in sorted(Path(cells_dir).glob("*.json"))]
    cells = [c for c in cells if c]  # cells the plan switched off have empty metrics
    decodings = sorted({c["decoding"] for c in cells}) or ["greedy"]
    rows = [baseline_row(baseline, d) for d in decodings]
    base_bleu = {r["decoding"]: r["bleu"] for r in rows}
    for c in cells:
        rows.append({**{k: c.get(k) for k in COLUMNS}, "stored_megabytes": round(c["stored_bits"] / 8e6, 3)})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["delta_bleu"] = (frame["bleu"] - frame["decoding"].map(base_bleu)).round(4)
    return frame


def _order(values: list, catalog: list) -> list:
    return [v for v in catalog if v in values] + sorted(v for v in values if v not in catalog)


def _row_label(method: str, key) -> str:
    if method == "agp":
        initial, final, freq = key.split("-")
        return f"{initial}% / {final}% / {freq}"
    if method == "imp":
        return "iterative"
    bits, mode = key
    return f"{bits}-bit {MODE_NAMES[mode]}"


def thesis_table(frame: pd.DataFrame, method: str, group_order: list[str]) -> str:
    """Rows ("8-bit Asym.", "10% / 70% / 1", …) by columns (groups), each "BLEU / ratio×"."""
    cells = frame[frame["method"] == method]
    groups = _order(list(cells["group"].unique()), group_order)
    header = "| | " + " | ".join(g.upper().replace("+", ",") for g in groups) + " |"
    lines = [header, "|" + "---|" * (len(groups) + 1)]
    if method == "agp":
        keys = sorted(cells["schedule"].unique(), key=lambda k: [int(x) for x in k.split("-")])
        select = [(k, cells["schedule"] == k) for k in keys]
    elif method == "imp":
        select = [(None, cells["group"].notna())]
    else:
        select = [((b, m), (cells["bits"] == b) & (cells["mode"] == m))
                  for b in sorted(cells["bits"].dropna().unique(), reverse=True) for m in ("asym", "sym")]
    for key, mask in select:
        row = cells[mask].set_index("group")
        if row.empty:
            continue
        entries = [f"{row.at[g, 'bleu']:.2f} / {row.at[g, 'compression_ratio']:.3f}x" if g in row.index else "–"
                   for g in groups]
        bits_key = (int(key[0]), key[1]) if isinstance(key, tuple) else key
        lines.append(f"| {_row_label(method, bits_key)} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


TITLES = {"ptq": "Post-training quantization", "qat": "Quantization-aware training",
          "agp": "Automated gradual pruning (initial / final sparsity / frequency)",
          "imp": "Iterative magnitude pruning"}


def markdown_report(frame: pd.DataFrame, group_orders: dict[str, tuple[str, ...]]) -> str:
    """``group_orders``: the column order of each method's table (the catalog's)."""
    base = frame[frame["method"] == "baseline"]
    parts = ["# Compression results", "",
             "Each cell: test BLEU / compression ratio: r = n_m·32 / (n_c·b + (n_m − n_c)·32) for "
             "quantization, r = n_m / NNZ for pruning (thesis §4.1).", ""]
    for _, b in base.iterrows():
        parts.append(f"Baseline ({b['decoding']}): BLEU {b['bleu']:.2f}, {int(b['n_model']):,} parameters.")
    present = set(frame["method"].unique())
    for method in [m for m in METHODS if m in present] + sorted(present - set(METHODS) - {"baseline"}):
        parts += ["", f"## {TITLES.get(method, method)}", "", thesis_table(frame, method, list(group_orders.get(method, ())))]
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
    """BLEU against ratio, one series per method/mode (the baseline is its own series at 1×)."""
    points = []
    for _, r in frame.iterrows():
        if r["method"] in ("ptq", "qat"):
            series = f"{r['method']}/{r['mode']}"
        else:
            series = r["method"]
        points.append({"series": series, "cell": r["cell"], "compression_ratio": float(r["compression_ratio"]),
                       "bleu": float(r["bleu"])})
    return points
