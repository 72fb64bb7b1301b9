"""Results over several training seeds: each cell's mean ± sd, n, and an interval with the seeds' spread.

With ``seeds: [a, b, c]`` every selected cell runs once per seed, each against its own seed's
baseline and control (``data/seeds/<seed>/``, ``metrics/seeds/<seed>/`` for the seeds after the
first). Per cell the aggregate adds:

- ``n_seeds``, ``bleu_mean``, ``bleu_sd``: its BLEU over the seeds that have a result (sd with
  n − 1 in the denominator; none for one seed);
- ``delta_ref_mean``, ``delta_ref_sd``: the same for Δ against each seed's own reference (its
  control for a fine-tuning method, else its baseline decoded the same way);
- ``seeds_ci_low``, ``seeds_ci_high``: the 95 % interval of the mean Δ from a bootstrap that
  resamples seeds and test sentences together (``tcompress.significance.seed_bootstrap``), so it
  widens with the spread between seeds as well as with the test set's noise;
- ``bleu_by_seed``: each seed's BLEU, as JSON.

With one seed none of this is computed and the results are the single run's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tcompress.data.corpora import read_text_lines

SEED_COLUMNS = ["n_seeds", "bleu_mean", "bleu_sd", "delta_ref_mean", "delta_ref_sd", "seeds_ci_low",
                "seeds_ci_high", "bleu_by_seed"]


def seed_dirs(seed: int, first: int, cell_dirs: Path, baseline_hyps: Path, seeds_dir: Path) -> tuple[Path, Path]:
    """A seed's cell folders and baseline translations: the usual paths for the first seed."""
    if seed == first:
        return cell_dirs, baseline_hyps
    return seeds_dir / str(seed) / "cells", seeds_dir / str(seed) / "eval"


def _folder(frame: pd.DataFrame, cell: str) -> str:
    """The folder holding a cell's translations (``results.translations_folder``'s rule)."""
    from tcompress.results import translations_folder

    return translations_folder(cell, frame.loc[cell, "same_as"])


def _reference_hyps(frame: pd.DataFrame, cell: str, cells_dir: Path, baseline_hyps: Path) -> list[str]:
    """The translations a cell's Δ is measured against in one seed: its method's control, else the
    baseline decoded the same way."""
    row = frame.loc[cell]
    if pd.notna(row["delta_control"]):
        control = frame[frame["control"] & (frame["method"] == row["method"])].index[0]
        return read_text_lines(cells_dir / _folder(frame, control) / "hyps.txt")
    return read_text_lines(baseline_hyps / f"baseline.{'greedy' if row['decoding'] == 'greedy' else 'beam'}.txt")


def across_seeds(frames: dict[int, pd.DataFrame], cell_dirs: Path, baseline_hyps: Path, seeds_dir: Path,
                 references: list[str]) -> pd.DataFrame:
    """The first seed's frame with the columns above. ``frames``: each seed's ``results.collect``
    frame, first seed first; a cell missing from a seed (not computed yet) counts in no statistic."""
    from tcompress.significance import seed_bootstrap

    seeds = list(frames)
    indexed = {s: f.set_index("cell", drop=False) for s, f in frames.items()}
    # baseline rows are keyed by decoding (one per decoding the cells used)
    for f in indexed.values():
        f.index = [f"baseline/{d}" if m == "baseline" else c for c, m, d in zip(f["cell"], f["method"], f["decoding"])]
    first = indexed[seeds[0]]
    out = {c: [] for c in SEED_COLUMNS}
    for key, row in first.iterrows():
        present = [s for s in seeds if key in indexed[s].index]
        bleu = pd.Series([float(indexed[s].loc[key, "bleu"]) for s in present])
        delta = pd.Series([float(indexed[s].loc[key, "delta_ref"]) for s in present])
        out["n_seeds"].append(len(present))
        out["bleu_mean"].append(round(bleu.mean(), 4))
        out["bleu_sd"].append(round(bleu.std(ddof=1), 4) if len(present) > 1 else None)
        out["bleu_by_seed"].append(json.dumps({str(s): float(indexed[s].loc[key, "bleu"]) for s in present}))
        if row["method"] == "baseline":
            for c in ("delta_ref_mean", "delta_ref_sd", "seeds_ci_low", "seeds_ci_high"):
                out[c].append(None)
            continue
        out["delta_ref_mean"].append(round(delta.mean(), 4))
        out["delta_ref_sd"].append(round(delta.std(ddof=1), 4) if len(present) > 1 else None)
        pairs = []
        for s in present:
            cells_dir, base_hyps = seed_dirs(s, seeds[0], cell_dirs, baseline_hyps, seeds_dir)
            frame = indexed[s]
            pairs.append((_reference_hyps(frame, key, cells_dir, base_hyps),
                          read_text_lines(cells_dir / _folder(frame, key) / "hyps.txt")))
        interval = seed_bootstrap(pairs, references)
        out["seeds_ci_low"].append(interval["ci_low"])
        out["seeds_ci_high"].append(interval["ci_high"])
    result = frames[seeds[0]].copy()
    for column, values in out.items():
        result[column] = pd.Series(values, index=result.index, dtype=object if column == "bleu_by_seed" else float)
    result["n_seeds"] = result["n_seeds"].astype(int)
    return result


def seed_frames(seeds: list[int], first: pd.DataFrame, seed_metrics: Path) -> dict[int, pd.DataFrame]:
    """Each seed's results frame (no per-seed bootstrap: ``across_seeds`` computes the one interval),
    the first seed's given."""
    from tcompress.results import collect

    frames = {seeds[0]: first}
    for seed in seeds[1:]:
        folder = seed_metrics / str(seed)
        if not (folder / "baseline.json").exists() or not json.loads((folder / "baseline.json").read_text()):
            raise ValueError(f"seed {seed}: {folder / 'baseline.json'} holds no baseline; run `dvc repro` "
                             f"(its seed_train@{seed} and seed_evaluate@{seed} stages)")
        frames[seed] = collect(folder / "baseline.json", folder / "cells")
    return frames
