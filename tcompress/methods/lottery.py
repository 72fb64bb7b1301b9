"""Lottery tickets (Frankle & Carbin 2019; with late rewinding, Frankle et al. 2020; seed 003 §4).

Train, prune p % of each weight matrix by magnitude, **rewind** the survivors to their values at
initialization, retrain with the mask fixed. The trained network is the baseline (or, in a chain,
the parent ticket: ``lottery:50-rewind > lottery:75-rewind`` is two rounds of iterative pruning,
each a DVC stage of its own). The ``init`` axis says where the survivors restart:

- ``rewind``: the baseline's own initial weights θ₀, exactly: the train stage seeds the generator
  with ``seed`` and builds the model, so ``initial_model`` repeats both (``rewind_step`` k > 0: late
  rewinding, θ₀ trained k steps further with this cell's recipe before the mask is applied; the
  retraining then restarts the learning-rate schedule, where Frankle et al. continue it from k);
- ``random``: a fresh initialization (seed + 1) under the same mask, the hypothesis's control.

Every weight, bias and LayerNorm gain restarts from that point; the pruned entries stay exactly
zero while the budget retrains. The method's control, ``lottery-control``, trains θ₀ **dense** with
the same budget and recipe, so a ticket's ΔBLEU says what pruning cost a network trained this way.
With ``epochs`` and ``lr`` equal to the baseline's, the control repeats the baseline run itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcompress.methods.agp import PRUNING_GROUP
from tcompress.methods.base import Axis, Budget, FinetuneParams, Method, budget, int_range, one_of, register
from tcompress.schema import ConfigError, setting

INITS = ("rewind", "random")


SPARSITY = Axis("sparsity", "sparsities", int, "percent of each selected weight matrix pruned", int_range(1, 99, "a percentage"))
INIT = Axis("init", "inits", str, "rewind: the survivors restart from θ₀ | random: a fresh initialization", one_of(INITS))


@dataclass(frozen=True)
class LotteryParams(FinetuneParams):
    sparsities: tuple[int, ...] = setting((50, 80), doc="grid key: " + SPARSITY.doc)
    inits: tuple[str, ...] = setting(INITS, doc="grid key: " + INIT.doc)
    groups: tuple[str, ...] = setting(("full",), doc="grid key: the layer groups pruned")
    rewind_step: int = setting(0, lo=0, doc="late rewinding: restart from θ₀ trained this many steps with the "
                               "cell's recipe (0: θ₀ itself)")
    # A ticket retrains from θ₀ (or a fresh start), so on all the data and at the baseline's peak rate.
    train_sentences: int = budget("train_sentences", 0)
    lr: float = budget("lr", 1e-3)


def check(params: LotteryParams, budget: Budget) -> None:
    if params.from_scratch:
        raise ConfigError("lottery.from_scratch: true would prune a fresh model's random weights; a ticket's mask "
                          "comes from the trained baseline and its restart point is set by lottery.inits")


def initial_model(cfg, vocab, seed: int):
    """The model the train stage starts from: it seeds with ``seed`` and builds the model at once."""
    from tcompress.model import make_model
    from tcompress.training import seed_everything

    seed_everything(seed)
    return make_model(cfg, vocab)


def _start(model, init: str, params: LotteryParams, ctx):
    """The restart point's state dict: θ₀ (late: θ_k) or a fresh random initialization."""
    import tempfile
    from pathlib import Path

    from tcompress.config import TrainConfig
    from tcompress.schema import build
    from tcompress.training import fit, seed_everything

    start = initial_model(model.cfg, model.vocab, ctx.seed if init == "rewind" else ctx.seed + 1).to(ctx.device)
    if init == "rewind" and params.rewind_step > 0:
        cfg = build(TrainConfig, ctx.entry["train"], "train")
        train, valid = ctx.training_data()
        with tempfile.TemporaryDirectory() as tmp:
            fit(start, train, valid, cfg, seed=ctx.seed, best_path=Path(tmp) / "best.pt",
                resume_path=Path(tmp) / "replay.pt", identity={"replay": params.rewind_step},
                device=ctx.device, progress=False, stop_after_steps=params.rewind_step)
    seed_everything(ctx.seed)   # rewound and random tickets then draw the same dropout masks
    return start.state_dict()


def control_start(model, params: LotteryParams, ctx):
    """The control trains dense from the same restart point as a ``rewind`` ticket."""
    model.load_state_dict(_start(model, "rewind", params, ctx))
    return model


def compress(model, cell, params: LotteryParams, ctx) -> dict:
    import torch

    from tcompress.compress.codebook import weight_matrices
    from tcompress.compress.pruning import ZeroKeeper, magnitude_mask, nonzero_parameters, sparsity_report
    from tcompress.compress.ratio import pruning_ratio
    from tcompress.layer_groups import group_parameter_count
    from tcompress.model import count_parameters

    n_model, n_compressed = count_parameters(model), group_parameter_count(model, cell["group"])
    weights = {name: m.weight for name, m in weight_matrices(model, cell["group"]).items()}
    if not weights:
        raise ValueError(f"layer group {cell['group']!r} has no weight matrix to prune")
    # Masks from the trained weights; a chain's parent's zeros stay pruned (and count toward p).
    keep = {name: magnitude_mask(w, w != 0, cell["sparsity"] / 100) for name, w in weights.items()}
    model.load_state_dict(_start(model, cell["init"], params, ctx))
    with torch.no_grad():
        for name, w in weights.items():
            w.mul_(keep[name].to(w.dtype))
    facts = ctx.finetune(model, [ZeroKeeper([(w, ~keep[name]) for name, w in weights.items()])])
    nonzero = nonzero_parameters(model)
    return {**facts, "n_model": n_model, "n_compressed": n_compressed, "nonzero": nonzero,
            "sparsity": sparsity_report(weights),
            "rewind_step": params.rewind_step if cell["init"] == "rewind" else None,
            "compression_ratio": round(pruning_ratio(n_model, nonzero), 4)}


def _row_label(values) -> str:
    how = "rewound to θ₀" if values["init"] == "rewind" else "random re-init"
    return f"{values['sparsity']}% pruned, {how}"


METHOD = register(Method(
    name="lottery", title="Lottery tickets: magnitude masks, survivors rewound and retrained", params=LotteryParams,
    axes=(SPARSITY, INIT, PRUNING_GROUP), catalog={"sparsities": (50, 80, 90), "inits": INITS, "groups": ("full",)},
    compress=compress, check=check, control_start=control_start, control_reads=("rewind_step",),
    row_axes=("sparsity", "init"), row_label=_row_label,
    series=lambda v: f"lottery/{v['init']}", order=82, float_output=True,
))
