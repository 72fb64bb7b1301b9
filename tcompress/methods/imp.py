"""Iterative magnitude pruning: prune a fraction of the remaining weights, retrain, repeat.

The same per-tensor magnitude pruner as AGP on a round schedule, through the one training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcompress.methods.agp import PRUNING_GROUP
from tcompress.methods.base import PRUNING_GROUPS, Budget, FinetuneParams, Method, register
from tcompress.schema import ConfigError, setting


@dataclass(frozen=True)
class IMPParams(FinetuneParams):
    groups: tuple[str, ...] = setting(("full",), doc="grid key")
    fraction: float = setting(0.2, lo=0.0, hi=1.0, lo_open=True, doc="of the remaining weights, per round")
    threshold: Optional[float] = setting(None, lo=0.0, doc="prune |w| below this instead of a fraction")
    rounds: int = setting(3, lo=1)
    steps_per_round: int = setting(10, lo=1)


def check(params: IMPParams, budget: Budget) -> None:
    last = (params.rounds - 1) * params.steps_per_round
    total = budget.steps_per_epoch(params) * params.epochs
    if last > total:
        raise ConfigError(f"imp.rounds: the last round prunes at step {last} but the fine-tuning budget is "
                          f"{total} steps (imp.epochs, imp.train_sentences)")


def compress(model, cell, params: IMPParams, ctx) -> dict:
    from tcompress.compress.pruning import IMPConfig, finetune_pruned

    config = IMPConfig(fraction=params.fraction, rounds=params.rounds, steps_per_round=params.steps_per_round,
                       threshold=params.threshold)
    return finetune_pruned(model, config, cell["group"], ctx)


METHOD = register(Method(
    name="imp", title="Iterative magnitude pruning", params=IMPParams, axes=(PRUNING_GROUP,),
    catalog={"groups": PRUNING_GROUPS}, compress=compress, check=check,
    row_label=lambda values: "iterative", order=40, float_output=True,
))
