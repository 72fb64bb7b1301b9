"""The HTML report (tcompress/report.py) and the offline `dvc plots show` template.

Unit tests build a results frame through tcompress.results.collect from synthetic cell metrics (every
cell of every method's default catalog), check what the page says and that it names no URL; the
browser tests load the page, and a `dvc plots show` page made with the offline template, in headless
Chromium with the network cut off and Chromium's network log read for any request the page made.
"""

import itertools
import json
import random
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO
from tcompress.data.corpora import write_split
from tcompress.methods import get, registered
from tcompress.report import build_report, default_layout, markdown_to_html, pareto_front, write_report
from tcompress.results import collect, deployed_table, markdown_report, markdown_summary, summary
from tcompress.svgplot import Point

N_MODEL = 1_000_000
GROUP_SHARE = {"emb": .10, "att": .35, "ff": .45, "gen": .10, "ff+emb+gen": .65, "ff+att": .80, "full": 1.0}
BITS_LOSS = {16: .05, 8: .5, 4: 6.0, 3: 15.0, 2: 25.0, 1: 40.0}
BASE_BLEU = 30.0
BASELINE_SPEED = 300.0   # the baseline's fp32 PyTorch greedy sentences/s


def fake_cell(method, values: dict | None, rng: random.Random) -> dict:
    """Plausible numbers: more bits or a smaller group lose less; a trained method loses less."""
    if values is None:
        return {"cell": f"{method.name}-control", "method": method.name, "control": True, "compression_ratio": 1.0,
                "bleu": BASE_BLEU + 0.6 + rng.gauss(0, .1)}
    share = GROUP_SHARE.get(values.get("group"), .5)
    if "bits" in values:
        ratio = 32 / (share * values["bits"] + (1 - share) * 32)
        loss = share * BITS_LOSS[values["bits"]] * (.3 if method.trains else 1)
    else:
        final = int(str(values.get("schedule", "0-60-1")).split("-")[1]) / 100
        ratio, loss = 1 / (1 - share * final * .99), share * final * 3
    return {"cell": "-".join([method.name, *(str(v) for v in values.values())]), "method": method.name,
            "control": False, **values, "compression_ratio": round(ratio, 4),
            "bleu": round(BASE_BLEU - loss + rng.gauss(0, .15), 4)}


def make_grid(root: Path, more: dict[str, dict[str, tuple]] | None = None) -> tuple[pd.DataFrame, Path]:
    """Metrics of every catalog cell (``more``: axis values beyond a method's catalog, by method and
    axis key) and each training method's control, through results.collect, with paired-bootstrap-like
    intervals and file sizes; fine-tuning curves for every trained cell but one."""
    rng = random.Random(0)
    (root / "cells").mkdir(parents=True)
    baseline = {"parameters": N_MODEL, "checkpoint_bytes": N_MODEL * 4 + 9000, "sentences": 500, "precision": "fp32",
                "decoding": {"beam_size": 4, "length_penalty": 0.6},
                "greedy": {"bleu": BASE_BLEU, "chrf": 55.0, "signature": "nrefs:1|tok:13a",
                           "sentences_per_second": BASELINE_SPEED},
                "beam": {"bleu": BASE_BLEU + .5, "chrf": 55.5, "sentences_per_second": 90.0},
                # the deploy section's float32 export, decoded greedily as the cells are
                "bleu_deployed": BASE_BLEU - .01, "sentences_per_second_deployed": 700.0,
                "deployed_bytes": N_MODEL * 4 + 30000, "deployed_compute_type": "float32",
                "deployed_differences": "none", "deployed_decoding": "greedy"}
    (root / "baseline.json").write_text(json.dumps(baseline))
    sizes = {"baseline": N_MODEL * 4 + 9000}
    trained = []
    for method in registered():
        names = [a.name for a in method.axes]
        catalog = {**method.catalog, **(more or {}).get(method.name, {})}
        grid = [dict(zip(names, v)) for v in itertools.product(*(catalog.get(a.key, ()) for a in method.axes))]
        for values in grid + ([None] if method.trains else []):
            cell = fake_cell(method, values, rng)
            ratio = cell["compression_ratio"]
            sizes[cell["cell"]] = int(N_MODEL * 4 / ratio) + 9000
            cell.update(chrf=50.0, decoding="greedy", n_model=N_MODEL, stored_bits=int(N_MODEL * 32 / ratio),
                        file_bytes=sizes[cell["cell"]], file_ratio=round(sizes["baseline"] / sizes[cell["cell"]], 4))
            if values and values.get("bits") == 8 and method.name in ("ptq", "qat"):   # int8 matmuls, and the export
                cell.update(bleu_int8=round(cell["bleu"] - .05, 4), sentences_per_second_int8=400.0,
                            bleu_deployed=round(cell["bleu"] - .07, 4), sentences_per_second_deployed=1500.0,
                            deployed_bytes=N_MODEL + 20000, deployed_compute_type="int8_float32",
                            deployed_differences="int8 inputs per row")
            elif values and method.deploy_int8:   # a float model exported as CTranslate2's int8 (distill)
                cell.update(bleu_deployed=round(cell["bleu"] - .1, 4), sentences_per_second_deployed=2500.0,
                            deployed_bytes=N_MODEL // 4 + 20000, deployed_compute_type="int8_float32",
                            deployed_differences="float weights quantized; int8 inputs per row")
            (root / "cells" / f"{cell['cell']}.json").write_text(json.dumps(cell))
            if method.trains:
                trained.append(cell["cell"])
    (root / "train_curve.json").write_text(json.dumps(
        [{"epoch": e, "step": 10 * e, "train_loss": 5 / e, "val_loss": 4 / e, "val_bleu": BASE_BLEU * (1 - 1 / e)}
         for e in range(1, 6)]))
    for cell in trained[1:]:   # the first trained cell has no cell.json: the report tolerates it
        (root / "dirs" / cell).mkdir(parents=True)
        (root / "dirs" / cell / "cell.json").write_text(json.dumps({"finetune_curve": [
            {"epoch": e, "train_loss": 2 / e, "val_bleu": BASE_BLEU - 1 / e} for e in (1, 2)]}))
    frame = collect(root / "baseline.json", root / "cells")
    frame["file_bytes"] = frame["cell"].map(sizes)      # present whether or not collect reads it yet
    cells = frame["method"] != "baseline"
    for low, high, delta in (("delta_ci_low", "delta_ci_high", "delta_bleu"),
                             ("delta_control_ci_low", "delta_control_ci_high", "delta_control")):
        frame[low] = (frame[delta] - .3).where(cells)
        frame[high] = (frame[delta] + .3).where(cells)
    ref_low = frame["delta_control_ci_low"].fillna(frame["delta_ci_low"])
    ref_high = frame["delta_control_ci_high"].fillna(frame["delta_ci_high"])
    frame["significant"] = ((ref_low > 0) | (ref_high < 0)).astype(object).where(cells, None)
    return frame, root / "baseline.json"


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    frame, baseline = make_grid(root)
    page = write_report(root / "report.html", frame, baseline, None, root / "train_curve.json", root / "dirs")
    return frame, page.read_text(), root


class Page(HTMLParser):
    """What a test needs of a page: each SVG's marks (their data-cell) and every table with the
    heading above it. Works on our HTML and on Chromium's serialized DOM alike."""

    def __init__(self, html: str):
        super().__init__()
        self.svgs: list[dict] = []
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.heading, self._text, self._in = "", None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self.svgs.append({"label": a.get("aria-label", ""), "marks": [], "titled": 0, "lines": 0, "axes": []})
        elif tag == "circle" and "mark" in (a.get("class") or "").split() and self.svgs:
            self.svgs[-1]["marks"].append(a.get("data-cell"))
        elif tag == "path" and a.get("class") == "line" and self.svgs:
            self.svgs[-1]["lines"] += 1
        elif tag == "title" and self.svgs and self._in == "svg-mark":
            self.svgs[-1]["titled"] += 1
        elif tag == "text" and a.get("class") == "axis-title":
            self._text, self._in = [], "axis"
        elif tag in ("h2", "h3"):
            self._text, self._in = [], "heading"
        elif tag == "table":
            self.tables.append((self.heading, []))
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th") and self.tables:
            self._text, self._in = [], "cell"
        if tag == "circle" and "mark" in (a.get("class") or ""):
            self._in = "svg-mark"
        if tag == "br" and self._text is not None:    # a table entry's two lines, as the Markdown writes them
            self._text.append(" / ")

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        text = "".join(self._text or []).strip()
        if tag in ("h2", "h3") and self._in == "heading":
            self.heading = text
        elif tag == "text" and self._in == "axis":
            self.svgs[-1]["axes"].append(text)
        elif tag in ("td", "th") and self._in == "cell":
            self.tables[-1][1][-1].append(text)
        elif tag != "circle" or self._in != "svg-mark":
            return
        self._text, self._in = None, None

    def table(self, heading_start: str) -> list[list[str]]:
        return next(rows for heading, rows in self.tables if heading.startswith(heading_start))


def brute_force_front(points: list[tuple[float, float, str]], larger_x_better: bool) -> set[str]:
    def beats(q, p):
        better_x = q[0] >= p[0] if larger_x_better else q[0] <= p[0]
        return better_x and q[1] >= p[1] and (q[0], q[1]) != (p[0], p[1])
    return {p[2] for p in points if not any(beats(q, p) for q in points)}


# ------------------------------------------------------------------ unit tests

@pytest.mark.parametrize("larger_x_better", [True, False])
def test_pareto_front_matches_a_brute_force_check(larger_x_better):
    rng = random.Random(7)
    for _ in range(200):   # coarse values: ties in x, in y and exact duplicates occur
        points = [(rng.randint(1, 6), rng.randint(1, 6), f"c{i}") for i in range(rng.randint(1, 12))]
        front = pareto_front([Point(x, y, "", c) for x, y, c in points], larger_x_better)
        assert {p.cell for p in front} == brute_force_front(points, larger_x_better)
        assert [p.x for p in front] == sorted(p.x for p in front)


def test_the_page_names_no_url_and_loads_nothing(grid):
    _, html, _ = grid
    assert "http://" not in html and "https://" not in html and "//" not in html.replace("://", "")
    for tag in ("<script", "<link", "<img", "<iframe", "<object", "<embed", "@import", "url("):
        assert tag not in html
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', html))
    assert len(html.encode()) < 3_000_000


def test_every_plot_is_an_svg_with_titled_point_marks_and_axis_titles(grid):
    frame, html, _ = grid
    page = Page(html)
    labels = [s["label"] for s in page.svgs]
    assert labels == ["max BLEU, max ratio", "max BLEU, min bytes", "baseline loss", "baseline validation BLEU",
                      "cells val_bleu", "cells train_loss"]
    for svg in page.svgs:
        assert svg["marks"] and svg["titled"] == len(svg["marks"]), svg["label"]
        assert len(svg["axes"]) == 2 and all(svg["axes"]), svg["label"]
    every_row = sorted(frame["cell"])
    assert sorted(page.svgs[0]["marks"]) == every_row == sorted(page.svgs[1]["marks"])
    assert page.svgs[0]["axes"][0].startswith("compression ratio (×") and "MB" in page.svgs[1]["axes"][0]
    assert page.svgs[2]["axes"] == ["epoch", "loss (nats per target token)"] and page.svgs[2]["lines"] == 2
    assert page.svgs[0]["lines"] == 1 and page.svgs[1]["lines"] == 1     # the fronts


@pytest.mark.parametrize("x, larger_x_better, criteria", [("compression_ratio", True, "max ratio"),
                                                           ("file_bytes", False, "min bytes")])
def test_pareto_tables_list_exactly_the_cells_on_the_front(grid, x, larger_x_better, criteria):
    frame, html, _ = grid
    compressions = frame[~frame["control"]]
    expected = brute_force_front(list(zip(compressions[x], compressions["bleu"], compressions["cell"])),
                                 larger_x_better)
    assert len(expected) >= 3     # a front worth the name, else this test proves little
    # the controls (the best BLEU at 1x in this grid) would be on it; the front leaves them out, as the
    # Markdown summary's does
    with_controls = brute_force_front(list(zip(frame[x], frame["bleu"], frame["cell"])), larger_x_better)
    assert set(frame.loc[frame["control"], "cell"]) & with_controls
    listed = next(rows for h, rows in Page(html).tables if h.startswith("Pareto front") and criteria in h)
    assert listed[0][:2] == ["cell", "series"] and {row[0] for row in listed[1:]} == expected


def test_summary_comes_first_and_names_the_best_cell_with_its_interval(grid):
    frame, html, _ = grid
    facts = summary(frame)
    order = [html.index(f'id="{a}"') for a in ("summary", "baseline", "tradeoff", "tables", "curves", "heatmap")]
    assert order == sorted(order) and html.index("<svg") > html.index('id="summary-table"')
    best = facts["best_cell_at_4x"]
    entry = next(e["4x"] for e in facts["by_method"].values() if e["4x"] and e["4x"]["cell"] == best)
    box = html[html.index('class="best"'):html.index('id="summary-table"')]
    assert best in box and f"[{entry['ci_low']:+.2f}, {entry['ci_high']:+.2f}]" in box
    rows = Page(html).table("Summary")   # one row per method: best cell, ratio, BLEU, Δ for each target
    assert rows[0][1] == "best cell (≥ 4×)" and rows[0][5] == "best cell (≥ 8×)"
    assert len(rows) == 1 + len(facts["by_method"])
    for (name, by_ratio), row in zip(facts["by_method"].items(), rows[1:]):
        for k, (ratio, e) in enumerate(by_ratio.items()):
            if e:
                assert row[1 + 4 * k] == e["cell"] and row[3 + 4 * k] == f"{e['bleu']:.2f}", (name, ratio)
                assert row[4 + 4 * k].startswith(f"{e['delta_ref']:+.2f} vs {e['reference']}"), (name, ratio)
            else:
                assert row[1 + 4 * k] == f"none reaches {ratio[:-1]}×", (name, ratio)


@pytest.mark.parametrize("how", ["no such columns", "no cell has one"])
def test_without_file_sizes_the_bytes_plot_becomes_a_note(grid, how):
    frame, _, root = grid
    sizes = [c for c in ("file_bytes", "file_ratio") if c in frame]
    if how == "no such columns":     # a results frame from before file sizes were measured
        frame = frame.drop(columns=sizes)
    else:                            # cells' metrics without sizes; the baseline's checkpoint has one
        frame = frame.copy()
        frame.loc[frame["method"] != "baseline", sizes] = float("nan")
    html = build_report(frame, json.loads((root / "baseline.json").read_text()))
    labels = [s["label"] for s in Page(html).svgs]
    assert "max BLEU, max ratio" in labels and "max BLEU, min bytes" not in labels
    assert "No file sizes in the results" in html


def test_thesis_tables_are_the_markdown_reports_tables(grid):
    frame, html, _ = grid
    text = markdown_report(frame, default_layout())
    md_rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
               if line.startswith("|") and not line.startswith("|---")]
    section = html[html.index('id="tables"'):html.index('id="curves"')]
    html_rows = [row for _, rows in Page(section).tables for row in rows]
    assert [r[0] for r in html_rows] == [r[0] for r in md_rows] and "16-bit Asym." in html_rows[1][0]
    assert [r[1:] for r in html_rows] == [r[1:] for r in md_rows]          # every entry, "ns" included
    assert section.count('<span class="ns">ns</span>') == sum(c.endswith(" ns") for r in md_rows for c in r) > 0
    assert markdown_to_html("## T\n\n| | A |\n|---|---|\n| r / s | `x` 1.0 / 2x ns |\nText `c`.\n") == (
        '<h3>T</h3><table><thead><tr><th></th><th>A</th></tr></thead><tbody><tr><th>r / s</th>'
        '<td class="num"><code>x</code> 1.0<br>2x <span class="ns">ns</span></td></tr></tbody></table>'
        "<p>Text <code>c</code>.</p>")


def test_heat_map_shows_each_cells_delta_red_for_a_loss(grid):
    frame, html, _ = grid
    heat = html[html.index('id="heatmap"'):]
    cells = frame[(frame["method"] != "baseline") & ~frame["control"]]     # controls compress nothing: not mapped
    worst = cells.loc[cells["delta_ref"].idxmin()]
    heat_cell = r'style="background:#(\w{{6}});[^"]*" title="{} [^"]*">([^<]*)</td>'
    colour, text = re.search(heat_cell.format(re.escape(worst["cell"])), heat).groups()
    red, green = int(colour[0:2], 16), int(colour[2:4], 16)
    assert red > 200 and green < 80 and text == f'{worst["delta_ref"]:+.2f}'
    best = cells.loc[cells["delta_ref"].idxmax()]
    assert best["delta_ref"] > 0
    colour = re.search(heat_cell.format(re.escape(best["cell"])), heat).group(1)
    assert int(colour[4:6], 16) > int(colour[0:2], 16)       # a gain is blue
    ptq_rows = [r[0] for r in Page(heat).table("Post-training")[1:]]
    assert ptq_rows == ["16-bit Asym.", "16-bit Sym.", "8-bit Asym.", "8-bit Sym.", "4-bit Asym.", "4-bit Sym.",
                        "3-bit Asym.", "3-bit Sym."]


def test_int8_and_deployed_numbers_stand_beside_bleu_where_present(grid):
    """The deploy section's numbers (and int8 BLEU) in the report's own section, tables.md and
    summary.md; a results frame without them gets no section and no link."""
    frame, html, root = grid
    shipped = frame[frame["bleu_int8"].notna() | frame["bleu_deployed"].notna()]
    assert len(shipped) >= 3 and "baseline" in set(shipped["cell"])    # the cells' int8 exports and the baseline's
    rows = Page(html).table("Decoded as shipped")
    assert rows[0][:4] == ["cell", "BLEU", "int8 BLEU", "CTranslate2 BLEU"]
    assert [r[0] for r in rows[1:]] == list(shipped["cell"])
    for row, (_, r) in zip(rows[1:], shipped.iterrows()):
        assert row[3] == f"{r['bleu_deployed']:.2f}" and row[5] == f"{r['sentences_per_second_deployed']:.0f}"
        assert row[7] == f"{r['deployed_bytes'] / 1e6:.2f} MB" and row[9] == r["deployed_differences"]
        assert row[2] == ("–" if pd.isna(r["bleu_int8"]) else f"{r['bleu_int8']:.2f}")
    assert '<a href="#deployed">' in html
    md = deployed_table(frame)
    assert [line.split(" | ")[0].strip("| ") for line in md.splitlines() if line.startswith("| ")][1:] == \
        list(shipped["cell"])
    facts = summary(frame)
    text = markdown_summary(facts)
    assert f"the baseline's float32 export: CTranslate2 {BASE_BLEU - .01:.2f}, 700 sentences/s" in text
    best = [e for m in facts["by_method"].values() for e in m.values() if e and "bleu_deployed" in e]
    assert best and all(f"CTranslate2 {e['bleu_deployed']:.2f}" in text for e in best)
    # the best deployable point: the best CTranslate2 BLEU among exports faster than fp32 PyTorch greedy
    cells = shipped[(shipped["method"] != "baseline") & shipped["bleu_deployed"].notna()]
    assert cells["method"].map(lambda m: get(m).deploy_int8).any()     # the distilled students are there
    faster = cells[cells["sentences_per_second_deployed"] > BASELINE_SPEED]
    point = faster.loc[faster["bleu_deployed"].idxmax()]
    assert facts["best_deployed"]["cell"] == point["cell"]
    line = next(line for line in text.splitlines() if line.startswith("The best deployable point:"))
    assert f"`{point['cell']}`" in line and f"BLEU {point['bleu_deployed']:.2f}" in line
    assert f"{point['sentences_per_second_deployed'] / BASELINE_SPEED:.2f}× the baseline's fp32 PyTorch" in line
    box = html[html.index('id="best-deployed"'):]
    assert box.startswith(f'id="best-deployed">The best deployable point: <code>{point["cell"]}</code>')
    bare = frame.drop(columns=["bleu_int8", "bleu_deployed"])
    page = build_report(bare, json.loads((root / "baseline.json").read_text()))
    assert 'id="deployed"' not in page and "#deployed" not in page and deployed_table(bare) == ""
    assert "best-deployed" not in page and "best_deployed" not in summary(bare)


def test_training_curves_come_from_each_cells_json_and_tolerate_missing_files(grid):
    frame, html, root = grid
    with_curve = {p.name for p in (root / "dirs").iterdir()}
    svg = next(s for s in Page(html).svgs if s["label"] == "cells val_bleu")
    assert set(svg["marks"]) == with_curve and svg["lines"] == len(with_curve)
    bare = build_report(frame, json.loads((root / "baseline.json").read_text()))
    assert "No baseline training curve" in bare and "No trained cell's fine-tuning curve" in bare


def test_the_aggregate_stage_writes_the_report(tmp_path):
    """stages/aggregate.py end to end on four cells with translations, as dvc.yaml runs it."""
    rng = random.Random(3)
    words = "a b c d the cat sat on mat".split()
    refs = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(60)]
    write_split(tmp_path / "test.parquet", refs, refs)
    (tmp_path / "eval").mkdir(), (tmp_path / "cells").mkdir()
    (tmp_path / "eval/baseline.greedy.txt").write_text("\n".join(refs) + "\n")
    (tmp_path / "baseline.json").write_text(json.dumps({"parameters": 1000, "greedy": {"bleu": 100.0, "chrf": 100.0}}))
    for name, facts in {"ptq-sym-8-full": dict(method="ptq", mode="sym", bits=8, group="full", compression_ratio=4.0),
                        "ptq-sym-4-full": dict(method="ptq", mode="sym", bits=4, group="full", compression_ratio=8.0),
                        "qat-control": dict(method="qat", control=True, compression_ratio=1.0),
                        "qat-sym-4-full": dict(method="qat", mode="sym", bits=4, group="full", compression_ratio=8.0)
                        }.items():
        hyps = [r if rng.random() > .2 else "x" for r in refs]
        (tmp_path / "dirs" / name).mkdir(parents=True)
        (tmp_path / "dirs" / name / "hyps.txt").write_text("\n".join(hyps) + "\n")
        (tmp_path / "cells" / f"{name}.json").write_text(json.dumps(
            {"cell": name, **facts, "bleu": 100.0 * sum(h == r for h, r in zip(hyps, refs)) / len(refs),
             "chrf": 90.0, "decoding": "greedy", "stored_bits": 8000}))
    (tmp_path / "cells.json").write_text(json.dumps({"layout": {"ptq": {"columns": ["full"]}}}))
    out = {k: tmp_path / "out" / v for k, v in (("--parquet", "r.parquet"), ("--csv", "r.csv"), ("--tables", "t.md"),
           ("--summary", "s.json"), ("--summary-md", "s.md"), ("--plot", "p.json"), ("--significance", "sig.json"),
           ("--report", "report.html"))}
    subprocess.run([sys.executable, "stages/aggregate.py", "--config", tmp_path / "cells.json", "--baseline",
                    tmp_path / "baseline.json", "--cells", tmp_path / "cells", "--cell-dirs", tmp_path / "dirs",
                    "--baseline-hyps", tmp_path / "eval", "--test", tmp_path / "test.parquet",
                    "--train-curve", tmp_path / "absent.json", *itertools.chain(*out.items())],
                   cwd=REPO, check=True, capture_output=True)
    html = out["--report"].read_text()
    best = json.loads(out["--summary"].read_text())["by_method"]["ptq"]["4x"]
    assert f"[{best['ci_low']:+.2f}, {best['ci_high']:+.2f}]" in html     # the stage's bootstrap intervals
    assert "No baseline training curve" in html and "No file sizes in the results" in html
    assert [s["label"] for s in Page(html).svgs] == ["max BLEU, max ratio"]


def test_a_130_cell_report_lists_every_cell(tmp_path):
    """The size of the thesis's Multi30k grids; how long it takes is benchmarks/report_speed.py's."""
    frame, baseline = make_grid(tmp_path, {"ptq": {"bits": (16, 8, 4, 3, 2)}})     # 2-bit: 12 more cells
    page = write_report(tmp_path / "report.html", frame, baseline, None, tmp_path / "train_curve.json",
                        tmp_path / "dirs")
    html = page.read_text()
    assert len(frame) - 1 >= 130
    assert all(f">{cell}<" in html for cell in frame["cell"] if cell != "baseline")


# ------------------------------------------------------------------ a real browser, network cut off

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install -y "
                                    "chromium; .ci/run installs it where it can): browser tests skipped")
OFFLINE = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
           "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--hide-scrollbars"]


def browse(page: Path, work: Path, *extra: str) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and every network request the page made (Chromium's
    own background requests left out: a page's requests carry its file:// isolation key)."""
    netlog = work / "netlog.json"
    done = subprocess.run([CHROMIUM, *OFFLINE, f"--user-data-dir={work / 'profile'}", f"--log-net-log={netlog}",
                           "--virtual-time-budget=5000", *extra, "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requests = [e["params"]["url"] for e in log["events"] if e["type"] == start
                and str(e["params"].get("network_isolation_key", "")).startswith("file://")
                and e["params"]["url"].split(":")[0] in ("http", "https", "ws", "wss")]
    return done.stdout, requests


@needs_chromium
def test_the_network_check_sees_a_pages_remote_requests(tmp_path):
    page = tmp_path / "remote.html"
    page.write_text('<html><body><img src="https://example.com/x.png"><script src="http://cdn.example.org/a.js">'
                    "</script></body></html>")
    _, requests = browse(page, tmp_path)
    assert set(requests) == {"https://example.com/x.png", "http://cdn.example.org/a.js"}


# Appended to the report: records where the best cells' box and the summary table end on screen.
PROBE = ("<script>for (const id of ['best-cells', 'summary-table'])"
         " document.body.setAttribute('data-' + id, Math.round("
         "document.getElementById(id).getBoundingClientRect().bottom));</script>")


@pytest.fixture(scope="module")
def report_in_chromium(grid, tmp_path_factory) -> tuple[str, list[str], bytes]:
    """One Chromium run on the report at 1280x800 (a laptop's first screen) serves every test of
    what Chromium makes of it: the DOM after the probe script ran, the page's network requests, and
    a screenshot of the first screen."""
    _, html, _ = grid
    work = tmp_path_factory.mktemp("chromium")
    probe, shot = work / "report.html", work / "report.png"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    dom, requests = browse(probe, work, "--window-size=1280,800", f"--screenshot={shot}")
    return dom, requests, shot.read_bytes()


@needs_chromium
def test_the_report_renders_offline_in_chromium(grid, report_in_chromium):
    frame, _, _ = grid
    dom, requests, png = report_in_chromium
    assert requests == []
    page = Page(dom)
    assert len(page.svgs) == 6 and all(svg["marks"] for svg in page.svgs)
    cells = set(frame["cell"])
    shipped = page.table("Decoded as shipped")    # the deploy section's table, as Chromium laid it out
    assert [r[0] for r in shipped[1:]] == list(frame.loc[frame["bleu_int8"].notna() | frame["bleu_deployed"].notna(),
                                                          "cell"])
    front = page.table("Pareto front: ")
    assert len(front) > 2 and {row[0] for row in front[1:]} <= cells
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1280 and len(png) > 20_000


@needs_chromium
def test_the_best_cells_are_on_the_first_screen(report_in_chromium):
    dom, _, _ = report_in_chromium
    bottom = {k: int(dom.split(f'data-{k}="')[1].split('"')[0]) for k in ("best-cells", "summary-table")}
    assert 0 < bottom["best-cells"] < 500 and bottom["summary-table"] < 800, bottom


@needs_chromium
def test_dvc_plots_show_with_the_offline_template_renders_vega_without_network(tmp_path):
    project = tmp_path / "project"
    (project / "metrics").mkdir(parents=True)
    for name in ("train_curve.json", "bleu_vs_ratio.json"):
        shutil.copy(REPO / "metrics" / name, project / "metrics" / name)
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    (project / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}, sort_keys=False))
    shutil.copytree(REPO / "tcompress" / "templates", project / "tcompress" / "templates")
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([*dvc, "init", "-q"], cwd=project, check=True)
    shutil.copytree(REPO / ".dvc" / "plots", project / ".dvc" / "plots")
    shutil.copy(REPO / ".dvc" / "config", project / ".dvc" / "config")   # plots.html_template: the default
    subprocess.run([*dvc, "plots", "show", "-o", "out"], cwd=project, check=True, capture_output=True)
    page = (project / "out" / "index.html").read_text()
    assert "<script src" not in page and "cdn.jsdelivr" not in page
    dom, requests = browse(project / "out" / "index.html", tmp_path)
    assert requests == []
    assert dom.count('class="marks"') == len(plots)    # vega-embed drew each plot (a canvas each)
