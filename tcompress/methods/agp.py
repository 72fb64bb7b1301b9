"""Automated gradual pruning (Zhu & Gupta 2017; the thesis's experiment two, §3.4.2; Tables 4.3–4.4).

Per-tensor magnitude masks whose sparsity follows the cubic schedule between ``start`` and ``end``
while the baseline fine-tunes through the one training loop; pruned weights stay exactly zero.
A schedule ``initial%-final%-frequency`` is one grid axis, the layer group the other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tcompress.methods.base import GROUP, PRUNING_GROUPS, Axis, Budget, FinetuneParams, Method, register
from tcompress.schema import ConfigError, setting

THESIS_SCHEDULES = ("10-70-1", "45-70-3", "90-100-1")  # initial % - final % - frequency (seed 000 §4.3)


def parse_schedule(spec: str) -> tuple[float, float, int]:
    """``"10-70-1"`` -> (0.10, 0.70, 1): initial and final sparsity, pruning frequency."""
    try:
        initial, final, frequency = (int(x) for x in spec.split("-"))
    except ValueError:
        raise ValueError(f"{spec!r} is not 'initial%-final%-frequency', e.g. 10-70-1") from None
    if not 0 <= initial <= final <= 100 or frequency < 1:
        raise ValueError(f"{spec!r}: need 0 <= initial <= final <= 100 and frequency >= 1")
    return initial / 100, final / 100, frequency


SCHEDULE = Axis("schedule", "schedules", str, "initial%-final%-frequency", parse_schedule)
PRUNING_GROUP = dataclasses.replace(GROUP, shared=False)


@dataclass(frozen=True)
class AGPParams(FinetuneParams):
    schedules: tuple[str, ...] = setting(("10-70-1",), doc="grid key: 'initial%-final%-frequency'")
    groups: tuple[str, ...] = setting(("full",), doc="grid key")
    unit: str = setting("steps", choices=("steps", "epochs"), doc="unit of start, end and the frequency")
    start: int = setting(0, lo=0)
    end: int = setting(20, lo=1)


def _steps(params: AGPParams, steps_per_epoch: int) -> int:
    return 1 if params.unit == "steps" else steps_per_epoch


def check(params: AGPParams, budget: Budget) -> None:
    if params.end <= params.start:
        raise ConfigError(f"agp.end: {params.end} must come after agp.start ({params.start})")
    per_epoch = budget.steps_per_epoch(params)
    unit = _steps(params, per_epoch)
    total = per_epoch * params.epochs
    if params.end * unit > total:
        raise ConfigError(f"agp.end: the schedule prunes until step {params.end * unit} but the fine-tuning "
                          f"budget is {total} steps ({params.epochs} epochs of {per_epoch}; agp.epochs, "
                          f"agp.train_sentences)")


def compress(model, cell, params: AGPParams, ctx) -> dict:
    from tcompress.compress.pruning import AGPConfig, finetune_pruned

    initial, final, frequency = parse_schedule(cell["schedule"])
    unit = _steps(params, ctx.steps_per_epoch())
    config = AGPConfig(initial_sparsity=initial, final_sparsity=final, frequency=frequency * unit,
                       start_step=params.start * unit, end_step=params.end * unit)
    return finetune_pruned(model, config, cell["group"], ctx)


def _row_label(values) -> str:
    initial, final, frequency = values["schedule"].split("-")
    return f"{initial}% / {final}% / {frequency}"


METHOD = register(Method(
    name="agp", title="Automated gradual pruning (initial / final sparsity / frequency)", params=AGPParams,
    axes=(SCHEDULE, PRUNING_GROUP), catalog={"schedules": THESIS_SCHEDULES, "groups": PRUNING_GROUPS},
    compress=compress, check=check, row_axes=("schedule",), row_label=_row_label, order=30,
    float_output=True,
))
