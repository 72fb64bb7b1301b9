"""Magnitude pruning driven by a schedule (experiment two of the thesis, §3.4.2 and §4.3).

Two schedules decide *when* and *how much*: automated gradual pruning (``AGPConfig``, Zhu & Gupta
2017) raises the sparsity from s_i to s_f along a cubic every Δt steps; iterative magnitude pruning
(``IMPConfig``) prunes a fraction of the remaining weights (or those below a threshold), retrains
for a round, and repeats. One ``MagnitudePruner`` does the pruning for both. It wraps no module and
never owns the loop: it is a ``training.Hook`` the caller passes to ``fit``. It masks gradients in
``after_backward``, re-zeroes pruned weights after every optimizer step (so Adam's momentum cannot
revive one) and updates masks at the schedule's steps in ``on_step_end``; its masks travel in the
resumable checkpoint.

Pruned tensors: every parameter named ``weight`` with at least two dimensions that is a direct
parameter of a selected module — the Linear and Embedding weight matrices. Biases and LayerNorm
gains (1-D) are never pruned, so a ``full`` cell prunes every weight matrix and nothing else. A
tensor shared by several selected modules (a shared embedding table) is pruned once, under the
first name. Masks are per tensor: at a pruning step with target s a tensor of n entries has
exactly round(s·n) zeros, the smallest magnitudes of the current weights, ties broken by lower flat
index, and a weight once pruned stays pruned (new zeros are chosen among the unpruned weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import torch
from torch import nn

from tcompress.compress.walker import group_modules
from tcompress.training import Hook, TrainState


# ---------------------------------------------------------------------------------------- schedules

def _validate_agp(initial: float, final: float, frequency: int, start: int, end: int) -> None:
    if not 0.0 <= initial <= 1.0:
        raise ValueError(f"initial sparsity {initial} must be within 0..1")
    if not initial <= final <= 1.0:
        raise ValueError(f"final sparsity {final} must be within initial sparsity ({initial})..1")
    if int(frequency) != frequency or frequency < 1:
        raise ValueError(f"frequency {frequency} must be an integer ≥ 1")
    if int(start) != start or start < 0:
        raise ValueError(f"start {start} must be an integer step ≥ 0")
    if int(end) != end or end <= start:
        raise ValueError(f"end {end} must be an integer step after start ({start})")
    if end - start < frequency:
        raise ValueError(f"end - start ({end - start}) must be at least frequency ({frequency})")


def agp_sparsity(step: int, initial: float, final: float, frequency: int, start: int, end: int) -> float | None:
    """Zhu & Gupta's s_t = s_f + (s_i − s_f)·(1 − (t − t0)/(n·Δt))³ at t = t0, t0+Δt, …, t0+n·Δt with
    t0 = ``start``, Δt = ``frequency``, n = (end − start) // frequency; None at any other step
    (no mask update). The last pruning step is t0 + n·Δt ≤ ``end``, where s_t = s_f."""
    _validate_agp(initial, final, frequency, start, end)
    n = (end - start) // frequency
    offset = step - start
    if offset < 0 or offset % frequency or offset > n * frequency:
        return None
    return final + (initial - final) * (1.0 - offset / (n * frequency)) ** 3


@dataclass(frozen=True)
class AGPConfig:
    """Automated gradual pruning; steps are optimizer steps (``TrainState.step``)."""
    initial_sparsity: float
    final_sparsity: float
    frequency: int
    start_step: int = 0
    end_step: int = field(kw_only=True)

    def __post_init__(self) -> None:
        _validate_agp(self.initial_sparsity, self.final_sparsity, self.frequency, self.start_step, self.end_step)

    def schedule(self, step: int) -> float | None:
        return agp_sparsity(step, self.initial_sparsity, self.final_sparsity, self.frequency,
                            self.start_step, self.end_step)


@dataclass(frozen=True)
class IMPConfig:
    """Iterative magnitude pruning: prune, retrain ``steps_per_round`` steps, repeat ``rounds`` times.

    Round r (1-based) prunes at step (r − 1)·steps_per_round — round 1 at train start — to a total
    sparsity of 1 − (1 − fraction)^r, i.e. ``fraction`` of the weights still unpruned. With
    ``threshold`` set, a round instead prunes every weight with |w| < threshold (the schedule's
    value is then only nominal)."""
    fraction: float
    rounds: int
    steps_per_round: int
    threshold: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction {self.fraction} must be within (0, 1]")
        if int(self.rounds) != self.rounds or self.rounds < 1:
            raise ValueError(f"rounds {self.rounds} must be an integer ≥ 1")
        if int(self.steps_per_round) != self.steps_per_round or self.steps_per_round < 1:
            raise ValueError(f"steps_per_round {self.steps_per_round} must be an integer ≥ 1")
        if self.threshold is not None and not self.threshold >= 0.0:
            raise ValueError(f"threshold {self.threshold} must be ≥ 0")

    def schedule(self, step: int) -> float | None:
        if step < 0 or step % self.steps_per_round or step // self.steps_per_round >= self.rounds:
            return None
        return 1.0 - (1.0 - self.fraction) ** (step // self.steps_per_round + 1)


PruningConfig = Union[AGPConfig, IMPConfig]


# ------------------------------------------------------------------------------------------- masks

def _prunable(module: nn.Module) -> nn.Parameter | None:
    p = dict(module.named_parameters(recurse=False)).get("weight")
    return p if p is not None and p.dim() >= 2 else None


def magnitude_mask(weight: torch.Tensor, mask: torch.Tensor, sparsity: float) -> torch.Tensor:
    """``mask`` with new zeros at the smallest |weight| among its unpruned entries so that it has
    exactly round(sparsity·numel) zeros (ties: lower flat index first); never fewer than it had."""
    n = weight.numel()
    target = round(sparsity * n)
    if target <= int((~mask).sum()):
        return mask.clone()
    # Pruned entries score −1 (below every magnitude) so they go first. A k-th value and one pass
    # replace a full sort (O(n), which matters at every AGP step): everything below the k-th score
    # goes, then as many entries equal to it as still needed, lowest flat index first.
    score = weight.detach().abs().float().flatten().masked_fill(~mask.flatten(), -1.0)
    kth = score.kthvalue(target).values
    below = score < kth
    tied = score == kth
    prune = below | (tied & (tied.cumsum(0) <= target - int(below.sum())))
    return ~prune.view_as(mask) & mask


class MagnitudePruner(Hook):
    """Per-tensor magnitude pruning on a schedule, as a hook of ``training.fit`` (see module docstring)."""

    def __init__(self, modules: dict[str, nn.Module], config: PruningConfig):
        if not isinstance(config, (AGPConfig, IMPConfig)):
            raise TypeError(f"no pruning schedule for {type(config).__name__}")
        self.config = config
        self.modules: dict[str, nn.Module] = {}
        seen: set[int] = set()
        for name, module in modules.items():
            p = _prunable(module)
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                self.modules[name] = module
        if not self.modules:
            raise ValueError("the selected modules have no weight matrix to prune")
        self.masks: dict[str, torch.Tensor] = {}

    def weight(self, name: str) -> nn.Parameter:
        return _prunable(self.modules[name])

    # -- mask updates
    @torch.no_grad()
    def apply_masks(self) -> None:
        for name, mask in self.masks.items():
            self.weight(name).masked_fill_(~mask, 0.0)

    @torch.no_grad()
    def prune_to(self, sparsity: float) -> None:
        """Update every mask for one pruning step (target ``sparsity``, or IMP's threshold) and apply it."""
        threshold = getattr(self.config, "threshold", None)
        for name, mask in self.masks.items():
            w = self.weight(name)
            if threshold is not None:
                self.masks[name] = mask & (w.abs() >= threshold)
            else:
                self.masks[name] = magnitude_mask(w, mask, sparsity)
        self.apply_masks()

    def _step(self, step: int) -> None:
        target = self.config.schedule(step)
        if target is not None:
            self.prune_to(target)

    # -- hook points
    def on_train_start(self, model: nn.Module, state: TrainState) -> None:
        for name in self.modules:
            w = self.weight(name)
            if name in self.masks:   # loaded from a resume checkpoint
                self.masks[name] = self.masks[name].to(w.device)
            else:
                self.masks[name] = torch.ones_like(w, dtype=torch.bool)
        self.apply_masks()
        self._step(state.step)    # IMP's first round and an AGP schedule starting at this step

    def after_backward(self, model: nn.Module, state: TrainState) -> None:
        for name, mask in self.masks.items():
            grad = self.weight(name).grad
            if grad is not None:
                grad.masked_fill_(~mask, 0.0)

    def on_step_end(self, model: nn.Module, state: TrainState) -> None:
        self.apply_masks()
        self._step(state.step)

    def state_dict(self) -> dict:
        return {"masks": {name: mask.cpu() for name, mask in self.masks.items()}}

    def load_state_dict(self, state: dict) -> None:
        masks = state.get("masks", {})
        if set(masks) != set(self.modules):
            raise ValueError(f"pruning state has masks for {sorted(masks)}, this pruner prunes {sorted(self.modules)}")
        for name, mask in masks.items():
            w = self.weight(name)
            if mask.dtype != torch.bool or mask.shape != w.shape:
                raise ValueError(f"mask of {name}: {mask.dtype} {tuple(mask.shape)}, weight is {tuple(w.shape)}")
            self.masks[name] = mask.to(w.device)

    # -- reporting
    def sparsity_report(self) -> dict[str, Any]:
        return sparsity_report({name: self.weight(name) for name in self.modules})


def sparsity_report(weights: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Zeros of every pruned weight tensor (counted on the weights) and their total."""
    tensors = {}
    for name, w in weights.items():
        zeros = int((w == 0).sum())
        tensors[name] = {"zeros": zeros, "numel": w.numel(), "sparsity": zeros / w.numel()}
    zeros = sum(t["zeros"] for t in tensors.values())
    numel = sum(t["numel"] for t in tensors.values())
    return {"tensors": tensors, "total": {"zeros": zeros, "numel": numel, "sparsity": zeros / numel}}


class ZeroKeeper(Hook):
    """Holds given entries of given parameters at exactly zero through training (a chain's parent's
    pruned weights; k-means' zero centroid): their gradients are zeroed after every backward pass
    and the entries after every step. Its masks come from the starting model, so a resumed run
    rebuilds them as they were."""

    def __init__(self, masks: list[tuple[nn.Parameter, torch.Tensor]]):
        self.masks = masks   # (parameter, True where the entry stays zero)

    @classmethod
    def of_zeros(cls, model: nn.Module) -> "ZeroKeeper":
        """Every exact zero of every weight matrix of ``model``."""
        return cls([(p, (p == 0).detach()) for p in model.parameters() if p.dim() >= 2 and bool((p == 0).any())])

    def after_backward(self, model: nn.Module, state: TrainState) -> None:
        for p, zero in self.masks:
            if p.grad is not None:
                p.grad.masked_fill_(zero.to(p.grad.device), 0.0)

    @torch.no_grad()
    def on_step_end(self, model: nn.Module, state: TrainState) -> None:
        for p, zero in self.masks:
            p.masked_fill_(zero.to(p.device), 0.0)


# ------------------------------------------------------------------- what the pruning methods call

def magnitude_pruning(model: nn.Module, config: PruningConfig, group: str) -> dict:
    """Prune the weight matrices of ``group`` on ``config``'s schedule while the caller trains:
    returns the ``hooks`` it passes to ``training.fit`` and the ``pruner`` (its sparsity report)."""
    pruner = MagnitudePruner(group_modules(model, group), config)
    return {"hooks": [pruner], "pruner": pruner}


def nonzero_parameters(model: nn.Module) -> int:
    """NNZ of the thesis's pruning ratio r = n_m / NNZ: nonzero entries of all parameters, a shared tensor once."""
    return sum(int(torch.count_nonzero(p)) for p in model.parameters())


def finetune_pruned(model: nn.Module, config: PruningConfig, group: str, ctx: Any) -> dict:
    """Prune ``group`` on ``config``'s schedule while ``ctx.finetune`` (the one training loop) runs
    the method's budget; returns the cell's facts (pruning ratio r = n_m / NNZ, sparsity per tensor)."""
    from tcompress.compress.ratio import pruning_ratio
    from tcompress.layer_groups import group_parameter_count
    from tcompress.model import count_parameters

    n_model, n_compressed = count_parameters(model), group_parameter_count(model, group)
    wiring = magnitude_pruning(model, config, group)
    facts = ctx.finetune(model, wiring["hooks"])
    nonzero = nonzero_parameters(model)
    return {**facts, "n_model": n_model, "n_compressed": n_compressed, "nonzero": nonzero,
            "sparsity": wiring["pruner"].sparsity_report(),
            "compression_ratio": round(pruning_ratio(n_model, nonzero), 4)}
