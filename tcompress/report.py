"""The aggregate's HTML report (metrics/report.html): one self-contained page, no network request.

In the order a reader needs it: the best cell of each method at ≥ 4× and ≥ 8× (on the first
screen), the baseline, BLEU against compression ratio and against file size with their Pareto fronts,
the thesis-layout tables, training curves, and a per-layer-group sensitivity heat map. Plots are
inline SVG (tcompress.svgplot); every number comes from the results frame (tcompress.results), so
the page and metrics/summary.md cannot disagree.
"""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

import pandas as pd

from tcompress.methods import get, registered
from tcompress.results import SUMMARY_RATIOS, markdown_report, pareto_front, plot_points, summary
from tcompress.results import best_deployed_text, deployed_rows, deployed_text
from tcompress.svgplot import PALETTE, Point, Series, heat_style, xy_plot

FIXED_COLORS = {"baseline": "#222222", "control (fine-tuned, uncompressed)": "#8c8c8c"}
FILE_COLUMNS = ("file_bytes", "file_ratio")
STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1120px;
padding:0 18px 40px;color:#222}
h1{font-size:22px;margin:14px 0 2px}h2{font-size:18px;margin:26px 0 6px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:16px 0 4px}nav a{margin-right:12px}p{margin:4px 0}.note{color:#666}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #ddd;padding:2px 7px;text-align:left}
th{background:#f3f3f3;white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:13px;white-space:nowrap}
.stats{display:flex;flex-wrap:wrap;gap:4px 22px;margin:4px 0}.stats div{white-space:nowrap}
.stats b{font-size:16px}.best{display:flex;gap:12px;margin:8px 0}
.best div{flex:1;border:2px solid #4e79a7;border-radius:6px;padding:6px 10px;background:#f5f8fc}
.best b{font-size:17px}.shipped{font-size:13px;color:#444}.ns{color:#999}.sig{color:#1f6f1f;font-weight:600}
#summary-table{font-size:13px}#summary-table td{white-space:nowrap}#summary-table td:nth-child(5),#summary-table td:nth-child(9){font-size:12px}
svg.chart text{font-size:12px;fill:#333}svg.chart .axis-title{font-size:13px;font-weight:600}
svg.chart .grid{stroke:#eee}svg.chart circle.mark:hover{stroke:#000;stroke-width:2}
td.heat{text-align:right;min-width:58px}details{margin:4px 0}
"""


class Html(str):
    """Already-markup text: _table does not escape it."""


def _fmt(value, spec: str = ".2f", missing: str = "–") -> str:
    return missing if value is None or pd.isna(value) else format(value, spec)


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset(), table_id: str = "") -> str:
    """An HTML table; columns whose index is in ``numeric`` align right."""
    def cell(i: int, v) -> str:
        text = v if isinstance(v, Html) else escape(str(v))
        return f'<td class="num">{text}</td>' if i in numeric else f"<td>{text}</td>"
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    table_id = f' id="{table_id}"' if table_id else ""
    return f"<table{table_id}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _megabytes(n) -> str:
    return "–" if n is None or pd.isna(n) else f"{n / 1e6:.2f} MB"


def _code(text: str) -> Html:
    return Html(f"<code>{escape(text)}</code>")


# ------------------------------------------------------------------ 1. the baseline

def baseline_section(baseline: dict, frame: pd.DataFrame) -> str:
    greedy, beam = baseline.get("greedy", {}), baseline.get("beam", {})
    decoding = baseline.get("decoding", {})
    beam_name = f"beam {decoding.get('beam_size', '?')}, length penalty {decoding.get('length_penalty', '?')}"
    base_rows = frame[frame["method"] == "baseline"]
    file_bytes = base_rows["file_bytes"].dropna() if "file_bytes" in base_rows else pd.Series(dtype=float)
    size = file_bytes.iloc[0] if len(file_bytes) else baseline.get("checkpoint_bytes")
    params = baseline.get("parameters")
    stats = [("test BLEU, greedy", _fmt(greedy.get("bleu"))), (f"test BLEU, {beam_name}", _fmt(beam.get("bleu"))),
             ("chrF, greedy", _fmt(greedy.get("chrf"))), ("chrF, beam", _fmt(beam.get("chrf"))),
             ("parameters", _fmt(params, ",")), ("fp32 weights", _megabytes(params and params * 4)),
             ("checkpoint file", _megabytes(size)),
             ("decode speed, greedy", _fmt(greedy.get("sentences_per_second"), ".0f") + " sentences/s"),
             ("decode speed, beam", _fmt(beam.get("sentences_per_second"), ".0f") + " sentences/s"),
             ("test sentences", _fmt(baseline.get("sentences"), ",")), ("precision", baseline.get("precision", "–"))]
    boxes = "".join(f"<div>{escape(k)}: <b>{escape(v)}</b></div>" for k, v in stats)
    signature = greedy.get("signature") or baseline.get("signature") or "–"
    chrf_signature = greedy.get("chrf_signature", "–")
    return (f'<h2 id="baseline">Baseline</h2><div class="stats">{boxes}</div>'
            f'<p class="note">sacreBLEU signature <code>{escape(signature)}</code>; chrF '
            f'<code>{escape(chrf_signature)}</code>. MB = 10<sup>6</sup> bytes.</p>')


# ------------------------------------------------------------------ 2. the summary

def _ci_text(entry: dict) -> str:
    if "n_seeds" in entry:   # over several seeds: the interval that resamples seeds and sentences
        return f"[{entry['seeds_ci_low']:+.2f}, {entry['seeds_ci_high']:+.2f}]"
    return f"[{entry['ci_low']:+.2f}, {entry['ci_high']:+.2f}]" if "ci_low" in entry else "–"


def _seeds_view(entry: dict) -> dict:
    """A summary entry as the report shows it: over several seeds, BLEU and Δ as mean ± sd with n,
    significance from the interval over seeds and sentences."""
    if "n_seeds" not in entry:
        return {**entry, "bleu_text": f"{entry['bleu']:.2f}", "delta_text": f"{entry['delta_ref']:+.2f}"}
    return {**entry, "bleu_text": f"{entry['bleu_mean']:.2f} ± {entry['bleu_sd']:.2f} (n={entry['n_seeds']})",
            "delta_text": f"{entry['delta_ref_mean']:+.2f} ± {entry['delta_ref_sd']:.2f}", "ci_low": entry["seeds_ci_low"],
            "significant": not entry["seeds_ci_low"] <= 0 <= entry["seeds_ci_high"]}


def summary_section(facts: dict) -> str:
    by_cell = {e["cell"]: e for m in facts["by_method"].values() for e in m.values() if e}
    boxes = []
    for ratio in SUMMARY_RATIOS:
        e = by_cell.get(facts.get(f"best_cell_at_{ratio}x"))
        e = None if e is None else _seeds_view(e)
        if e is None:
            boxes.append(f"<div>Best cell at ≥ {ratio}×: <b>none</b> reaches {ratio}×.</div>")
            continue
        verdict = "" if "ci_low" not in e else ("significant" if e["significant"] else "not significant")
        shipped = deployed_text(e)   # its int8 BLEU and CTranslate2 export's, where it has them
        boxes.append(f"<div>Best cell at ≥ {ratio}×: <b><code>{escape(e['cell'])}</code></b><br>"
                     f"BLEU <b>{e['bleu_text']}</b> at {e['compression_ratio']:.2f}×, "
                     f"Δ <b>{e['delta_text']}</b> vs {e['reference']}, 95 % CI {_ci_text(e)} {verdict}"
                     + (f'<br><span class="shipped">{escape(shipped[2:])}</span>' if shipped else "") + "</div>")
    rows = []
    for name, entry in facts["by_method"].items():
        # The method's name (its params.yaml section), its title on hover: a row stays one line high.
        row: list = [Html(f'<code title="{escape(get(name).title)}">{escape(name)}</code>')]
        for ratio in SUMMARY_RATIOS:   # one row per method, so the table stays on the first screen
            e = entry[f"{ratio}x"]
            if e is None:
                row += [Html(f'<span class="ns">none reaches {ratio}×</span>'), "–", "–", "–"]
                continue
            e = _seeds_view(e)
            file_ratio = f" ({e['file_ratio']:.2f}×)" if "file_ratio" in e else ""
            ci = f" {_ci_text(e)}" if "ci_low" in e else ""
            verdict = "" if "ci_low" not in e else ("" if e["significant"] else " ns")
            row += [_code(e["cell"]), f"{e['compression_ratio']:.2f}×{file_ratio}", e["bleu_text"],
                    Html(f"{e['delta_text']} vs {e['reference']}{ci}"
                         + (f' <span class="ns">{verdict.strip()}</span>' if verdict else ""))]
        rows.append(row)
    headers = ["method"] + [f"{h} (≥ {r}×)" if h == "best cell" else h for r in SUMMARY_RATIOS
                            for h in ("best cell", "ratio (file)", "BLEU", "Δ [95 % CI]")]
    table = _table(headers, rows, numeric={2, 3, 6, 7}, table_id="summary-table")
    point = facts.get("best_deployed")   # below the table, which stays on the first screen
    deployable = "" if point is None else '<p id="best-deployed">{}</p>'.format(
        re.sub(r"`([^`]*)`", r"<code>\1</code>", escape(best_deployed_text(point))))
    return (f'<h2 id="summary">Summary: best cell per method</h2>'
            f'<div class="best" id="best-cells">{"".join(boxes)}</div>{table}{deployable}'
            f'<p class="note">{facts["cells"]} cells. Best cell of each method at a ratio of at least '
            f"{' and '.join(f'{r}×' for r in SUMMARY_RATIOS)}, ranked by Δ BLEU against the reference (a fine-tuning "
            "method's control, else the baseline decoded the same way); CI: sacreBLEU paired bootstrap; "
            "ns: not significant at p &lt; 0.05.</p>")


# ------------------------------------------------------------------ 3. trade-off plots

def series_colors(names: list[str]) -> dict[str, str]:
    colors = dict(FIXED_COLORS)
    for name in sorted(set(names) - set(colors)):
        colors[name] = PALETTE[(len(colors) - len(FIXED_COLORS)) % len(PALETTE)]
    return colors


def _tip(row: pd.Series, series: str) -> str:
    parts = [f"{row['cell']} ({series})", f"BLEU {row['bleu']:.2f}", f"ratio {row['compression_ratio']:.2f}×"]
    if pd.notna(row.get("file_bytes")):
        parts.append(f"{row['file_bytes'] / 1e6:.2f} MB")
    if row["method"] != "baseline":
        parts.append(f"Δ {row['delta_ref']:+.2f} vs {'control' if pd.notna(row['delta_control']) else 'baseline'}")
    return ", ".join(parts)


def tradeoff_plot(frame: pd.DataFrame, x_column: str, x_title: str, larger_x_better: bool, label: str,
                  scale: float = 1.0) -> str:
    """BLEU against ``x_column`` (every row of the frame, one series per method/mode), the Pareto
    front as a dashed line, then a table of the front and a collapsed table of every point."""
    names = {i: p["series"] for i, p in zip(frame.index, plot_points(frame))}
    colors = series_colors(list(names.values()))
    rows = frame[frame[x_column].notna() & frame["bleu"].notna()]
    series: dict[str, Series] = {}
    for i, r in rows.iterrows():
        s = series.setdefault(names[i], Series(names[i], color=colors[names[i]]))
        s.points.append(Point(float(r[x_column]) / scale, float(r["bleu"]), _tip(r, names[i]), r["cell"]))
    points = [p for s in series.values() for p in s.points]
    # a control is the fine-tuning without the compression, not a compression one could choose; the
    # Markdown summary's front leaves it out too, and each training method's control would otherwise
    # crowd the front at 1x with the same model
    controls = set(rows.loc[rows["control"], "cell"])
    front = pareto_front([p for p in points if p.cell not in controls], larger_x_better)
    front_series = Series("Pareto front", [Point(p.x, p.y, "", "") for p in front], "#000000", line=True,
                          marker=False, dashed=True, ring=True)
    svg = xy_plot([*series.values(), front_series], x_title=x_title, y_title="test BLEU (sacreBLEU)",
                  x_log=True, label=label)
    by_cell = rows.set_index("cell")
    columns = ["cell", "series", "BLEU", "ratio", "file size"]

    def line(cell: str, series_name: str) -> list:
        r = by_cell.loc[cell]
        r = r.iloc[0] if isinstance(r, pd.DataFrame) else r   # two baseline rows: two decodings
        return [_code(cell), series_name, f"{r['bleu']:.2f}", f"{r['compression_ratio']:.2f}×",
                _megabytes(r.get("file_bytes"))]
    cell_series = {p.cell: s.name for s in series.values() for p in s.points}
    front_table = _table(columns, [line(p.cell, cell_series[p.cell]) for p in front], numeric={2, 3, 4})
    all_rows = [line(p.cell, s.name) for s in series.values() for p in sorted(s.points, key=lambda p: p.x)]
    return (f"{svg}<h3>Pareto front: {len(front)} cell{'s' if len(front) > 1 else ''} ({label})</h3>{front_table}"
            f"<details><summary>All {len(points)} points</summary>"
            f"{_table(columns, all_rows, numeric={2, 3, 4})}</details>")


def tradeoff_section(frame: pd.DataFrame) -> str:
    decoding = ", ".join(sorted(frame["decoding"].dropna().unique()))
    parts = ['<h2 id="tradeoff">BLEU against compression</h2>',
             f'<p class="note">Every cell and the baseline ({escape(decoding)} decoding); hover a point for its '
             "cell. Pareto front: the cells no other cell beats on both BLEU and compression (controls are drawn "
             "but left out of it: they are the fine-tuning without the compression).</p>",
             "<h3>Test BLEU against compression ratio</h3>",
             tradeoff_plot(frame, "compression_ratio", "compression ratio (×, thesis §4.1; log scale)", True,
                           "max BLEU, max ratio")]
    parts.append("<h3>Test BLEU against file size</h3>")
    # the baseline's checkpoint alone is no plot: cells' metrics from before file sizes lack theirs
    if frame.loc[frame["method"] != "baseline", "file_bytes"].notna().any():
        parts.append(tradeoff_plot(frame, "file_bytes", "file size on disk (MB; log scale)", False,
                                   "max BLEU, min bytes", scale=1e6))
    else:
        parts.append('<p class="note">No file sizes in the results (no cell has <code>file_bytes</code>): '
                     "this plot needs cells whose metrics record their artifact's bytes on disk.</p>")
    return "".join(parts)


def load_searches(cell_dirs: str | Path | None, cells: list[str]) -> dict[str, dict]:
    """Each cell's search candidates (a method that searches records ``search_candidates`` in its
    cell.json: file bytes and validation BLEU each), with its float model's validation BLEU and the
    candidate it kept; a cell without them, or an unreadable file, is left out."""
    found = {}
    for cell in cells if cell_dirs else []:
        try:
            facts = json.loads((Path(cell_dirs) / cell / "cell.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(facts, dict) and facts.get("search_candidates"):
            found[cell] = facts
    return found


def search_section(searches: dict[str, dict]) -> str:
    """Validation BLEU against file size of every search's candidates, the kept one ringed, beside
    the float model's validation BLEU: the front the search chose from."""
    if not searches:
        return ""
    colors = series_colors(list(searches))
    series = []
    for cell, facts in searches.items():
        points = [Point(c["file_bytes"] / 1e6, c["valid_bleu"],
                        f"{cell}, candidate {i}: validation BLEU {c['valid_bleu']:.2f}, {c['file_bytes'] / 1e6:.3f} MB, "
                        f"mean {c['mean_bits']} bits", cell) for i, c in enumerate(facts["search_candidates"])]
        series.append(Series(f"{cell} candidates", points, colors[cell], line=True))
        kept = points[facts["chosen_candidate"]]
        series.append(Series(f"{cell} kept", [Point(kept.x, kept.y, kept.tip, cell)], colors[cell], ring=True))
    xs = [p.x for s in series for p in s.points]
    for cell, facts in searches.items():
        series.append(Series(f"{cell}: float model", [Point(min(xs), facts["valid_bleu_float"], "", ""),
                                                      Point(max(xs), facts["valid_bleu_float"], "", "")],
                             colors[cell], line=True, marker=False, dashed=True))
    rows = [[_code(cell), i, f"{c['valid_bleu']:.2f}", _megabytes(c["file_bytes"]), f"{c['mean_bits']}",
             " ".join(f"{b}:{n}" for b, n in c["modules_at"].items())
             + (" (kept)" if i == f["chosen_candidate"] else "")]
            for cell, f in searches.items() for i, c in enumerate(f["search_candidates"])]
    return ('<h2 id="search">Mixed-precision search</h2><p class="note">Each candidate of each search: its '
            "artifact's bytes against its greedy BLEU on the validation sentences (not the test split: the cells "
            "above are scored there), the kept one ringed, the float model's validation BLEU dashed.</p>"
            + xy_plot(series, x_title="file size on disk (MB; log scale)", y_title="validation BLEU", x_log=True,
                      label="search candidates")
            + "<details><summary>Every candidate</summary>"
            + _table(["cell", "candidate", "valid BLEU", "file size", "mean bits",
                      "modules at each width (bits:count)"], rows, numeric={1, 2, 3, 4}) + "</details>")


# ------------------------------------------------------------------ 3b. decoded as shipped

def deployed_section(frame: pd.DataFrame) -> str:
    """Each row with an int8 BLEU or a CTranslate2 export (params.yaml's deploy section): BLEU beside
    them, the export's speed and bytes; no section where no row has them."""
    rows = deployed_rows(frame)
    if rows.empty:
        return ""
    body = []
    for _, r in rows.iterrows():
        differs = r.get("deployed_differences")
        body.append([_code(r["cell"]), _fmt(r["bleu"]), _fmt(r.get("bleu_int8")), _fmt(r.get("bleu_deployed")),
                     _fmt(r["sentences_per_second"], ".0f"), _fmt(r.get("sentences_per_second_deployed"), ".0f"),
                     _megabytes(r.get("file_bytes")), _megabytes(r.get("deployed_bytes")),
                     r.get("deployed_compute_type") if pd.notna(r.get("deployed_compute_type")) else "–",
                     "–" if pd.isna(differs) else differs])
    header = ["cell", "BLEU", "int8 BLEU", "CTranslate2 BLEU", "sentences/s", "CTranslate2 sentences/s",
              "artifact", "CTranslate2 folder", "compute type", "export differs by"]
    return ('<h2 id="deployed">Decoded as shipped</h2>'
            + _table(header, body, numeric={1, 2, 3, 4, 5, 6, 7}, table_id="deployed-table")
            + '<p class="note">BLEU as evaluated; int8: the cell\'s codes in integer matmuls (<code>translate '
            "--int8</code>); CTranslate2: its export (params.yaml's deploy section: int8 codes for a cell, float32 "
            "for the baseline), decoded on this machine, with the bytes of the folder a user ships and what it "
            "computes differently from the cell (its manifest).</p>")


# ------------------------------------------------------------------ 4. thesis tables

def _inline(text: str, entry: bool = False) -> str:
    """Markdown inline code and the ``ns`` mark; an ``entry`` ("BLEU (Δ) / ratio") breaks at its slash
    so that a six-group table fits the page's width."""
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text, quote=False))
    text = text.replace(" / ", "<br>", 1) if entry else text
    return re.sub(r" ns$", ' <span class="ns">ns</span>', text)


def markdown_to_html(text: str) -> str:
    """The subset results.markdown_report writes: headings, pipe tables, paragraphs, `code`."""
    out: list[str] = []
    table: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            if not re.fullmatch(r"\|[-:| ]+\|", line.strip()):      # not the separator row
                table.append([c.strip() for c in line.strip()[1:-1].split("|")])
            continue
        if table:
            head = "".join(f"<th>{_inline(c)}</th>" for c in table[0])
            body = "".join(f"<tr><th>{_inline(r[0])}</th>" + "".join(
                f'<td class="num">{_inline(c, entry=True)}</td>' for c in r[1:]) + "</tr>" for r in table[1:])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            table = []
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 1, 6)    # the page's h1 is above
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    return "".join(out)


def default_layout() -> dict[str, dict]:
    """Without the resolved grid: each method's catalog order of layer groups."""
    return {m.name: {"columns": list(m.catalog.get("groups", ()))} for m in registered()}


def tables_section(frame: pd.DataFrame, layout: dict[str, dict]) -> str:
    html = markdown_to_html(markdown_report(frame, layout))
    return '<h2 id="tables">Tables in the thesis\'s layout</h2>' + html.replace("<h2>Compression results</h2>", "", 1)


# ------------------------------------------------------------------ 5. training curves

def load_curves(train_curve: str | Path | None, cell_dirs: str | Path | None,
                cells: list[str]) -> tuple[list[dict], dict[str, list[dict]]]:
    """The baseline's per-epoch curve and each trained cell's fine-tuning curve (its cell.json);
    a missing or unreadable file is left out (the section says so)."""
    def read(path: Path):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    baseline = read(Path(train_curve)) if train_curve else None
    found = {}
    for cell in cells if cell_dirs else []:
        facts = read(Path(cell_dirs) / cell / "cell.json")
        if isinstance(facts, dict) and facts.get("finetune_curve"):
            found[cell] = facts["finetune_curve"]
    return (baseline if isinstance(baseline, list) else []), found


def _curve_points(curve: list[dict], key: str, who: str) -> list[Point]:
    return [Point(float(e.get("epoch", i + 1)), float(e[key]), f"{who}, epoch {e.get('epoch', i + 1)}: "
                  f"{key} {e[key]:.3f}", who) for i, e in enumerate(curve) if e.get(key) is not None]


def curves_section(frame: pd.DataFrame, baseline_curve: list[dict], cell_curves: dict[str, list[dict]]) -> str:
    parts = ['<h2 id="curves">Training curves</h2>']
    if baseline_curve:
        parts += ["<h3>Baseline: loss per epoch</h3>", xy_plot(
            [Series(k, _curve_points(baseline_curve, k, f"baseline {k}"), PALETTE[i], line=True)
             for i, k in enumerate(("train_loss", "val_loss"))],
            x_title="epoch", y_title="loss (nats per target token)", x_whole=True, label="baseline loss"),
            "<h3>Baseline: validation BLEU per epoch</h3>", xy_plot(
            [Series("val_bleu", _curve_points(baseline_curve, "val_bleu", "baseline"), PALETTE[0], line=True)],
            x_title="epoch", y_title="validation BLEU (greedy)", x_whole=True, label="baseline validation BLEU")]
    else:
        parts.append('<p class="note">No baseline training curve (metrics/train_curve.json) found.</p>')
    if not cell_curves:
        parts.append('<p class="note">No trained cell\'s fine-tuning curve found (data/cells/&lt;cell&gt;/cell.json '
                     "with <code>finetune_curve</code>).</p>")
        return "".join(parts)
    names = {r["cell"]: p["series"] for (_, r), p in zip(frame.iterrows(), plot_points(frame))}
    colors = series_colors(list(names.values()))
    for key, title, y_title in (("val_bleu", "validation BLEU per fine-tuning epoch", "validation BLEU (greedy)"),
                                ("train_loss", "training loss per fine-tuning epoch", "loss (nats per target token)")):
        series = [Series(names.get(c, c), _curve_points(curve, key, c), colors.get(names.get(c), "#333"), line=True)
                  for c, curve in sorted(cell_curves.items())]
        parts += [f"<h3>Trained cells: {title}</h3>",
                  xy_plot(series, x_title="fine-tuning epoch", y_title=y_title, x_whole=True, label=f"cells {key}")]
    parts.append(f'<p class="note">{len(cell_curves)} trained cells; one line per cell, coloured by method '
                 "(hover a point for the cell).</p>")
    return "".join(parts)


# ------------------------------------------------------------------ 6. sensitivity heat map

def _row_key(method, row: pd.Series) -> tuple:
    # the thesis's order: the widest bit width first, then text values alphabetically
    return tuple(-row[a] if method.axis(a).kind is int else str(row[a]) for a in method.row_axes)


def heatmap_section(frame: pd.DataFrame, layout: dict[str, dict]) -> str:
    cells = frame[(frame["method"] != "baseline") & ~frame["control"] & frame["delta_ref"].notna()]
    if "group" not in cells or cells.empty:
        return '<h2 id="heatmap">Sensitivity by layer group</h2><p class="note">No cells with a layer group.</p>'
    scale = float(cells["delta_ref"].abs().max()) or 1.0
    swatches = [v for v in (-scale, -10, -3, -1, -0.3, 0, 0.3, 1) if abs(v) <= scale]
    legend = " ".join(f'<span style="{heat_style(v, scale)};padding:1px 6px">{v:+.1f}</span>' for v in swatches)
    parts = ['<h2 id="heatmap">Sensitivity by layer group</h2>',
             f'<p class="note">Δ BLEU of each cell against its reference (control, else baseline); red: a loss, '
             f"blue: a gain, intensity by log(1 + |Δ|). Scale: {legend}</p>"]
    for method in registered():
        own = cells[cells["method"] == method.name]
        if own.empty or own["group"].isna().all():
            continue
        catalog = layout.get(method.name, {}).get("columns", [])
        present = list(own["group"].dropna().unique())
        groups = [g for g in catalog if g in present] + sorted(g for g in present if g not in catalog)
        keys = sorted({_row_key(method, r): r for _, r in own.iterrows()}.items())
        rows = []
        for _, sample in keys:
            same = own[(own[list(method.row_axes)] == sample[list(method.row_axes)]).all(axis=1)] \
                if method.row_axes else own
            values = {a: (int(sample[a]) if method.axis(a).kind is int else sample[a]) for a in method.row_axes}
            tds = []
            for g in groups:
                hit = same[same["group"] == g]
                if hit.empty:
                    tds.append('<td class="heat">–</td>')
                    continue
                r = hit.iloc[0]
                tds.append(f'<td class="heat" style="{heat_style(r["delta_ref"], scale)}" '
                           f'title="{escape(_tip(r, method.name))}">{r["delta_ref"]:+.2f}</td>')
            rows.append(f"<tr><th>{escape(method.row_label(values))}</th>{''.join(tds)}</tr>")
        head = "".join(f"<th>{escape(g.upper().replace('+', ','))}</th>" for g in groups)
        parts.append(f"<h3>{escape(method.title)}</h3><table><thead><tr><th>rows \\ layer group</th>{head}</tr>"
                     f"</thead><tbody>{''.join(rows)}</tbody></table>")
    return "".join(parts)


# ------------------------------------------------------------------ the page

def build_report(frame: pd.DataFrame, baseline: dict, layout: dict[str, dict] | None = None,
                 baseline_curve: list[dict] | None = None, cell_curves: dict[str, list[dict]] | None = None,
                 searches: dict[str, dict] | None = None) -> str:
    layout = layout or default_layout()
    # A results frame from before file sizes were measured lacks their columns: treat them as unknown.
    frame = frame.reindex(columns=[*frame.columns, *(c for c in FILE_COLUMNS if c not in frame)])
    facts = summary(frame)
    deployed = deployed_section(frame)
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (("summary", "Summary"), ("baseline", "Baseline"),
                  ("tradeoff", "BLEU vs compression"), *([("deployed", "As shipped")] if deployed else []),
                  ("tables", "Tables"), ("curves", "Training curves"), ("heatmap", "Sensitivity")))
    body = [f"<h1>Compression report: {facts['cells']} cells</h1><nav>{nav}</nav>",
            # the best cells first, so that they and the one-row-per-method table fill the first screen
            summary_section(facts), baseline_section(baseline, frame), tradeoff_section(frame),
            search_section(searches or {}), deployed, tables_section(frame, layout), curves_section(frame, baseline_curve or [], cell_curves or {}),
            heatmap_section(frame, layout)]
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>tcompress report</title>'
            f'<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head>'
            f"<body>{''.join(body)}</body></html>\n")


def write_report(path: str | Path, frame: pd.DataFrame, baseline_file: str | Path, layout: dict | None = None,
                 train_curve: str | Path | None = None, cell_dirs: str | Path | None = None) -> Path:
    baseline = json.loads(Path(baseline_file).read_text())
    cells = list(frame.loc[frame["method"] != "baseline", "cell"])
    baseline_curve, cell_curves = load_curves(train_curve, cell_dirs, cells)
    searches = load_searches(cell_dirs, cells)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(frame, baseline, layout, baseline_curve, cell_curves, searches), encoding="utf-8")
    return path
