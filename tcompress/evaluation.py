"""One evaluation for every cell: decode the test split, score detokenized output with sacrebleu.

The baseline goes through ``evaluate_model`` (greedy and beam); every compressed cell through
the same ``translate`` and ``score`` with the cells' decoding (``runner.evaluate_cell``), so their
numbers differ only by the model. BLEU is sacrebleu's default (13a tokenizer, cased) against the raw
references, with its signature kept beside the score so results can be compared across papers.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from sacrebleu.metrics import BLEU, CHRF

from tcompress.decode import DecodeOptions, translate
from tcompress.layer_groups import group_report
from tcompress.model import EncoderDecoder, count_parameters


def score(hypotheses: list[str], references: list[str]) -> dict:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    return {"bleu": round(b.score, 4), "chrf": round(c.score, 4),
            "signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature())}


def evaluate_model(model: EncoderDecoder, tokenizer, sources: list[str], references: list[str],
                   opts: DecodeOptions, device: torch.device | str = "cpu", progress: bool = True,
                   hypotheses_dir: str | Path | None = None, name: str = "model") -> dict:
    """Greedy and (if ``opts.beam_size`` > 1) beam-search scores; headline ``bleu``/``chrf`` are the beam's."""
    results: dict = {}
    searches = {"greedy": DecodeOptions(1, opts.length_penalty, opts.batch_sentences, opts.max_len_a, opts.max_len_b)}
    if opts.beam_size > 1:
        searches["beam"] = opts
    for search, search_opts in searches.items():
        hyps, speed = translate(model, tokenizer, sources, search_opts, device, progress, desc=search)
        scored = score(hyps, references)
        results[search] = {**scored, "sentences_per_second": round(speed, 2)}
        if hypotheses_dir is not None:
            Path(hypotheses_dir).mkdir(parents=True, exist_ok=True)
            (Path(hypotheses_dir) / f"{name}.{search}.txt").write_text("\n".join(hyps) + "\n")
    headline = results["beam" if "beam" in results else "greedy"]
    return {"bleu": headline["bleu"], "chrf": headline["chrf"], "signature": headline["signature"],
            "decoding": {"beam_size": opts.beam_size, "length_penalty": opts.length_penalty},
            **results}


def model_facts(model: EncoderDecoder, checkpoint: str | Path) -> dict:
    return {"parameters": count_parameters(model), "checkpoint_bytes": os.path.getsize(checkpoint),
            "group_parameters": group_report(model)}

