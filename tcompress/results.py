"""Aggregate: the baseline and every cell's metrics -> one table, thesis-style Markdown, a summary.

Loops over the method registry: each method's table has a row per combination of its ``row_axes``
(labelled by its ``row_label``: "8-bit Asym.", "10% / 70% / 1") and a column per layer group in its
catalog's order, each entry "BLEU / ratio" as in the thesis's Tables 4.1–4.6. A cell's BLEU is
compared with the baseline decoded the same way (greedy for the thesis's setting), never with a
differently decoded number.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tcompress.data.corpora import read_text_lines
from tcompress.methods import get, registered

METRIC_COLUMNS = ["bleu", "delta_bleu", "delta_ci_low", "delta_ci_high", "p_value", "delta_control",
                  "delta_control_ci_low", "delta_control_ci_high", "p_value_control", "delta_ref", "significant",
                  "chrf", "compression_ratio", "file_ratio", "file_bytes", "n_compressed", "n_model", "nonzero", "decoding",
                  "stored_megabytes", "bleu_int8", "sentences_per_second_int8", "int8_kernel",
                  "sentences_per_second", "finetune_steps", "finetune_seconds", "compress_seconds", "precision",
                  "from_scratch"]
# With params.yaml's deploy section on: the CTranslate2 export's numbers (tcompress.deploy).
DEPLOYED_COLUMNS = ["bleu_deployed", "sentences_per_second_deployed", "deployed_bytes", "deployed_compute_type",
                    "deployed_differences"]


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
            "file_bytes": baseline.get("checkpoint_bytes"), "file_ratio": 1.0,
            "stored_megabytes": round(n * 4 / 1e6, 3), "sentences_per_second": scored.get("sentences_per_second"),
            "precision": baseline.get("precision"),
            # its float32 export's numbers, on the row decoded as the export was
            **({k: baseline[k] for k in DEPLOYED_COLUMNS if k in baseline}
               if baseline.get("deployed_decoding") == decoding else {})}


def translations_folder(cell: str, same_as) -> str:
    """The cell folder holding a cell's translations: a shared control's are its twin's (``same_as``)."""
    return same_as if isinstance(same_as, str) else cell


def _significance(frame: pd.DataFrame, cell_dirs: Path, baseline_hyps: Path, references: list[str]) -> pd.DataFrame:
    """Paired bootstrap of every cell against the baseline decoded the same way, and of every
    trained cell against its method's control (tcompress.significance)."""
    from tcompress.significance import ALPHA, paired_bootstrap

    frame = frame.copy()
    cells = frame[frame["method"] != "baseline"]
    folders = [translations_folder(c, same) for c, same in zip(cells["cell"], cells["same_as"])]
    hyps = {c: read_text_lines(cell_dirs / f / "hyps.txt") for c, f in zip(cells["cell"], folders)}
    for decoding in cells["decoding"].unique():
        base = read_text_lines(baseline_hyps / f"baseline.{'greedy' if decoding == 'greedy' else 'beam'}.txt")
        decoded = cells["decoding"] == decoding
        # By folder: the controls that share one set of translations are bootstrapped once.
        pairs = [(c, f) for c, f, d in zip(cells["cell"], folders, decoded) if d]
        by_folder = paired_bootstrap(base, {f: hyps[c] for c, f in pairs}, references)
        for cell, folder in pairs:
            r = by_folder[folder]
            i = frame.index[frame["cell"] == cell][0]
            frame.loc[i, ["delta_ci_low", "delta_ci_high", "p_value"]] = [r["ci_low"], r["ci_high"], r["p_value"]]
    for _, control in cells[cells["control"] == True].iterrows():  # noqa: E712 (a column of objects)
        trained = cells[(cells["method"] == control["method"]) & (cells["control"] != True)]  # noqa: E712
        for cell, r in paired_bootstrap(hyps[control["cell"]], {c: hyps[c] for c in trained["cell"]},
                                        references).items():
            i = frame.index[frame["cell"] == cell][0]
            frame.loc[i, ["delta_control", "delta_control_ci_low", "delta_control_ci_high", "p_value_control"]] = \
                [r["delta"], r["ci_low"], r["ci_high"], r["p_value"]]
    # Against its control where it has one; an interval containing 0 is not significant (sacrebleu
    # gives identical systems p = 0.001 by design, their interval is [0, 0]).
    use_control = frame["delta_control"].notna()
    low = frame["delta_control_ci_low"].where(use_control, frame["delta_ci_low"])
    high = frame["delta_control_ci_high"].where(use_control, frame["delta_ci_high"])
    p = frame["p_value_control"].where(use_control, frame["p_value"])
    is_cell = frame["method"] != "baseline"
    frame["significant"] = ((p < ALPHA) & ((low > 0) | (high < 0))).astype(object).where(is_cell, None)
    return frame


def _with_shared_controls(cells: list[dict]) -> list[dict]:
    """A control the plan shared with another (``same_as``: the same training) takes that one's
    results under its own name and method, so each method's table still has its control."""
    by_cell = {c["cell"]: c for c in cells}
    out = []
    for c in cells:
        if "same_as" in c:
            if c["same_as"] not in by_cell:
                raise ValueError(f"{c['cell']} is trained by {c['same_as']}'s stage (the same budget), whose metrics "
                                 f"are missing: run `dvc repro cell@{c['same_as']}`")
            c = {**by_cell[c["same_as"]], **c}
        out.append(c)
    return out


def collect(baseline_file: str | Path, cells_dir: str | Path, cell_dirs: str | Path | None = None,
            baseline_hyps: str | Path | None = None, references: list[str] | None = None) -> pd.DataFrame:
    """One row per evaluated cell plus the baseline row(s) for the decodings the cells used.

    ``delta_bleu`` is against the baseline decoded the same way; a trained cell's ``delta_control``
    against its method's control (the same fine-tuning, no compression); ``delta_ref`` is the
    control's where there is one, else the baseline's: the one to rank cells by. With the
    hypotheses and references, each Δ gets its paired-bootstrap 95 % interval and p-value."""
    baseline = json.loads(Path(baseline_file).read_text())
    cells = [json.loads(p.read_text()) for p in sorted(Path(cells_dir).glob("*.json"))]
    cells = _with_shared_controls([c for c in cells if c])  # cells the plan switched off have empty metrics
    decodings = sorted({c["decoding"] for c in cells}) or ["greedy"]
    rows = [baseline_row(baseline, d) for d in decodings]
    base_bleu = {r["decoding"]: r["bleu"] for r in rows}
    columns = ["cell", "method", "control", "chain", "same_as", *axis_columns(), *METRIC_COLUMNS, *DEPLOYED_COLUMNS]
    for c in cells:
        rows.append({**{k: c.get(k) for k in columns}, "control": bool(c.get("control")),
                     "stored_megabytes": round(c["stored_bits"] / 8e6, 3)})
    frame = pd.DataFrame(rows, columns=columns)
    frame["control"] = frame["control"].fillna(False).astype(bool)
    frame["from_scratch"] = frame["from_scratch"].map(lambda v: bool(v) if pd.notna(v) else False)
    frame["delta_bleu"] = (frame["bleu"] - frame["decoding"].map(base_bleu)).round(4)
    control_bleu = {r["method"]: r["bleu"] for _, r in frame[frame["control"]].iterrows()}
    reference = frame["method"].map(lambda m: control_bleu.get(m, float("nan"))).astype(float)
    frame["delta_control"] = (frame["bleu"].astype(float) - reference).round(4).where(~frame["control"])
    if cell_dirs is not None and len(cells):
        frame = _significance(frame, Path(cell_dirs), Path(baseline_hyps), references)
    frame["delta_ref"] = frame["delta_control"].where(frame["delta_control"].notna(), frame["delta_bleu"])
    return frame


def _order(values: list, catalog: list) -> list:
    return [v for v in catalog if v in values] + sorted(v for v in values if v not in catalog)


def method_table(frame: pd.DataFrame, method_name: str, columns: list[str]) -> str:
    """Rows (one per combination of the method's row axes) by layer groups, each "BLEU / ratio×"."""
    method = get(method_name)
    cells = frame[(frame["method"] == method_name) & ~frame["control"] & frame["chain"].isna()]
    grouped = any(a.name == "group" for a in method.axes)
    groups = _order(list(cells["group"].dropna().unique()), columns) if grouped and "group" in cells else []
    heads = [g.upper().replace("+", ",") for g in groups] if grouped else ["whole model"]
    lines = ["| | " + " | ".join(heads) + " |", "|" + "---|" * (len(heads) + 1)]
    rows = cells[list(method.row_axes)].drop_duplicates() if method.row_axes else pd.DataFrame([{}])
    for axis in reversed(method.row_axes):   # text values in the catalog's order (ops: all, naive, …)
        order = list(method.catalog.get(method.axis(axis).key, ()))
        if method.axis(axis).kind is str and order and axis != "mode":   # modes: _row_sort
            rows = rows.sort_values(axis, key=lambda v, order=order: v.map(
                lambda x: order.index(x) if x in order else len(order)), kind="stable")
    for _, key in rows.iterrows():
        mask = pd.Series(True, index=cells.index)
        for axis in method.row_axes:
            mask &= cells[axis] == key[axis]
        values = {a: (int(key[a]) if method.axis(a).kind is int else key[a]) for a in method.row_axes}
        label = method.row_label(values)
        if "from_scratch" in cells and cells[mask]["from_scratch"].astype(bool).any():   # a fresh model trained
            label += " (from scratch)"
        if grouped:
            row = cells[mask].set_index("group")
            entries = [_entry(row.loc[g]) if g in row.index else "–" for g in groups]
        else:          # a method without layer groups (FullyQT, node pruning): one cell per row
            entries = [_entry(cells[mask].iloc[0])]
        lines.append(f"| {label} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


def _entry(cell: pd.Series) -> str:
    """``36.65 (+0.41) / 4.000x (3.95x)``: BLEU, Δ against its reference (control or baseline), the
    thesis's ratio and, in brackets, the file's (fp32 checkpoint bytes / artifact bytes); ``ns``
    where the paired bootstrap finds the difference not significant at p < 0.05."""
    if cell.get("n_seeds", 1) > 1:   # several seeds: mean ± sd of BLEU, mean Δ, and n
        text = (f"{cell['bleu_mean']:.2f} ± {cell['bleu_sd']:.2f} ({cell['delta_ref_mean']:+.2f}, n={cell['n_seeds']}) "
                f"/ {cell['compression_ratio']:.3f}x")
    else:
        text = f"{cell['bleu']:.2f} ({cell['delta_ref']:+.2f}) / {cell['compression_ratio']:.3f}x"
    if pd.notna(cell.get("file_ratio")):
        text += f" ({cell['file_ratio']:.2f}x)"
    if cell.get("n_seeds", 1) > 1:   # the interval over seeds and sentences decides
        return text + (" ns" if cell["seeds_ci_low"] <= 0 <= cell["seeds_ci_high"] else "")
    significant = cell.get("significant")
    return text + (" ns" if significant is not None and not pd.isna(significant) and not significant else "")


def _row_sort(frame: pd.DataFrame) -> pd.DataFrame:
    """Quantization rows from the widest bit width down, as the thesis prints them."""
    if "bits" in frame:
        return frame.sort_values(["bits", "mode"], ascending=[False, True], na_position="last", kind="stable")
    return frame


def markdown_report(frame: pd.DataFrame, layout: dict[str, dict]) -> str:
    """``layout``: per method, the column order of its table (the catalog's groups)."""
    base = frame[frame["method"] == "baseline"]
    parts = ["# Compression results", "",
             "Each cell: test BLEU (ΔBLEU) / compression ratio: r = n_m·32 / (n_c·b + (n_m − n_c)·32) for "
             "quantization, r = n_m / NNZ for pruning (thesis §4.1), then in brackets the file's ratio: the "
             "bytes of the baseline's float32 checkpoint over the bytes of the cell's artifact, the file a "
             "user ships (bit-packed codes, float32 scales, pruned tensors as bitmask + nonzeros). Δ is against the baseline decoded the "
             "same way, or, for a method that fine-tunes, against its control (the same fine-tuning with no "
             "compression). `ns`: not significant at p < 0.05 (sacrebleu's paired bootstrap, 1,000 resamples; "
             "95 % intervals in results.csv).", ""]
    for _, b in base.iterrows():
        size = "" if pd.isna(b["file_bytes"]) else f", checkpoint {int(b['file_bytes']):,} bytes"
        parts.append(f"Baseline ({b['decoding']}): BLEU {b['bleu']:.2f}, {int(b['n_model']):,} parameters{size}.")
    present = set(frame["method"].unique())
    for method in registered():
        if method.name in present:
            cells = _row_sort(frame[frame["method"] == method.name])
            own = ~cells["control"] & cells["chain"].isna()    # not a control, not a chain's last link
            if not (own | cells["control"]).any():
                continue
            parts += ["", f"## {method.title}"]
            if own.any():
                parts += ["", method_table(cells, method.name, layout.get(method.name, {}).get("columns", []))]
            for _, c in cells[cells["control"]].iterrows():
                ci = "" if pd.isna(c["delta_ci_low"]) else f", 95 % CI [{c['delta_ci_low']:+.2f}, {c['delta_ci_high']:+.2f}]"
                once = "" if pd.isna(c["same_as"]) else f"; trained once with `{c['same_as']}`, the same budget"
                parts += ["", f"Control `{c['cell']}` (the same fine-tuning, nothing compressed{once}): BLEU "
                              f"{c['bleu']:.2f}, {c['delta_bleu']:+.2f} against the baseline{ci}."]
    chains = frame[frame["chain"].notna()]
    if len(chains):
        parts += ["", "## Chains (each link starts from the model of the links before it)", "",
                  "The ratio counts each nonzero parameter at its stored width (n_m·32 / Σ nonzero bits: pruning's "
                  "and quantization's formulas at once); Δ as above, against the last link's control where it "
                  "fine-tunes.", "", "| chain | BLEU (Δ) / ratio (file) | starts from |", "|---|---|---|"]
        by_id = frame.set_index("cell")
        for _, c in chains.sort_values("compression_ratio").iterrows():
            parent = c["cell"].rsplit("_then_", 1)[0]
            start = _entry(by_id.loc[parent]) if parent in by_id.index else "–"
            parts.append(f"| {c['chain']} | {_entry(c)} | {parent}: {start} |")
    points = frame[~frame["control"] & (frame["decoding"] == frame["decoding"].iloc[-1])]
    for column, what in (("compression_ratio", "the formula's ratio"), ("file_ratio", "the file's ratio")):
        rows = points[points[column].notna() | (points["method"] == "baseline")]
        front = pareto_front([FrontPoint(1.0 if r["method"] == "baseline" else float(r[column]), float(r["bleu"]),
                                         r["cell"]) for _, r in rows.iterrows()])
        if front:
            parts += ["", f"## Pareto front: BLEU against {what}", "",
                      "The cells no other cell beats on both BLEU and compression (controls left out; the "
                      "baseline at 1x).", "", "| cell | BLEU | ratio |", "|---|---|---|"]
            parts += [f"| {p.cell} | {p.y:.2f} | {p.x:.2f}x |" for p in front]
    return "\n".join(parts) + "\n"


def deployed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with an int8 BLEU or a CTranslate2 export's numbers (the baseline's float32 export first)."""
    have = pd.Series(False, index=frame.index)
    for column in ("bleu_int8", "bleu_deployed"):
        if column in frame:
            have |= frame[column].notna()
    return frame[have]


def deployed_table(frame: pd.DataFrame) -> str:
    """tables.md's last section, where any row has them: BLEU beside int8 BLEU, the CTranslate2
    export's BLEU, speed and bytes ("" where none has)."""
    rows = deployed_rows(frame)
    if rows.empty:
        return ""

    def num(value, spec: str) -> str:
        return "–" if value is None or pd.isna(value) else format(value, spec)
    parts = ["", "## Decoded as shipped: int8 matmuls and the CTranslate2 export", "",
             "BLEU as evaluated; with int8 matmuls of the cell's codes (`translate --int8`); with its CTranslate2 "
             "export (deploy section: int8 codes for a cell, float32 for the baseline), its speed on this "
             "machine and the bytes of its export folder; what the export computes differently (its manifest).",
             "", "| cell | BLEU | int8 BLEU | CTranslate2 BLEU | sentences/s | CTranslate2 sentences/s | "
                 "export MB | export differs by |", "|---|---|---|---|---|---|---|---|"]
    for _, r in rows.iterrows():
        size = r.get("deployed_bytes")
        differs = r.get("deployed_differences")
        parts.append(f"| {r['cell']} | {num(r['bleu'], '.2f')} | {num(r.get('bleu_int8'), '.2f')} | "
                     f"{num(r.get('bleu_deployed'), '.2f')} | {num(r['sentences_per_second'], '.0f')} | "
                     f"{num(r.get('sentences_per_second_deployed'), '.0f')} | "
                     f"{num(None if pd.isna(size) else size / 1e6, '.2f')} | {'–' if pd.isna(differs) else differs} |")
    return "\n".join(parts) + "\n"


def pareto_front(points: list, larger_x_better: bool = True) -> list:
    """The points no other point beats on both BLEU (y) and x (a larger ratio, or fewer bytes)."""
    sign = 1 if larger_x_better else -1
    front: list = []
    best = -math.inf
    for p in sorted(points, key=lambda p: (-sign * p.x, -p.y)):
        # sweeping from the best x down, a point survives only by a higher BLEU than every point
        # with a better x (exact duplicates of a survivor survive with it)
        if p.y > best or (front and (p.x, p.y) == (front[-1].x, front[-1].y)):
            front.append(p)
            best = max(best, p.y)
    return sorted(front, key=lambda p: p.x)


@dataclass(frozen=True)
class FrontPoint:
    x: float      # compression
    y: float      # BLEU
    cell: str


SUMMARY_RATIOS = (4, 8)


def _best(cells: pd.DataFrame, ratio: float) -> pd.Series | None:
    """The cell with the highest Δ against its reference (its control, else the baseline); over
    several seeds, the highest mean Δ."""
    eligible = cells[(cells["compression_ratio"] >= ratio - 1e-6) & ~cells["control"]]
    rank = "delta_ref_mean" if "delta_ref_mean" in cells else "delta_ref"
    return None if eligible.empty else eligible.loc[eligible[rank].astype(float).idxmax()]


def _seed_facts(best: pd.Series) -> dict:
    """A cell's statistics over seeds, where there are several (``tcompress.seeds``)."""
    if best.get("n_seeds", 1) <= 1:
        return {}
    return {"n_seeds": int(best["n_seeds"]), "bleu_mean": float(best["bleu_mean"]), "bleu_sd": float(best["bleu_sd"]),
            "delta_ref_mean": float(best["delta_ref_mean"]), "delta_ref_sd": float(best["delta_ref_sd"]),
            "seeds_ci_low": float(best["seeds_ci_low"]), "seeds_ci_high": float(best["seeds_ci_high"])}


def _deployed_facts(row: pd.Series) -> dict:
    """A row's int8 BLEU and its export's BLEU, speed and bytes, where it has them."""
    keys = {"bleu_int8": float, "bleu_deployed": float, "sentences_per_second_deployed": float,
            "deployed_bytes": int}
    return {k: cast(row[k]) for k, cast in keys.items() if k in row and pd.notna(row[k])}


def deployed_text(facts: dict) -> str:
    """``; int8 66.10; CTranslate2 66.02, 812 sentences/s, 1.21 MB`` (what of it the facts hold)."""
    parts = [f"int8 {facts['bleu_int8']:.2f}"] if "bleu_int8" in facts else []
    if "bleu_deployed" in facts:
        parts.append(f"CTranslate2 {facts['bleu_deployed']:.2f}, {facts['sentences_per_second_deployed']:.0f} "
                     f"sentences/s, {facts['deployed_bytes'] / 1e6:.2f} MB")
    return "; " + "; ".join(parts) if parts else ""


def best_deployed(frame: pd.DataFrame) -> dict | None:
    """The best deployable point: among the cells with a CTranslate2 export's numbers, the highest
    ``bleu_deployed`` whose ``sentences_per_second_deployed`` beats the baseline's fp32 PyTorch
    ``sentences_per_second`` (greedy where the frame has that row), or the fastest export if none
    does; with its BLEU, speed and bytes against the baseline's, and under ``fastest`` the fastest
    export where that is another cell (a distilled student, typically: less BLEU, more speed). None
    without deployed cells or a baseline speed. Over several seeds the frame's numbers are the first
    seed's (``tcompress.seeds``)."""
    if "bleu_deployed" not in frame or "sentences_per_second_deployed" not in frame:
        return None
    base = frame[frame["method"] == "baseline"]
    base = base.sort_values("decoding", key=lambda d: d != "greedy", kind="stable")   # greedy first
    cells = frame[(frame["method"] != "baseline") & frame["bleu_deployed"].notna()
                  & frame["sentences_per_second_deployed"].notna()]
    if cells.empty or base.empty or pd.isna(base.iloc[0]["sentences_per_second"]):
        return None
    b = base.iloc[0]
    speed = float(b["sentences_per_second"])
    base_bytes = int(b["file_bytes"]) if pd.notna(b.get("file_bytes")) else None

    def point(row: pd.Series) -> dict:
        out = {"cell": row["cell"], "bleu_deployed": float(row["bleu_deployed"]),
               "sentences_per_second_deployed": float(row["sentences_per_second_deployed"]),
               "deployed_bytes": int(row["deployed_bytes"]),
               "speedup": round(float(row["sentences_per_second_deployed"]) / speed, 3)}
        if base_bytes is not None:
            out["bytes_ratio"] = round(base_bytes / out["deployed_bytes"], 3)
        return out

    faster = cells[cells["sentences_per_second_deployed"].astype(float) > speed]
    fastest = cells.loc[cells["sentences_per_second_deployed"].astype(float).idxmax()]
    best = faster.loc[faster["bleu_deployed"].astype(float).idxmax()] if len(faster) else fastest
    out = {**point(best), "rule": "faster than the baseline" if len(faster) else "fastest export",
           "baseline_bleu": float(b["bleu"]), "baseline_decoding": b["decoding"],
           "baseline_sentences_per_second": speed}
    if base_bytes is not None:
        out["baseline_bytes"] = base_bytes
    if fastest["cell"] != best["cell"]:
        out["fastest"] = point(fastest)
    if best.get("n_seeds", 1) > 1:
        out["first_seed_of"] = int(best["n_seeds"])
    return out


def _size(p: dict, base: dict) -> str:
    if "baseline_bytes" not in base:
        return f"{p['deployed_bytes'] / 1e6:.2f} MB"
    return (f"{p['deployed_bytes'] / 1e6:.2f} MB against the baseline checkpoint's {base['baseline_bytes'] / 1e6:.2f} "
            f"MB ({p['bytes_ratio']:.2f}× smaller)")


def best_deployed_text(b: dict) -> str:
    """summary.md's line on ``best_deployed``'s point, with its rule, and the fastest export beside it."""
    seeds = f" Numbers of the first seed's run (of {b['first_seed_of']})." if "first_seed_of" in b else ""
    fallback = "" if b["rule"] == "faster than the baseline" else " No export beats it, so this is the fastest one."
    f = b.get("fastest")
    fastest = "" if f is None else (
        f" The fastest export: `{f['cell']}`, BLEU {f['bleu_deployed']:.2f}, {f['sentences_per_second_deployed']:.0f} "
        f"sentences/s, {f['speedup']:.2f}× the baseline's fp32 PyTorch, {_size(f, b)}.")
    return (f"The best deployable point: `{b['cell']}` as its CTranslate2 export, BLEU {b['bleu_deployed']:.2f} "
            f"against the baseline's fp32 PyTorch {b['baseline_bleu']:.2f} ({b['baseline_decoding']}), "
            f"{b['sentences_per_second_deployed']:.0f} sentences/s, {b['speedup']:.2f}× the baseline's fp32 PyTorch "
            f"{b['baseline_sentences_per_second']:.0f}, {_size(b, b)}. Rule: among the exported cells, the highest "
            f"BLEU whose export decodes more sentences/s than the baseline's fp32 PyTorch {b['baseline_decoding']} "
            f"decoding."
            f"{fallback}{fastest} Each speed is one pass of its own stage: the ratio holds where the evaluate and cell "
            f"stages ran on one machine.{seeds}")


def summary(frame: pd.DataFrame) -> dict:
    """Baseline BLEU, cell count, and the best cell at ≥4× and ≥8×: overall and per method."""
    cells = frame[frame["method"] != "baseline"]
    base = frame[frame["method"] == "baseline"]
    out: dict = {"baseline_bleu": float(base["bleu"].iloc[0]) if len(base) else None,
                 "decoding": base["decoding"].iloc[0] if len(base) else None, "cells": int(len(cells))}
    if len(base) and base.iloc[0].get("n_seeds", 1) > 1:
        out.update({"seeds": int(base.iloc[0]["n_seeds"]), "baseline_bleu_mean": float(base.iloc[0]["bleu_mean"]),
                    "baseline_bleu_sd": float(base.iloc[0]["bleu_sd"])})
    deployed = base[base["bleu_deployed"].notna()] if "bleu_deployed" in base else base.iloc[:0]
    if len(deployed):
        out["baseline_deployed"] = _deployed_facts(deployed.iloc[0])
    point = best_deployed(frame)
    if point is not None:
        out["best_deployed"] = point
    for ratio in SUMMARY_RATIOS:
        best = _best(cells, ratio)
        out[f"best_delta_at_{ratio}x"] = None if best is None else float(best["delta_ref"])
        out[f"best_bleu_at_{ratio}x"] = None if best is None else float(best["bleu"])
        out[f"best_cell_at_{ratio}x"] = None if best is None else best["cell"]
    out["by_method"] = {}
    for method in registered():
        own = cells[cells["method"] == method.name]
        if own.empty:
            continue
        entry = {}
        for ratio in SUMMARY_RATIOS:
            best = _best(own, ratio)
            entry[f"{ratio}x"] = None if best is None else {
                "cell": best["cell"], "bleu": float(best["bleu"]), "delta_bleu": float(best["delta_bleu"]),
                "delta_ref": float(best["delta_ref"]), "reference": "control" if pd.notna(best["delta_control"])
                else "baseline", "compression_ratio": float(best["compression_ratio"]),
                **({} if pd.isna(best["file_ratio"]) else {"file_ratio": float(best["file_ratio"]),
                                                           "file_bytes": int(best["file_bytes"])}),
                **_deployed_facts(best),
                **({} if pd.isna(best["delta_ci_low"]) else {
                    "ci_low": float(best["delta_control_ci_low"] if pd.notna(best["delta_control"]) else best["delta_ci_low"]),
                    "ci_high": float(best["delta_control_ci_high"] if pd.notna(best["delta_control"]) else best["delta_ci_high"]),
                    "significant": bool(best["significant"])}), **_seed_facts(best)}
        out["by_method"][method.name] = entry
    return out


def markdown_summary(summary_: dict) -> str:
    """The first thing to read after a grid: the best cell of each method at ≥4× and ≥8×."""
    lines = ["# Summary", "",
             (f"Baseline BLEU {summary_['baseline_bleu_mean']:.2f} ± {summary_['baseline_bleu_sd']:.2f} over "
              f"{summary_['seeds']} seeds (mean ± sd; each cell against its own seed's references, its interval "
              "from resampling seeds and test sentences together) "
              if "seeds" in summary_ else f"Baseline BLEU {summary_['baseline_bleu']:.2f} ")
             + f"({summary_['decoding']}); {summary_['cells']} cells. "
             "Best cell of each method at a compression ratio of at least 4× and 8×, ranked by ΔBLEU against "
             "its reference (a fine-tuning method's control, else the baseline decoded the same way), with the "
             "paired-bootstrap 95 % interval; ns: not significant at p < 0.05; the ratio is the thesis's, the "
             "file's (float32 checkpoint bytes / artifact bytes) in brackets. Every cell: tables.md.", ""]
    entries = [b for entry in summary_["by_method"].values() for b in entry.values() if b]
    if "baseline_deployed" in summary_ or any(deployed_text(b) for b in entries):
        base = summary_.get("baseline_deployed")
        lines += ["Where a cell has them: its BLEU decoded with int8 matmuls (`int8`), and its CTranslate2 export's "
                  "BLEU, speed and folder size (params.yaml's deploy section" +
                  (f"; the baseline's float32 export: {deployed_text(base)[2:]})." if base else ").") + "", ""]
    if "best_deployed" in summary_:
        lines += [best_deployed_text(summary_["best_deployed"]), ""]
    lines += ["| method | best at ≥ 4× | best at ≥ 8× |", "|---|---|---|"]
    for name, entry in summary_["by_method"].items():
        cols = []
        for ratio in SUMMARY_RATIOS:
            b = entry[f"{ratio}x"]
            if b is None:
                cols.append("–")
                continue
            ci = f" [{b['ci_low']:+.2f}, {b['ci_high']:+.2f}]{'' if b['significant'] else ' ns'}" if "ci_low" in b else ""
            size = f" (file {b['file_ratio']:.2f}×)" if "file_ratio" in b else ""
            if "n_seeds" in b:   # mean ± sd over seeds, the interval over seeds and sentences
                ns = " ns" if b["seeds_ci_low"] <= 0 <= b["seeds_ci_high"] else ""
                cols.append(f"`{b['cell']}`: {b['bleu_mean']:.2f} ± {b['bleu_sd']:.2f}, Δ {b['delta_ref_mean']:+.2f} "
                            f"± {b['delta_ref_sd']:.2f} vs {b['reference']} [{b['seeds_ci_low']:+.2f}, "
                            f"{b['seeds_ci_high']:+.2f}]{ns}, n={b['n_seeds']}, {b['compression_ratio']:.2f}×{size}")
                continue
            cols.append(f"`{b['cell']}`: {b['bleu']:.2f}, Δ {b['delta_ref']:+.2f} vs "
                        f"{b['reference']}{ci}, {b['compression_ratio']:.2f}×{size}{deployed_text(b)}")
        lines.append(f"| {get(name).title} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


SIGNIFICANCE_COLUMNS = ["delta_bleu", "delta_ci_low", "delta_ci_high", "p_value", "delta_control",
                        "delta_control_ci_low", "delta_control_ci_high", "p_value_control", "significant",
                        # over several seeds (tcompress.seeds)
                        "n_seeds", "delta_ref_mean", "delta_ref_sd", "seeds_ci_low", "seeds_ci_high"]


def significance_by_cell(frame: pd.DataFrame) -> dict[str, dict]:
    """Each cell's Δ against the baseline and its control, with intervals and p-values: one flat
    entry per cell, so that `dvc metrics show/diff metrics/significance.json` compares them."""
    out = {}
    for _, r in frame[frame["method"] != "baseline"].iterrows():
        out[r["cell"]] = {k: (None if pd.isna(r[k]) else (bool(r[k]) if k == "significant" else float(r[k])))
                          for k in SIGNIFICANCE_COLUMNS if k in r}
    return out


def plot_points(frame: pd.DataFrame) -> list[dict]:
    """BLEU against the thesis's ratio and the file's, one series per method (quantization: per
    method and mode)."""
    points = []
    for _, r in frame.iterrows():
        if r["method"] == "baseline":
            series = "baseline"
        elif r["control"]:
            series = "control (fine-tuned, uncompressed)"
        elif isinstance(r["chain"], str):
            series = f"chain > {r['method']}"
        else:
            method = get(r["method"])
            series = method.series_of({a.name: r[a.name] for a in method.axes})
        points.append({"series": series, "cell": r["cell"], "compression_ratio": float(r["compression_ratio"]),
                       "file_ratio": None if pd.isna(r["file_ratio"]) else float(r["file_ratio"]),
                       "file_megabytes": None if pd.isna(r["file_bytes"]) else round(float(r["file_bytes"]) / 1e6, 4),
                       "bleu": float(r["bleu"])})
    return points
