"""The cell runner: the baseline checkpoint and one grid cell's plan -> compressed checkpoint and facts.

The runner knows no method: it loads the baseline, builds the registered method's params from the
plan, and calls its ``compress`` with a ``CellContext``, which gives calibration batches and the one
training loop (``tcompress.training.fit``) under the method's budget. Trained cells keep the model
at the end of their budget (``keep: last``, when every schedule has finished) or their best
validation epoch (``keep: best``), and resume after an interruption from a file keyed on the plan
(which holds the baseline's and the data's hashes). A control cell runs the same budget with no
compression.

It sits beside the plan (a trained cell fine-tunes on the subset the plan budgeted) and above the
methods, which it reaches through their registry; ``tcompress.compress``, below the methods, holds
only the mechanisms they share.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from tcompress.batching import make_batches, pad
from tcompress.checkpoint import load_safe
from tcompress.closure import file_digest
from tcompress.compress.artifact import nonzero_bits, save_compressed, stored_bits
from tcompress.compress.pruning import ZeroKeeper
from tcompress.config import TrainConfig
from tcompress.data.corpora import read_ids, read_split
from tcompress.loader import load_model
from tcompress.methods import Cell, get
from tcompress.model import count_parameters, make_model
from tcompress.plan import training_subset
from tcompress.precision import resolve_precision
from tcompress.schema import build
from tcompress.tokenizer import Tokenizer
from tcompress.training import ParallelData, fingerprint, fit

ARTIFACT = "model.safetensors"  # what a user ships: tcompress.compress.artifact
HYPS_FILE = "hyps.txt"


class CellContext:
    """What a method's ``compress`` may ask for besides the model: data, batches, the training loop."""

    def __init__(self, entry: dict, tokenized: str | Path, valid_split: str | Path | None,
                 resume: str | Path | None, device: torch.device, checkpoint_every: int = 200,
                 teacher: str | Path | None = None):
        self.entry, self.tokenized, self.valid_split, self.resume = entry, tokenized, valid_split, resume
        self.device, self.seed, self.checkpoint_every = device, entry["seed"], checkpoint_every
        self.teacher = teacher   # the teacher stage's output, for cells that train on its translations
        self.extra_hooks: list = []
        self._training_data: dict[bool, tuple[ParallelData, ParallelData]] = {}

    def calibration_batches(self, n_batches: int, batch_tokens: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``n_batches`` training batches of a seeded shuffle, as (src, tgt_in) pairs."""
        src, tgt = read_ids(self.tokenized, "train")
        batches = make_batches([len(s) for s in src], [len(t) for t in tgt], batch_tokens, self.seed)[:n_batches]
        return [(pad([src[i] for i in b]).to(self.device), pad([tgt[i][:-1] for i in b]).to(self.device))
                for b in batches]

    def calibration(self) -> dict:
        """The baseline's per-Linear input statistics, by Linear name (``tcompress.compress.calibration``):
        the calibrate stage's file, whose hash the plan of a ``calibrated`` method's cell holds."""
        from tcompress.compress.calibration import load

        if "calibration" not in self.entry.get("inputs", {}):
            raise ValueError(f"cell {self.entry['cell']}: its method reads calibration statistics, but its plan "
                             "holds none (the method must be registered with calibrated=True)")
        return load(self.entry["calibration_file"])

    def sensitivity(self) -> dict:
        """Each Linear's validation-loss increase per bit width, as the JSON the sensitivity stage wrote
        (``tcompress.sensitivity`` reads it): the file whose hash the plan of a
        ``sensitivity`` method's cell holds."""
        import json

        if "sensitivity" not in self.entry.get("inputs", {}):
            raise ValueError(f"cell {self.entry['cell']}: its method reads sensitivities, but its plan holds none "
                             "(the method must be registered with sensitivity=True)")
        return json.loads(Path(self.entry["sensitivity_file"]).read_text())

    def training_data(self, teacher: bool = False) -> tuple[ParallelData, ParallelData]:
        """The method's training subset, with the references as targets, or with ``teacher`` the
        baseline's translations of the same sources (sequence-level distillation)."""
        if teacher and "teacher" not in self.entry.get("inputs", {}):
            raise ValueError(f"cell {self.entry['cell']}: its method reads the teacher's translations, but its "
                             "plan holds none (the method's needs_teacher must say so for this cell)")
        if teacher not in self._training_data:   # read once: a word-KD cell asks before and in finetune
            src, tgt = read_ids(self.teacher if teacher else self.tokenized, "train")
            keep = training_subset(len(src), self.entry["params"]["train_sentences"], self.seed)
            if keep is not None:
                src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
            refs = read_split(self.valid_split)[1] if self.valid_split else None
            self._training_data[teacher] = (ParallelData(src, tgt),
                                            ParallelData(*read_ids(self.tokenized, "valid"), references=refs))
        return self._training_data[teacher]

    def steps_per_epoch(self, teacher: bool = False) -> int:
        train, _ = self.training_data(teacher)
        return len(make_batches([len(s) for s in train.src], [len(t) for t in train.tgt],
                                self.entry["train"]["batch_tokens"], 0))

    def finetune(self, model, hooks: list, teacher: bool = False) -> dict:
        """The one training loop under the method's budget; returns the facts the metrics report. A
        chain's parent's zeros stay zero (``extra_hooks``: its ``ZeroKeeper``)."""
        hooks = [*hooks, *self.extra_hooks]
        if self.resume is None or "train" not in self.entry:
            raise ValueError(f"cell {self.entry['cell']} trains: its method must subclass FinetuneParams "
                             "and the stage needs --resume")
        cfg = build(TrainConfig, self.entry["train"], "train")
        train, valid = self.training_data(teacher)
        tok = Tokenizer.load(self.tokenized)
        keep = self.entry["params"].get("keep", "last")
        with tempfile.TemporaryDirectory() as tmp:  # fit's best-epoch copy
            state = fit(model, train, valid, cfg, seed=self.seed, best_path=Path(tmp) / "best.pt",
                        resume_path=self.resume, identity={"plan": fingerprint(self.entry)}, hooks=hooks,
                        decode_tgt=tok.decode_tgt, device=self.device, checkpoint_every=self.checkpoint_every)
            if keep == "best":
                model.load_state_dict(load_safe(Path(tmp) / "best.pt", self.device)["model"])
        Path(self.resume).unlink(missing_ok=True)
        return {"finetune_steps": state.step, "finetune_sentences": len(train.src),
                "kept_epoch": state.best_epoch if keep == "best" else state.epoch,
                "finetune_seconds": round(state.train_seconds, 1), "finetune_curve": state.history,
                "precision": resolve_precision(cfg.precision, self.device, quiet=True)}


def compress_cell(entry: dict, baseline: str | Path, out_dir: str | Path, ctx: CellContext,
                  start_from: str | Path | None = None) -> dict:
    """Compress the baseline, or for a chain (``entry["parent"]``) the parent's model ``start_from``,
    with the entry's method; save the artifact; return the cell's facts."""
    start = time.perf_counter()
    method = get(entry["method"])
    cell = Cell(method.name, tuple((a.name, entry["axes"][a.name]) for a in method.axes if a.name in entry["axes"]),
                control=entry["control"])
    axes = {a.key: [entry["axes"][a.name]] for a in method.axes if a.name in entry["axes"]}
    params = build(method.params, {**entry["params"], **axes}, method.name)
    chain = "parent" in entry
    if chain != (start_from is not None):
        raise ValueError(f"cell {entry['cell']}: a chain needs its parent's model (--start), and only a chain takes one")
    model, payload = load_model(start_from or baseline, ctx.device)
    if chain and payload.get("compression") and not method.continues_any:
        raise ValueError(f"chain {entry['cell']}: its parent {entry['parent']} stores coded modules; a chain "
                         "continues from a float (pruned) model")
    if chain and method.trains:  # the parent's pruned weights stay pruned while this link trains
        ctx.extra_hooks.append(ZeroKeeper.of_zeros(model))
        # The plan names the parent, not its contents: a resume file from another parent must not match.
        entry["inputs"] = {**entry.get("inputs", {}), "parent": file_digest(start_from)}
    if getattr(params, "from_scratch", False):
        model = make_model(model.cfg, model.vocab).to(ctx.device)
    if cell.control and method.control_start is not None:
        model = method.control_start(model, params, ctx)
    if cell.control:  # the method's budget through the same loop, nothing compressed
        details = {**ctx.finetune(model, []), "n_model": count_parameters(model), "n_compressed": 0,
                   "compression_ratio": 1.0}
    else:
        details = method.compress(model, cell, params, ctx)
    model = details.pop("model", model)   # a method may return a new model (a distilled student)
    if "compression_ratio" not in details:
        raise ValueError(f"method {method.name}: compress() must return compression_ratio")
    # A trained cell reports the precision its fine-tuning ran in; calibration and decoding are fp32.
    if chain:  # both formulas at once: nonzeros at their code width (a continues_any link counts itself)
        whole = details["compression_ratio"] if method.continues_any else \
            round(details["n_model"] * 32 / nonzero_bits(model), 4)
        details |= {"link_ratio": details["compression_ratio"], "chain": entry["spec"], "parent": entry["parent"],
                    "compression_ratio": whole}
    facts = {"cell": entry["cell"], "method": method.name, "control": cell.control, **cell.as_dict(),
             "precision": "fp32", **details, "stored_bits": stored_bits(model)}
    if getattr(params, "from_scratch", False):   # the tables name it: the same id as the fine-tuned cell
        facts["from_scratch"] = True
    file_bytes = save_compressed(model.cpu(), Path(out_dir) / ARTIFACT,
                                 cell={k: v for k, v in facts.items() if k != "finetune_curve"})
    # The sizes a user compares: the artifact they would ship against the float checkpoint they have.
    fp32_bytes = Path(baseline).stat().st_size
    facts.update(file_bytes=file_bytes, fp32_file_bytes=fp32_bytes, file_ratio=round(fp32_bytes / file_bytes, 4))
    facts["compress_seconds"] = round(time.perf_counter() - start, 2)
    return facts


def evaluate_cell(entry: dict, cell_dir: Path, facts: dict, tokenized: str | Path, test_split: str | Path,
                  device: torch.device) -> dict:
    """Decode the test split with the cell's saved artifact (the file a user would ship) into
    ``cell_dir/hyps.txt``, score it as the baseline is scored; returns the cell's flat metrics (for
    `dvc metrics show/diff`). A cell with 8-bit Linears, or with 8-bit calibrated Linear inputs
    (SmoothQuant's W4A8), is decoded a second time with integer matmuls (``--int8``): its ``*_int8``
    metrics."""
    from tcompress.compress.int8_inference import int8_candidates, to_int8_inference
    from tcompress.decode import DecodeOptions, translate
    from tcompress.evaluation import score

    e = entry["evaluate"]
    model, _ = load_model(Path(cell_dir) / ARTIFACT, device)
    sources, references = read_split(test_split)
    tok = Tokenizer.load(tokenized)
    opts = DecodeOptions(e["beam_size"], e["length_penalty"], e["batch_sentences"], e["max_len_a"], e["max_len_b"])
    hyps, speed = translate(model, tok, sources, opts, device, progress=True, desc=facts["cell"])
    (Path(cell_dir) / HYPS_FILE).write_text("\n".join(hyps) + "\n")
    scored = score(hyps, references)
    int8 = {}
    # 8-bit codes, or 8-bit inputs with a calibrated range (W4A8): the integer path computes the same numbers
    if any(m.spec.bits == 8 or ("input" in m.sites and m.act_bits == 8)
           for m in map(model.get_submodule, int8_candidates(model))):
        int8 = to_int8_inference(model, device=device, activation_bits=8)  # the same numbers on every CPU
        hyps8, speed8 = translate(model, tok, sources, opts, device, progress=True, desc=f"{facts['cell']} int8")
        scored8 = score(hyps8, references)
        int8 |= {"bleu_int8": scored8["bleu"], "chrf_int8": scored8["chrf"], "sentences_per_second_int8": round(speed8, 2)}
    # Per-tensor sparsity and the fine-tuning curve stay in the cell's cell.json.
    flat = {k: v for k, v in facts.items() if not isinstance(v, (dict, list))}
    if isinstance(facts.get("sparsity"), dict):
        flat["sparsity"] = facts["sparsity"]["total"]["sparsity"]
    return {**flat, "bleu": scored["bleu"], "chrf": scored["chrf"],
            "decoding": "greedy" if e["beam_size"] == 1 else f"beam{e['beam_size']}", "sentences": len(sources),
            "sentences_per_second": round(speed, 2), "signature": scored["signature"], **int8}
