"""Is a cell's BLEU different from its reference's? sacrebleu's paired bootstrap resampling.

For each cell and each reference (the baseline decoded the same way, and for a trained cell its
fine-tuned control), sacrebleu's ``PairedTest`` (test type ``bs``, 1,000 resamples, its default
seed 12345) gives the p-value of the difference (Koehn 2004, as Moses'
``bootstrap-hypothesis-difference-significance.pl``). The 95 % confidence interval of the
difference comes from the same resamples: sacrebleu draws one set of resampled sentence indices
for its seed and uses it for every system, so we score those same resamples of the two systems
from sacrebleu's own sufficient statistics and take the differences' 2.5th and 97.5th
percentiles, with sacrebleu's ``estimate_ci`` index rule.
"""

from __future__ import annotations

import functools

import numpy as np
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

N_SAMPLES = 1000
SEED = 12345      # sacrebleu's default SACREBLEU_SEED
ALPHA = 0.05


def _resampled_scores(metric: BLEU, hypotheses: list[str], references: list[str], idxs: np.ndarray) -> np.ndarray:
    stats = np.array(metric._extract_corpus_statistics(hypotheses, [references]), dtype="float32")
    return np.array([metric._compute_score_from_stats(s.sum(0)).score for s in stats[idxs]])


def paired_bootstrap(reference: list[str], systems: dict[str, list[str]], references: list[str],
                     n_samples: int = N_SAMPLES) -> dict[str, dict]:
    """For each system: BLEU Δ against ``reference`` (the reference system's hypotheses), its 95 %
    confidence interval and sacrebleu's p-value."""
    if not systems:
        return {}
    named = [("__reference__", reference), *systems.items()]
    _, results = PairedTest(named, {"BLEU": BLEU()}, [references], test_type="bs", n_samples=n_samples)()
    metric = BLEU()
    idxs = np.random.default_rng(SEED).choice(len(reference), size=(n_samples, len(reference)), replace=True)
    ref_scores = _resampled_scores(metric, reference, references, idxs)
    base = results["BLEU"][0].score
    out = {}
    for (name, hyps), result in zip(systems.items(), results["BLEU"][1:]):
        diffs = np.sort(_resampled_scores(metric, hyps, references, idxs) - ref_scores)
        lower = n_samples // 40
        out[name] = {"delta": round(result.score - base, 4), "ci_low": round(float(diffs[lower]), 4),
                     "ci_high": round(float(diffs[n_samples - lower - 1]), 4),
                     "p_value": round(float(result.p_value), 4)}
    return out


def seed_bootstrap(pairs: list[tuple[list[str], list[str]]], references: list[str],
                   n_samples: int = N_SAMPLES) -> dict:
    """The 95 % interval of a mean BLEU Δ over seeds that includes the between-seed spread.

    ``pairs``: per seed, (the reference system's hypotheses, the system's), each seed's own baseline
    or control against its cell. Each of ``n_samples`` replicates draws the seeds with replacement
    and the test sentences with replacement (the same sentences for every seed: they share the test
    set) and averages the drawn seeds' Δ on the drawn sentences; the interval is the replicates'
    2.5th and 97.5th percentiles. The sentence draws are ``paired_bootstrap``'s, so with one seed
    the interval is its interval."""
    k, refs = len(pairs), tuple(references)
    diffs = np.stack([_replicates(tuple(hyps), refs, n_samples) - _replicates(tuple(ref), refs, n_samples)
                      for ref, hyps in pairs])                              # [seed, replicate]
    picks = np.random.default_rng(SEED + 1).integers(0, k, size=(n_samples, k))   # seeds drawn per replicate
    means = np.sort(diffs[picks, np.arange(n_samples)[:, None]].mean(axis=1))
    lower = n_samples // 40
    return {"n": k, "ci_low": round(float(means[lower]), 4), "ci_high": round(float(means[n_samples - lower - 1]), 4)}


@functools.lru_cache(maxsize=256)
def _replicates(hyps: tuple[str, ...], references: tuple[str, ...], n_samples: int) -> np.ndarray:
    """A system's BLEU on each of ``paired_bootstrap``'s resamples (a baseline or control serves many
    cells: scored once)."""
    idxs = np.random.default_rng(SEED).choice(len(references), size=(n_samples, len(references)), replace=True)
    return _resampled_scores(BLEU(), list(hyps), list(references), idxs)
