"""Mixed precision against a BLEU budget: each Linear (and embedding table) at its own width, the
fewest file bytes whose greedy validation BLEU stays within ``budget`` of the float baseline's.

From the ``sensitivity`` stage's Δ loss per module and width (``tcompress.sensitivity``:
every Linear, and the embedding tables with ``sensitivity.embeddings``), a greedy path lowers one module one width at a
time, cheapest sensitivity per byte saved first (``search``). The ``candidates`` steps of it at
evenly spaced code bytes are built for real (each Linear rounded by GPTQ at its width from the
``calibrate`` stage's statistics, each table to nearest per row, as the sensitivities were measured),
saved as artifacts for their file bytes and decoded greedily on the validation split (its first
``valid_sentences``); the cell keeps the candidate with the fewest file bytes whose BLEU is at most
``budget`` below the float model's on the same sentences, or, if none is, the path's start (every
Linear at the widest width). The kept model is then scored on the test split like any cell.

Stored form: ordinary per-row ``QuantizedModule`` codes, a width per Linear and table (bias and
LayerNorms float), so packing, the loader, ``--int8`` decoding (its 8-bit Linears; tables stay
codes) and export take it as they take GPTQ's and PTQ's. The cell's facts (cell.json) keep every
candidate's file bytes, validation BLEU and widths (``search_candidates``) and each module's width
(``bits_per_linear``, ``bits_per_embedding``); the report draws the candidates.

Cells of different budgets walk the same path and decode the same candidates; each cell computes
them again rather than sharing them (a cell reads its plan's inputs only).
"""

from __future__ import annotations

from dataclasses import dataclass

from tcompress.methods.base import Axis, Method, register
from tcompress.schema import setting


def _check_budget(value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{value!r} is not allowed; expected a BLEU drop >= 0 (a number such as 0.5)")


_check_budget.allowed = "a BLEU drop >= 0 (0.5, 1.0, …)"

BUDGET = Axis("budget", "budgets", float, "the largest drop of greedy validation BLEU below the float model's",
              _check_budget)


@dataclass(frozen=True)
class MixedParams:
    budgets: tuple[float, ...] = setting((0.5, 1.0), doc="grid key: largest validation BLEU drop allowed")
    candidates: int = setting(10, lo=2, doc="steps of the greedy path built and decoded (its two ends included)")
    valid_sentences: int = setting(0, lo=0, doc="validation sentences each candidate decodes; 0 = all")


def compress(model, cell, params: MixedParams, ctx) -> dict:
    import copy
    import tempfile
    from pathlib import Path

    from tcompress.compress.artifact import save_compressed
    from tcompress.compress.linear_quant import QuantSpec
    from tcompress.compress.quantized import QuantizedModule
    from tcompress.compress.walker import group_linears, replace_module
    from tcompress.data.corpora import read_split
    from tcompress.decode import DecodeOptions, translate
    from tcompress.evaluation import score
    from tcompress.methods.mixed.search import bits_summary, candidate_steps, choose, code_bytes, greedy_path
    from tcompress.sensitivity import embedding_codes, embedding_tables, gptq_codes, parsed
    from tcompress.model import count_parameters
    from tcompress.tokenizer import Tokenizer

    stats, sens = ctx.calibration(), parsed(ctx.sensitivity())
    widths, mode = sens["bits"], sens["mode"]
    linears = group_linears(model, "full")
    tables = {name: t for name, t in embedding_tables(model).items() if name in sens["embeddings"]}
    if set(linears) != set(sens["linears"]) or set(tables) != set(sens["embeddings"]):
        raise ValueError(f"cell {cell.id}: the sensitivity file's Linears and tables are not this model's")
    units = {**sens["linears"], **sens["embeddings"]}
    numels = {name: units[name]["numel"] for name in units}
    spec = {bits: QuantSpec(bits, mode, per_channel=True) for bits in widths}
    codes = {(name, bits): gptq_codes(linear, stats[name], spec[bits]) for name, linear in linears.items()
             for bits in widths}
    codes |= {(name, bits): embedding_codes(table, spec[bits]) for name, table in tables.items() for bits in widths}
    float_model = copy.deepcopy(model)

    def quantize(target, assignment):
        for name, bits in assignment.items():
            module = target.get_submodule(name)
            replace_module(target, module, QuantizedModule.from_codes(module, spec[bits], *codes[name, bits]))
        return target

    sources, references = read_split(ctx.valid_split)
    n = params.valid_sentences or len(sources)
    sources, references = sources[:n], references[:n]
    tok, e = Tokenizer.load(ctx.tokenized), ctx.entry["evaluate"]
    opts = DecodeOptions(1, e["length_penalty"], e["batch_sentences"], e["max_len_a"], e["max_len_b"])

    def valid_bleu(m) -> float:
        return score(translate(m, tok, sources, opts, ctx.device)[0], references)["bleu"]

    path = greedy_path({name: units[name]["delta"] for name in units}, numels, widths)
    path_bytes = [code_bytes(a, numels) for a in path]
    candidates = []
    with tempfile.TemporaryDirectory() as tmp:
        for step in candidate_steps(path_bytes, params.candidates):
            m = quantize(copy.deepcopy(float_model), path[step])
            candidates.append({"step": step, "code_bytes": path_bytes[step], "valid_bleu": valid_bleu(m),
                               "file_bytes": save_compressed(m.cpu(), Path(tmp) / "candidate.safetensors"),
                               **bits_summary(path[step], numels)})
    reference = valid_bleu(float_model)
    chosen = choose(candidates, reference, cell["budget"])
    assignment = path[candidates[chosen]["step"]]
    n_model, coded = count_parameters(model), sum(numels.values())
    quantize(model, assignment)
    coded_bits = sum(numels[name] * bits for name, bits in assignment.items())
    return {"n_model": n_model, "n_compressed": coded, "linears": len(linears), "embedding_tables": len(tables),
            "widths": list(widths),
            "valid_sentences": len(sources), "valid_bleu_float": reference,
            "valid_bleu": candidates[chosen]["valid_bleu"], "chosen_candidate": chosen,
            "mean_bits": candidates[chosen]["mean_bits"], "path_steps": len(path) - 1,
            "search_candidates": candidates,
            "bits_per_linear": {n: b for n, b in assignment.items() if n in linears},
            "bits_per_embedding": {n: b for n, b in assignment.items() if n in tables},
            "compression_ratio": round(n_model * 32 / (32 * (n_model - coded) + coded_bits), 4)}


METHOD = register(Method(
    name="mixed", title="Mixed precision: a width per Linear and table, the fewest bytes within a BLEU budget",
    params=MixedParams, axes=(BUDGET,), catalog={"budgets": (0.5, 1.0)}, compress=compress,
    row_axes=("budget",), row_label=lambda v: f"Mixed, ≤ {v['budget']} BLEU drop", series=lambda v: "mixed",
    order=95, calibrated=True, sensitivity=True, keeps_zeros=False,
))
