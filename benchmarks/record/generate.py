"""Write BENCHMARKS.md from the committed raw outputs under benchmarks/results/.

    python benchmarks/record/generate.py            # rewrites BENCHMARKS.md
    python benchmarks/record/generate.py --check    # exit 1 if BENCHMARKS.md differs from what it would write

The record (benchmarks/results/record/, collected by run.py) gives the answer, the seed papers'
tables (claims.yaml) and the costs; the other sections come from one raw file each, with the command
that wrote it and the CPU flags it ran with. Nothing here holds a result: a number in BENCHMARKS.md
is in a raw file.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
THRESHOLDS = (4, 8, 16)
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")   # the ones kernels dispatch on


# ---- reading the record --------------------------------------------------------------------------

def expected_cells(repo: Path) -> dict[str, list[str]]:
    """Per part of the record, the cells and chains it selects: the overlay applied to params.yaml."""
    sys.path.insert(0, str(HERE))
    from run import apply_part, load_record, part_names

    from tcompress.grid import selected_cells, selected_chains
    from tcompress.params import load_params

    record = load_record(repo / "benchmarks/record/record.yaml")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / "params.yaml"
        for part in part_names(record):
            shutil.copy(repo / "params.yaml", params)
            apply_part(params, record, part, tmp)
            loaded = load_params(params)
            out[part] = [c.id for c in selected_cells(loaded)] + [c.id for c in selected_chains(loaded)]
    return out


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


class Part:
    """One part's collected raw outputs: per seed the baseline's and cells' metrics, the aggregate."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.seeds = {int(p.name[4:]): p for p in sorted(folder.glob("seed*")) if p.name[4:].isdigit()}
        self.machine = _json(folder / "machine.json")
        results = folder / "aggregate/results.csv"
        self.results = pd.read_csv(results).set_index("cell", drop=False) if results.exists() else None
        self.pairs = {(p["a"], p["b"]): p for p in _json(folder / "pairs.json").get("pairs", [])}
        # each cell against its reference, as the runner computed it from the translations collected
        self.deltas = {p["b"]: p for p in _json(folder / "deltas.json").get("deltas", [])}

    def cells(self) -> list[str]:
        """Every cell with a row: the aggregate's, and those the runner's deltas reach."""
        have = [] if self.results is None else list(self.results.index.unique())
        return have + [c for c in self.deltas if c not in have]

    def cell(self, seed: int, cell: str) -> dict:
        return _json(self.seeds[seed] / "cells" / f"{cell}.json")

    def baseline(self, seed: int) -> dict:
        return _json(self.seeds[seed] / "baseline.json")

    def train(self, seed: int) -> dict:
        return _json(self.seeds[seed] / "train.json")

    def row(self, cell: str) -> dict | None:
        """The aggregate's row of a cell, with the seeds' statistics (one seed: its own Δ and interval);
        where the aggregate has not reached the cell yet, the runner's Δ against its reference."""
        if self.results is None or cell not in self.results.index:
            return self._delta_row(cell)
        r = self.results.loc[cell]
        r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
        if "n_seeds" in r and pd.notna(r.get("n_seeds")):
            n, bleu, sd = int(r["n_seeds"]), r["bleu_mean"], r["bleu_sd"]
            delta, low, high = r["delta_ref_mean"], r["seeds_ci_low"], r["seeds_ci_high"]
        else:
            # one seed: the paired bootstrap's interval against the control, else against the baseline
            against = "delta_control" if pd.notna(r.get("delta_control")) else "delta"
            n, bleu, sd = 1, r["bleu"], float("nan")
            delta, low, high = r["delta_ref"], r[f"{against}_ci_low"], r[f"{against}_ci_high"]
        return {"cell": cell, "method": r["method"], "control": bool(r.get("control", False)), "n": n,
                "bleu": float(bleu), "sd": _float(sd), "delta": _float(delta), "low": _float(low), "high": _float(high)}

    def _delta_row(self, cell: str) -> dict | None:
        d = self.deltas.get(cell)
        if d is None:
            return None
        metrics = [m for m in (self.cell(s, cell) for s in d["seeds"] if s in self.seeds) if m]
        if not metrics:
            return None
        bleus = [m["bleu"] for m in metrics]
        sd = statistics.stdev(bleus) if len(bleus) > 1 else float("nan")
        return {"cell": cell, "method": metrics[0].get("method"), "control": bool(metrics[0].get("control")),
                "n": d["n"], "bleu": sum(bleus) / len(bleus), "sd": sd, "delta": d["delta_mean"],
                "low": d["ci_low"], "high": d["ci_high"]}

    def steps(self, cell: str, seed: int) -> float | None:
        """The training steps a cell took in one seed, the baseline's not counted: its fine-tuning (a
        student's or ticket's whole training), a chain's parent's included; 0 for a post-training cell;
        None while unmeasured."""
        if cell == "baseline":
            return 0.0
        metrics = self.cell(seed, cell)
        if not metrics:
            return None
        if metrics.get("same_as"):   # a shared control: its twin's training
            return self.steps(metrics["same_as"], seed)
        parent = self.steps(metrics["parent"], seed) if metrics.get("parent") else 0.0
        return None if parent is None else (metrics.get("finetune_steps") or 0) + parent

    def reference(self, cell: str) -> str | None:
        """The reference the cell's Δ was computed against (its ``deltas.json`` entry's ``a``: its
        method's control, or the baseline); None while the runner has no Δ for it."""
        return self.deltas.get(cell, {}).get("a")

    def files(self, cell: str) -> dict | None:
        """Mean file bytes, file ratio (the seed's baseline checkpoint over the cell's file) and greedy
        sentences/s over the seeds that have the cell."""
        rows = []
        for seed in self.seeds:
            metrics, base = self.cell(seed, cell), self.baseline(seed)
            if metrics.get("file_bytes") and base.get("checkpoint_bytes"):
                rows.append((metrics["file_bytes"], base["checkpoint_bytes"] / metrics["file_bytes"],
                             metrics.get("sentences_per_second")))
        if not rows:
            return None
        speeds = [s for _, _, s in rows if s]
        return {"bytes": sum(b for b, _, _ in rows) / len(rows), "ratio": sum(r for _, r, _ in rows) / len(rows),
                "speed": sum(speeds) / len(speeds) if speeds else None}


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def load_parts(repo: Path) -> dict[str, Part]:
    folder = repo / "benchmarks/results/record"
    return {p.name: Part(p) for p in sorted(folder.iterdir()) if p.is_dir()} if folder.exists() else {}


# ---- the answer and the verdicts -----------------------------------------------------------------

def best_at(parts: dict[str, Part], threshold: float) -> dict | None:
    """The cell with the highest mean BLEU among those whose file ratio is at least ``threshold``
    (controls and baselines left out), over every part."""
    best = None
    for name, part in parts.items():
        for cell in part.cells():
            row = part.row(cell)
            if row is None or row["control"] or row["method"] == "baseline":
                continue
            files = part.files(cell)
            if files is None or files["ratio"] < threshold:
                continue
            if best is None or row["bleu"] > best["bleu"]:
                best = {**row, **files, "part": name}
    return best


def verdict(delta: float, low: float, high: float, bound: float, below: bool = False) -> str:
    """The claim is Δ ≥ bound (``below``: Δ ≤ bound). reproduced: the whole interval on the claim's
    side; contradicted: the whole interval on the other; trend: the interval holds the bound and the
    mean is on the claim's side; inconclusive: it holds the bound and the mean is not."""
    if any(math.isnan(x) for x in (delta, low, high)):
        return "pending"
    sign = -1 if below else 1
    d, lo, hi, b = sign * delta, min(sign * low, sign * high), max(sign * low, sign * high), sign * bound
    if lo >= b:
        return "reproduced"
    if hi < b:
        return "contradicted"
    return "trend" if d >= b else "inconclusive"


def measured(parts: dict[str, Part], row: dict) -> dict | None:
    """Δ, its interval and n for a claims row, or None while the record has no data for it."""
    part = parts.get(row.get("part", "main"))
    if part is None:
        return None
    against = row.get("against", "reference")
    if against == "reference":
        r = part.row(row["cell"])
        return None if r is None else {"delta": r["delta"], "low": r["low"], "high": r["high"], "n": r["n"],
                                       "bleu": r["bleu"]}
    pair = part.pairs.get((against, row["cell"]))
    if pair is None:
        return None
    r = part.row(row["cell"])
    return {"delta": pair["delta_mean"], "low": pair["ci_low"], "high": pair["ci_high"], "n": pair["n"],
            "bleu": r["bleu"] if r else float("nan")}


# ---- formatting ----------------------------------------------------------------------------------

def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−")


def _interval(low: float, high: float) -> str:
    return f"[{_signed(low)}, {_signed(high)}]"


def _flags(flags: list[str] | str | None) -> str:
    have = set(flags.split() if isinstance(flags, str) else flags or [])
    return " ".join(f for f in FLAGS if f in have) or "none of " + ", ".join(FLAGS)


def _table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


# ---- sections ------------------------------------------------------------------------------------

HEADER = """# Benchmarks

Generated by `python benchmarks/record/generate.py` from the raw outputs under `benchmarks/results/`;
`tests/test_record.py` fails when this page and those files disagree, so edit the raw files' producers,
not this page. The record (the first four sections) is defined in `benchmarks/record/record.yaml`, run
and collected by `benchmarks/record/run.py`; the seed papers' claims it tests are in
`benchmarks/record/claims.yaml`."""


def record_section(repo: Path, parts: dict[str, Part]) -> str:
    record = yaml.safe_load((repo / "benchmarks/record/record.yaml").read_text())
    expected = expected_cells(repo)
    seeds = [s for s in _record_seeds(record)]
    lines = ["## The record", "",
             "Multi30k EN→DE (test_2016_flickr, 1,000 sentences), the 18-epoch baseline recipe, seeds "
             + ", ".join(map(str, seeds)) + ", fp32 for training and decoding. The baseline keeps its best "
             "validation epoch; every trained cell and its equal-budget control (`<method>-control`) keeps the "
             "model at the end of its budget (`keep: last`). Cells are decoded greedily. Δ is against each "
             "cell's reference in its own seed (its control for a trained method, else the baseline), "
             "averaged over the seeds; its 95 % interval is the aggregate's bootstrap over seeds and test "
             "sentences together. File ratio = the baseline checkpoint's bytes / the cell's file's bytes.",
             "", "```bash",
             "python benchmarks/record/run.py --clone ../record --data ../shared/data/multi30k --workers 12 "
             "--set runtime.device=cuda --set runtime.threads=1   # one GPU, 12 workers; docs/scale-out.md",
             "python benchmarks/record/generate.py", "```", ""]
    rows = []
    for part, cells in expected.items():
        have = parts.get(part)
        done = {s: sum(1 for c in cells if have and s in have.seeds and have.cell(s, c)) for s in seeds}
        rows.append([f"`{part}`", len(cells)] + [f"{done[s]}" for s in seeds]
                    + ["yes" if have is not None and have.results is not None else "pending"])
    lines += [_table(["part", "cells and chains"] + [f"measured, seed {s}" for s in seeds] + ["aggregate"], rows)]
    return "\n".join(lines)


def _record_seeds(record: dict) -> list[int]:
    for o in record["set"]:
        if o.startswith("seeds="):
            return [int(s) for s in re.findall(r"\d+", o.split("=", 1)[1])]
    return [1234]


def answer_section(parts: dict[str, Part], expected: list[str] | None = None) -> str:
    """The 4× / 8× / 16× table; ``expected``: the main part's cells and chains, to say how many are in."""
    have = parts.get("main")
    measured_ = sum(1 for c in expected or [] if have and any(have.cell(s, c) for s in have.seeds))
    partial = ("" if expected is None or measured_ == len(expected) else
               f" So far {measured_} of the record's {len(expected)} cells and chains are measured (the table in "
               "\"The record\" below says which seeds): an answer here holds among those, and a row stays pending "
               "until a measured cell reaches its ratio.")
    lines = ["## The answer: the best cell at each file ratio", "",
             "The cell with the highest mean BLEU among those whose file is at least 4×, 8× and 16× smaller "
             "than the baseline's checkpoint (controls left out), from the record described below." + partial, ""]
    rows = []
    for t in THRESHOLDS:
        b = best_at(parts, t)
        if b is None:
            rows.append([f"≥ {t}×", "pending", "", "", "", "", "", ""])
            continue
        sd = "" if math.isnan(b["sd"]) else f" ± {b['sd']:.2f}"
        speed = "" if b["speed"] is None else f"{b['speed']:.1f}"
        rows.append([f"≥ {t}×", f"`{b['cell']}`", f"{b['bleu']:.2f}{sd}", b["n"],
                     f"{_signed(b['delta'])} {_interval(b['low'], b['high'])}", f"{b['bytes']:,.0f}",
                     f"{b['ratio']:.2f}×", speed])
    lines.append(_table(["file ratio", "cell", "BLEU, mean ± sd", "n", "Δ, 95 % interval", "file bytes",
                         "file ratio", "greedy sentences/s"], rows))
    if have is not None and have.cells():
        lines += ["", f"![Δ BLEU against file ratio, every measured cell of the record]({FRONT.relative_to(REPO)})", "",
                  f"`{FRONT.relative_to(REPO)}`: every measured cell of the record's main part (controls left out), "
                  f"its Δ against its reference over its file ratio, coloured by kind of method; the answer's "
                  f"cells ringed; cells that lose more than {-FRONT_FLOOR:g} BLEU are left off the chart and "
                  "counted in its title. Hover a point for its name and numbers."]
    return "\n".join(lines)


FRONT = HERE / "front.svg"       # written beside this script by ``render``'s caller, checked like the page
FRONT_FLOOR = -5.0               # Δ below this is off the chart
FAMILIES = {                     # kind of method -> its methods, in the legend's order
    "post-training quantization": ("ptq", "gptq", "awq", "smoothquant", "adaround", "mixed", "kmeans_ptq",
                                   "fullyqt_ptq"),
    "quantization-aware training": ("qat", "q8bert", "fullyqt", "quant_noise", "qsgd", "binary", "bsflex", "kmeans"),
    "pruning": ("agp", "imp", "lottery", "nodeprune"),
    "distillation": ("distill",),
}


def front_svg(parts: dict[str, Part]) -> str:
    """The record's main part as a standalone SVG: Δ against file ratio per cell (``answer_section``'s note)."""
    from tcompress.svgplot import PALETTE, Point, Series, xy_plot

    part = parts.get("main")
    answer = {b["cell"] for t in THRESHOLDS if (b := best_at(parts, t)) is not None and b["part"] == "main"}
    series = {name: Series(name, color=PALETTE[i]) for i, name in enumerate([*FAMILIES, "chains (prune, then quantize)"])}
    rings = Series("the answer at 4×, 8×, 16×", color="#222222", marker=False, ring=True)
    off = 0
    for cell in (part.cells() if part is not None else []):
        row, files = part.row(cell), part.files(cell)
        if row is None or files is None or row["control"] or math.isnan(row["delta"]):
            continue
        if row["delta"] < FRONT_FLOOR:
            off += 1
            continue
        family = next((f for f, methods in FAMILIES.items() if row["method"] in methods),
                      "chains (prune, then quantize)")
        point = Point(files["ratio"], row["delta"], cell=cell,
                      tip=f"{cell}: Δ {_signed(row['delta'])} {_interval(row['low'], row['high'])}, "
                          f"{files['ratio']:.2f}× file, n = {row['n']}")
        series[family].points.append(point)
        if cell in answer:
            rings.points.append(point)
    floor = f"{FRONT_FLOOR:g}".replace("-", "−")
    width, height = 1000, 360
    chart = xy_plot([*series.values(), rings], x_title="file ratio (baseline checkpoint bytes / cell file bytes)",
                    y_title="Δ BLEU against the reference", x_log=True, width=width, height=height,
                    label=f"The record: Δ BLEU against file ratio ({off} cells below {floor} not drawn)")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 28}" '
            f'viewBox="0 0 {width} {height + 28}">'
            "<style>text{font:12px sans-serif;fill:#222}.axis-title{font-weight:bold}.grid{stroke:#e5e5e5}</style>"
            f'<text x="64" y="18" class="axis-title">The record, main part: Δ BLEU over file ratio ({off} cells '
            f'below {floor} BLEU not drawn)</text>' + chart.replace('<svg class="chart"', '<svg y="28" class="chart"', 1)
            + "</svg>\n")


def claims_section(repo: Path, parts: dict[str, Part]) -> str:
    claims = yaml.safe_load((repo / "benchmarks/record/claims.yaml").read_text())
    lines = ["## The seed papers' claims", "",
             "Each row: the paper's claim and its number, the record's Δ = BLEU(cell) − BLEU(against) "
             "(mean over the seeds, n, 95 % interval) and a verdict. The claim is Δ ≥ bound (or ≤, where "
             "it says so). **reproduced**: the whole interval is on the claim's side of the bound; "
             "**contradicted**: the whole interval is on the other side; **trend**: the interval holds the "
             "bound and the mean is on the claim's side; **inconclusive**: it holds the bound and the mean is "
             "not; **pending**: the record has no result for the row yet. `reference` is the cell's control "
             "for a trained method, else the baseline. Training steps: each side's own, the baseline's not "
             "counted (a fine-tuning's steps, a student's or ticket's whole training; a chain's include its "
             "parent's; a post-training cell's are 0), so a comparison at unequal compute shows it."]
    for paper in claims["papers"]:
        rows = []
        for row in paper["rows"]:
            m = measured(parts, row)
            bound = ("≤ " if row.get("below") else "≥ ") + _signed(float(row["bound"]))
            against = row.get("against", "reference")
            cell = f"`{row['cell']}`" + (f" ({row['part']})" if row.get("part") else "")
            part = parts.get(row.get("part", "main"))
            files = part.files(row["cell"]) if part is not None else None
            done = "" if files is None else f"{files['ratio']:.2f}×" + cell_facts(part, row)
            steps = "" if part is None else training_steps(part, row["cell"], against)
            if m is None:
                rows.append([row["claim"], row["paper"], cell, done, f"`{against}`", steps, bound, "pending", "",
                             "pending"])
                continue
            rows.append([row["claim"], row["paper"], cell, done, f"`{against}`", steps, bound,
                         f"{_signed(m['delta'])} {_interval(m['low'], m['high'])}", m["n"],
                         verdict(m["delta"], m["low"], m["high"], float(row["bound"]), bool(row.get("below")))])
        lines += ["", f"### {paper['id']}: {paper['title']}", "",
                  _table(["claim", "paper", "cell", "its file ratio", "against", "training steps, cell / against",
                          "bound", "Δ, 95 % interval", "n", "verdict"], rows)]
    return "\n".join(lines)


def training_steps(part: Part, cell: str, against: str) -> str:
    """"cell / against": each side's training steps (``Part.steps``), mean over
    the seeds that have both, so a comparison of unequal compute says so; blank while none has both."""
    other = part.reference(cell) if against == "reference" else against
    if other is None:
        return ""
    both = [(a, b) for seed in part.seeds
            if (a := part.steps(cell, seed)) is not None and (b := part.steps(other, seed)) is not None]
    if not both:
        return ""
    return " / ".join(f"{sum(x) / len(both):,.0f}" for x in zip(*both))


def cell_facts(part: Part, row: dict) -> str:
    """A claims row's ``facts`` (label: the cell's metrics key), each the mean over the seeds that have
    the cell: what the compression did, beside its file ratio."""
    found = []
    for label, key in (row.get("facts") or {}).items():
        values = [part.cell(seed, row["cell"]).get(key) for seed in part.seeds]
        values = [v for v in values if isinstance(v, (int, float))]
        if values:
            found.append(f"{label} {sum(values) / len(values):g}")
    return f"; {', '.join(found)}" if found else ""


def costs_section(parts: dict[str, Part]) -> str:
    lines = ["## The record's costs", ""]
    if not parts:
        return "\n".join(lines + ["pending: no part of the record has been collected."])
    for name, part in parts.items():
        m = part.machine
        lines += [f"`{name}`: CPU {m.get('cpu')}, {m.get('cores')} cores, flags {_flags(m.get('cpu_flags'))}; "
                  f"GPU {m.get('gpu') or 'none'}; torch {m.get('torch')}; commit `{(m.get('commit') or '')[:12]}`"
                  + ("" if m.get("clean", True) else " (with local changes)") + ".", ""]
        rows = []
        for seed in part.seeds:
            t = part.train(seed)
            if t:
                rows.append([seed, "baseline (train stage)", 1, f"{t.get('wall_seconds', float('nan')):,.1f}",
                             t.get("precision", "")])
            by_method: dict[str, list] = {}
            for path in sorted((part.seeds[seed] / "cells").glob("*.json")):
                c = _json(path)
                by_method.setdefault(c.get("method", "?"), []).append(c)
            for method, cells in sorted(by_method.items()):
                ran = [c for c in cells if not c.get("same_as")]   # a shared control's training is its twin's
                if not ran:
                    continue
                seconds = [c.get("compress_seconds") or 0.0 for c in ran]
                precision = sorted({c["precision"] for c in ran if c.get("precision")})
                rows.append([seed, method, len(ran), f"{sum(seconds):,.1f} ({sum(seconds) / len(ran):,.1f} a cell)",
                             "/".join(precision)])
        lines += [_table(["seed", "method", "cells run (a control shared with another method counted once)",
                          "seconds compressing (fine-tuning included, the test decode not)", "precision"], rows), ""]
    return "\n".join(lines).rstrip()


def training_cost_section(repo: Path) -> str:
    raw = repo / "benchmarks/results"
    bf16 = _json(raw / "multi30k_train.json")
    fp32 = _json(raw / "multi30k_seed003/baseline_18ep_fp32/train.json")
    log = (raw / "multi30k_seed003/lottery_18ep_gpu/run.log").read_text()
    gpu_seconds = max(int(s) for s in re.findall(r"^\[(\d+) s\]", log, flags=re.M))
    finished = len(re.findall(r"exit 0$", log, flags=re.M))
    rows = [["one 18-epoch baseline, bf16, 2-core CPU with native bf16 (avx512_bf16 amx_bf16)",
             "`benchmarks/results/multi30k_train.json`", f"{bf16['wall_seconds']:,.1f}"],
            [f"one 18-epoch baseline, {fp32['precision']}, 2-core AVX2-only CPU (AMD EPYC)",
             "`benchmarks/results/multi30k_seed003/baseline_18ep_fp32/train.json`", f"{fp32['wall_seconds']:,.1f}"],
            [f"{finished} runs side by side on one H200 (per seed: the baseline, four 18-epoch lottery tickets, "
             "two IMP cells; two seeds), fp32", "`benchmarks/results/multi30k_seed003/lottery_18ep_gpu/run.log`",
             f"{gpu_seconds:,}"]]
    return "\n".join([
        "## Multi30k baseline: what a training costs", "",
        "`dvc exp run -S data=multi30k -S multi30k.local_dir=../shared/data/multi30k` trains 18 epochs "
        f"({bf16['steps']:,} steps); the GPU run is `benchmarks/lottery_device.sh`.", "",
        _table(["run", "raw file", "wall seconds"], rows), "",
        "What the record should take, from these: per seed it trains the baseline, 5 lottery runs and 3 "
        "students at the 18-epoch budget, FullyQT from scratch and its control (11 trainings), and about "
        "130 short cells (post-training cells seconds to minutes, fine-tuned cells about a minute each on a "
        "2-core CPU). On a 2-core fp32 CPU the 33 long trainings alone are "
        f"about {33 * fp32['wall_seconds'] / 3600:,.0f} hours, so the record is a GPU job: at the H200's "
        f"{gpu_seconds / finished:,.0f} s a training when {finished} share it, the long trainings fit in "
        "well under an hour, and the short cells add minutes."])


def default_run_section(repo: Path) -> str:
    d = _json(repo / "benchmarks/results/default_run.json")
    cells = [[f"`{c}`", f"{v['bleu']:.2f}", f"{v['file_ratio']:.2f}×"] for c, v in sorted(d["cells"].items())]
    return "\n".join([
        "## First contact: the default `dvc repro` (synthetic corpus)", "",
        f"Command: `{d['command']}` (a fresh clone of `{d['commit'][:7]}`, `dvc repro` with no DVC cache, then "
        f"again; raw: `benchmarks/results/default_run.json`). CPU: {d['cpu']['model']}, {d['cpu']['cores']} cores, "
        f"flags {_flags(d['cpu']['flags'])}; AVX2 kernels only: {d['avx2_kernels_only']}; precision {d['precision']}.",
        "", _table(["", "value"], [
            ["first `dvc repro`", f"{d['first_repro_seconds']:,.1f} s ({d['stages_run']} stages)"],
            ["second `dvc repro` (nothing to run)", f"{d['noop_repro_seconds']} s"],
            ["baseline training", f"{d['baseline_train_seconds']:,.1f} s, {d['baseline_steps']} steps"],
            ["baseline BLEU, greedy / beam", f"{d['baseline_bleu_greedy']:.2f} / {d['baseline_bleu_beam']:.2f}"]]),
        "", _table(["cell", "BLEU", "file ratio"], cells)])


def packed_section(repo: Path) -> str:
    d = _json(repo / "benchmarks/results/packed_sizes.json")
    rows = [[f"`{c['cell']}`", f"{c['file_bytes']:,}", f"{c['file_ratio']:.2f}×", f"{c['compression_ratio']:.2f}×"]
            for c in d["cells"]]
    chain = d["pruned_then_4bit"]
    rows.append([f"`{chain['from']}`, then 4-bit codes", f"{chain['file_bytes']:,}", f"{chain['file_ratio']:.2f}×", ""])
    return "\n".join([
        "## Packed artifacts: the bytes a user ships", "",
        "Command: `python benchmarks/packed_sizes.py` (raw: `benchmarks/results/packed_sizes.json`; sizes do "
        f"not depend on the CPU). The baseline's checkpoint (`torch.save`, weights only) is "
        f"{d['baseline_bytes']:,} bytes.", "",
        _table(["cell", "file bytes", "file ratio", "formula ratio (thesis §4.1)"], rows)])


SETTINGS = [("greedy", 128), ("greedy", 1), ("beam4", 128), ("beam4", 1)]


def _speed_table(rows: list[dict], reference: str, batch1: dict | None = None) -> str:
    """Sentences/s and × ``reference`` per setting, the BLEU at batch 128 and, with ``batch1`` (a
    system's greedy batch-1 decoding of the whole test split), that BLEU and the share of sentences
    identical to the reference's."""
    by = {(r["system"], r["decoding"], r["batch"]): r for r in rows}
    systems = list(dict.fromkeys(r["system"] for r in rows))
    out = []
    for s in systems:
        cells = []
        for d, b in SETTINGS:
            r, ref = by.get((s, d, b)), by.get((reference, d, b))
            cells.append("" if r is None else f"{r['sentences_per_second']:.1f} ({r['sentences_per_second'] / ref['sentences_per_second']:.2f}×)"
                         if ref else f"{r['sentences_per_second']:.1f}")
        bleu = next((f"{by[s, d, b]['bleu']:.2f}" for d, b in SETTINGS if (s, d, b) in by and "bleu" in by[s, d, b]), "")
        extra = [] if batch1 is None else [f"{batch1[s]['bleu']:.2f}", f"{batch1[s]['identical_to_ours']:.1%}"]
        out.append([f"`{s}`", *cells, bleu, *extra])
    extra = [] if batch1 is None else ["BLEU, greedy batch 1", f"identical to `{reference}`, greedy batch 1"]
    return _table(["system"] + [f"{d}, batch {b}" for d, b in SETTINGS] + ["BLEU", *extra], out)


def int8_section(repo: Path) -> str:
    lines = ["## int8 decoding on the CPU", "",
             "Sentences/s decoding test_2016_flickr with the Multi30k model, and the ratio to fp32 on the same "
             "machine. `ours-int8` is `tcompress translate --int8` on an 8-bit cell."]
    for name in ("int8_speed_multi30k_avx2.json", "int8_speed_multi30k_amx.json"):
        d = _json(repo / "benchmarks/results" / name)
        lines += ["", f"### {name}", "",
                  f"Command: `python {_command(d['command'])}`; {d['threads']} threads, torch {d['torch']}, "
                  f"CPU flags {_flags(d['cpu_flags'])}; int8 kernel {d['int8']['int8_kernel']}.", "",
                  _speed_table(d["rows"], "fp32")]
    return "\n".join(lines)


def _command(command: str) -> str:
    """A raw file's command as a user types it: `python benchmarks/…`, whichever way it was recorded."""
    command = re.sub(r"^(python )?/\S*/benchmarks/", "benchmarks/", command)
    return command.removeprefix("python ")


def record_deploy_section(parts: dict[str, Part]) -> list[str]:
    """The record's ``deploy`` part: a weight-only symmetric per-row 8-bit cell and the distilled
    students, decoded by our PyTorch decoder (and the cell by our exact int8 path) and by their
    CTranslate2 int8 exports, each in the pipeline's own stages."""
    part = parts.get("deploy")
    if part is None or not part.seeds:
        return []
    m = part.machine
    rows = []
    for seed in part.seeds:
        base = part.baseline(seed)
        cells = sorted((part.seeds[seed] / "cells").glob("*.json"))
        if not base or not cells:
            continue
        greedy = base["greedy"]
        systems = [("baseline, our fp32 PyTorch", greedy["bleu"], greedy["sentences_per_second"], base["checkpoint_bytes"])]
        if "bleu_deployed" in base:
            systems.append(("baseline, CTranslate2 float32 export", base["bleu_deployed"],
                            base["sentences_per_second_deployed"], base["deployed_bytes"]))
        for path in cells:
            c = _json(path)
            how = "our PyTorch (codes × steps in float)" if "bits" in c else "our fp32 PyTorch"
            systems.append((f"`{c['cell']}`, {how}", c["bleu"], c["sentences_per_second"], c["file_bytes"]))
            if "bleu_int8" in c:
                systems.append((f"`{c['cell']}`, our exact int8 path (`translate --int8`)", c["bleu_int8"],
                                c["sentences_per_second_int8"], c["file_bytes"]))
            if "bleu_deployed" in c:
                systems.append((f"`{c['cell']}`, CTranslate2 {c['deployed_compute_type']} export "
                                f"({c['deployed_differences']})", c["bleu_deployed"],
                                c["sentences_per_second_deployed"], c["deployed_bytes"]))
        rows += [[seed, label, f"{bleu:.2f}", f"{speed:.0f}",
                  f"{speed / greedy['sentences_per_second']:.2f}×", f"{size:,}"]
                 for label, bleu, speed, size in systems]
    if not rows:
        return []
    return ["", "### The record's deploy part: cells shipped by the pipeline", "",
            "`python benchmarks/record/run.py --clone ../record --data ../shared/data/multi30k --part deploy` (raw: "
            "`benchmarks/results/record/deploy/`): the record's baseline, `ptq` with `bits=[8]`, `modes=[sym]`, "
            "`groups=[full]`, `per_channel: true`, `activations: none`, and the distilled students, with "
            "`deploy.backend: ctranslate2`. Each figure "
            f"is one greedy pass over the test split in its own stage; CPU {m.get('cpu')}, flags "
            f"{_flags(m.get('cpu_flags'))}, one thread per stage beside the record's other jobs, so the speeds "
            "are not a timing (the tables above are).", "",
            _table(["seed", "system", "BLEU", "sentences/s", "× the baseline's fp32 PyTorch", "bytes"], rows)]


def ctranslate2_section(repo: Path, parts: dict[str, Part]) -> str:
    lines = ["## CTranslate2: the float model and the exported cells", "",
             "Models exported to CTranslate2 and decoded by it, against our fp32 decoder in the same run. The "
             "anchor files are the Multi30k float baseline (`ct2-int8`: CTranslate2's own int8 of it); the "
             "deploy_speed files a model and its `ptq-sym-8-full` cell exported with its own codes "
             "(`ct2-int8-cell`; `-vmap`: with the vocabulary shortlist of `tcompress export --vmap`, whose "
             "output can differ), beside torch's dynamic int8: the default synthetic model, and (`_multi30k`) the "
             "record's seed-1234 Multi30k baseline and cell, copied out of the record's clone. Where a file has "
             "them, the last two columns are each system's greedy decoding of the whole test split one "
             "sentence at a time (untimed)."]
    for name in ("ctranslate2_anchor_multi30k.json", "ctranslate2_anchor_multi30k_amx.json", "deploy_speed.json",
                 "deploy_speed_avx2.json", "deploy_speed_multi30k.json", "deploy_speed_multi30k_avx2.json"):
        d = _json(repo / "benchmarks/results" / name)
        if not d:
            continue
        kernels = "; AVX2 kernels only (`--avx2`)" if d.get("avx2_kernels_only") else ""
        load = d.get("load_average_1_5_15min")
        if load:
            kernels += f"; load average {load['before'][0]:.2f} before and {load['after'][0]:.2f} after"
        lines += ["", f"### {name}", "",
                  f"Command: `python {_command(d['command'])}`; {d.get('threads')} threads, CTranslate2 "
                  f"{d.get('ctranslate2')}, CPU flags {_flags(d.get('cpu_flags'))}{kernels}.", "",
                  _speed_table(d["rows"], "ours-fp32", d.get("greedy_batch1_whole_test"))]
    return "\n".join(lines + shortlist_sizes(repo) + record_deploy_section(parts) + deploy_points(repo))


def shortlist_sizes(repo: Path) -> list[str]:
    """The vocabulary shortlist's sizes against BLEU and batch-1 speed (vmap_sizes_multi30k.json)."""
    d = _json(repo / "benchmarks/results/vmap_sizes_multi30k.json")
    if not d:
        return []
    load = d["load_average_1_5_15min"]
    rows = [[f"{r['per_source']:,}", f"{r['frequent']:,}", f"{r['bleu']:.2f}", _signed(r['bleu'] - r['bleu_without']),
             f"{r['identical_to_without']:.1%}", f"{r['sentences_per_second']:.1f}", f"{r['speedup']:.2f}×"]
            for r in d["rows"]]
    return ["", "### The vocabulary shortlist's size", "",
            f"Command: `python {_command(d['command'])}` (raw: `benchmarks/results/vmap_sizes_multi30k.json`); the "
            f"record's seed-1234 Multi30k `ptq-sym-8-full` cell exported with `--int8`, greedy, one sentence at a "
            f"time, the {d['split'].removesuffix('.parquet')} split ({d['sentences']:,} sentences), where a size is "
            f"chosen; {d['threads']} thread(s), CTranslate2 {d['ctranslate2']}, CPU flags {_flags(d['cpu_flags'])}; "
            f"load average {load['before'][0]:.2f} before and {load['after'][0]:.2f} after. Against the same export "
            f"without a shortlist ({d['rows'][0]['bleu_without']:.2f} BLEU), each speed ratio measured beside it.",
            "", _table(["per source piece", "most frequent", "BLEU", "Δ", "identical translations",
                        "sentences/s", "× without"], rows)]


def deploy_points(repo: Path) -> list[str]:
    """The deployable points as the pipeline's own stages measured them (deploy_student.json)."""
    d = _json(repo / "benchmarks/results/deploy_student.json")
    if not d:
        return []
    base, speed = d["baseline"], d["baseline"]["sentences_per_second"]
    shipped = d.get("baseline_deployed") or {}
    rows = [["baseline, our fp32 PyTorch", f"{base['bleu']:.2f}", f"{speed:.0f}", "1.00×", f"{base['checkpoint_bytes']:,}"]]
    if shipped:
        rows.append(["baseline, CTranslate2 float32", f"{shipped['bleu_deployed']:.2f}",
                     f"{shipped['sentences_per_second_deployed']:.0f}",
                     f"{shipped['sentences_per_second_deployed'] / speed:.2f}×", f"{shipped['deployed_bytes']:,}"])
    for cell, c in d["cells"].items():
        rows.append([f"`{cell}`, our PyTorch", f"{c['bleu']:.2f}", f"{c['sentences_per_second']:.0f}",
                     f"{c['sentences_per_second'] / speed:.2f}×", f"{c['file_bytes']:,}"])
        rows.append([f"`{cell}`, CTranslate2 {c['deployed_compute_type']}", f"{c['bleu_deployed']:.2f}",
                     f"{c['sentences_per_second_deployed']:.0f}", f"{c['sentences_per_second_deployed'] / speed:.2f}×",
                     f"{c['deployed_bytes']:,}"])
    student = next((c for cell, c in d["cells"].items() if cell.startswith("distill")), {})
    return ["", "### The deployable points, from the pipeline's own stages", "",
            f"Command: `python {_command(d['command'])}` (raw: `benchmarks/results/deploy_student.json`); the "
            f"default synthetic corpus, `deploy.backend: ctranslate2`, {d['threads']} thread(s); CPU "
            f"{d['cpu']['model']}, flags {_flags(d['cpu']['flags'])}; load average "
            f"{d['load_average']['before'][0]:.2f} before and {d['load_average']['after'][0]:.2f} after. Each speed is one greedy pass over the test "
            "split in its own stage (the evaluate stage for the baseline, the cell's stage for a cell); bytes are the "
            f"checkpoint's, the artifact's or the export folder's. The student: word-level KD, trained "
            f"{student.get('kept_epoch', '?')} epochs ({student.get('finetune_steps', '?')} steps, "
            f"{student.get('precision', '?')}).", "",
            _table(["system", "BLEU", "sentences/s", "× baseline fp32 PyTorch", "bytes"], rows)]


def ptq_family_section(repo: Path) -> str:
    d = _json(repo / "benchmarks/results/ptq_family.json")
    if not d:
        return ""
    base = d["baseline_greedy_bleu"]
    rows = [[f"`{cell}`", c["method"], f"{c['bleu']:.2f}", _signed(c["bleu"] - base), f"{c['file_bytes']:,}",
             f"{c['file_ratio']:.2f}×", "" if c.get("bleu_int8") is None else f"{c['bleu_int8']:.2f}",
             f"{c['compress_seconds']:.1f}", f"{c['seconds']:.1f}"]
            for cell, c in sorted(d["cells"].items(), key=lambda kv: (kv[1]["method"], kv[0]))]
    family = [c for c in d["cells"].values() if c["method"] in ("gptq", "awq", "adaround", "smoothquant")]
    rtn = [c for c in d["cells"].values() if c["method"] == "ptq"]
    rtn_cell = sum(c["seconds"] for c in rtn) / len(rtn)
    per_cell = (sum(c["seconds"] for c in family) / len(family)) / rtn_cell
    per_method = ", ".join(
        f"{m} {sum(c['seconds'] for c in cs) / len(cs) / rtn_cell:.2f}×"
        for m in ("gptq", "awq", "smoothquant", "adaround") if (cs := [c for c in family if c["method"] == m]))
    stages = d["stage_seconds"]
    load = d.get("load_average")
    machine = "" if load is None else (
        f" {d['threads']} torch thread(s) per stage; load average {load['before'][0]:.2f} before and "
        f"{load['after'][0]:.2f} after the run.")
    return "\n".join([
        "## Post-training methods side by side, and what a sweep costs", "",
        f"Command: `python {_command(d['command'])}` (raw: `benchmarks/results/ptq_family.json`); the {d['data']} "
        f"corpus's baseline (greedy BLEU {base:.2f}, checkpoint {d['baseline_checkpoint_bytes']:,} bytes); CPU "
        f"{d['cpu']['model']}, {d['cpu']['cores']} cores, flags {_flags(d['cpu']['flags'])}.{machine} `ptq` is weight-only "
        "round-to-nearest per row on the same Linears (the reference sweep). Δ against the baseline, one seed, "
        "no interval: a quick comparison, not the record. Seconds: the cell's whole stage (`dvc repro` of it: "
        "compressing, packing, decoding the test split) and its compression alone.", "",
        _table(["cell", "method", "BLEU", "Δ", "file bytes", "file ratio", "BLEU, int8 path", "compress, s",
                "stage, s"], rows), "",
        f"Computed once and read by every cell: `calibrate` {stages['calibrate']:.1f} s, `sensitivity` (the mixed "
        f"search's) {stages['sensitivity']:.1f} s. The sweep of the four methods' {len(family)} cells with their "
        f"calibration: **{d['family_sweep_seconds']:.1f} s**, against {d['rtn_sweep_seconds']:.1f} s for the "
        f"{len(rtn)} round-to-nearest cells ({d['family_over_rtn']:.2f}×). Cell for cell, the calibration shared "
        f"among them, the sweep costs **{d['family_sweep_seconds'] / len(family) / rtn_cell:.2f}× an RTN cell** "
        f"(without it, {per_cell:.2f}×: {per_method}): most of a post-training cell's stage is "
        "decoding the test split, which every method pays alike."])


def scale_out_section(repo: Path) -> str:
    d = _json(repo / "benchmarks/results/shard_speed.json")
    rows = [[r["round"], f"{r['sequential_seconds']:.1f}", f"{r['sharded_seconds']:.1f}", f"{r['ratio']:.2f}×",
             f"{r['collector_seconds']:.1f}", r["collector_cells_computed"],
             ", ".join(f"`{s}`" for s in r.get("collector_stages_run", [])) or "none",
             r.get("collector_stages_restored", "")] for r in d["rounds"]]
    return "\n".join([
        "## Two shard workers on two cores, and the collector", "",
        f"Command: `{d['command']}` (raw: `benchmarks/results/shard_speed.json`); CPU {d['cpu']['model']}, "
        f"{d['cpu']['cores']} cores, flags {_flags(d['cpu']['flags'])}. The default corpus's QAT, AGP, IMP and "
        f"k-means cells with their controls and the catalog's off markers ({len(d['cells'])} targets): one "
        "2-thread `dvc repro`, against two 1-thread workers on one cache running `tcompress shard --of 2`; then a "
        "third clone's `dvc repro` on that cache (the collector).", "",
        _table(["round", "one repro, s", "two workers, s", "ratio", "collector, s", "cells it computed",
                "stages it ran", "stages it restored"], rows)])


def thread_section(repo: Path) -> str:
    d = _json(repo / "benchmarks/results/thread_scaling_avx2.json")
    rows = [[k, f"{v:.3f}"] for k, v in d["median_seconds_per_step"].items()]
    return "\n".join([
        "## Two trainings on two cores: one thread each, or one after the other on two", "",
        f"Command: `{d['command']}` (raw: `benchmarks/results/thread_scaling_avx2.json`); CPU {d['cpu']}, flags "
        f"{_flags(d['cpu_flags'])}, {d['precision']}, {d['steps']} steps × {len(d['rounds'])} rounds.", "",
        _table(["arrangement", "median seconds a step"], rows), "",
        f"Two 1-thread trainings side by side give **{d['throughput_ratio']:.2f}×** the steps an hour of one "
        f"2-thread training; the second thread speeds one training up {d['second_thread_speedup']:.2f}×."])


def test_durations_section(repo: Path) -> str:
    text = (repo / "benchmarks/results/test_durations.txt").read_text().splitlines()
    head = [line for line in text[:8] if line.startswith(("command:", "cpu:", "total:", "sum of"))]
    flags = next((line.split(":", 1)[1] for line in text if line.startswith("cpu flags:")), "")
    per_file = []
    for line in text:
        m = re.match(r"^\s+([\d.]+)\s+(\d+)\s+(tests/\S+)$", line)
        if m:
            per_file.append([f"`{m.group(3)}`", m.group(2), m.group(1)])
    return "\n".join([
        "## Test durations", "",
        "Raw: `benchmarks/results/test_durations.txt` (`python benchmarks/test_durations.py`). "
        + " ".join(f"{line.strip()}." if not line.strip().endswith(".") else line.strip() for line in head)
        + f" CPU flags {_flags(flags)}.", "",
        "The ten slowest files:", "", _table(["file", "tests", "seconds"], per_file[:10])])


def render(repo: Path = REPO, parts: dict[str, Part] | None = None) -> str:
    parts = load_parts(repo) if parts is None else parts
    sections = [HEADER, answer_section(parts, expected_cells(repo)["main"]), record_section(repo, parts),
                claims_section(repo, parts),
                costs_section(parts), training_cost_section(repo), default_run_section(repo), packed_section(repo),
                int8_section(repo), ctranslate2_section(repo, parts), ptq_family_section(repo), thread_section(repo),
                scale_out_section(repo),
                test_durations_section(repo)]
    return "\n\n".join(s for s in sections if s) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    parts = load_parts(REPO)
    text, page, front = render(REPO, parts), REPO / "BENCHMARKS.md", front_svg(parts)
    if args.check:
        sys.exit(0 if page.read_text() == text and FRONT.exists() and FRONT.read_text() == front else 1)
    page.write_text(text)
    FRONT.write_text(front)
    print(f"{page}: {len(text.splitlines())} lines; {FRONT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
