"""The module walker every method shares: select a layer group's modules, and swap a module for its
replacement wherever the model holds it.

A mechanism that wraps modules (``ptq.post_training_quantize``, ``qat.quantization_aware``,
``pruning.magnitude_pruning``, codebooks, FullyQT) takes the group's modules from
``group_modules`` and puts its wrappers in with ``replace_module``; a method calls that mechanism
by name, so a reader goes from the method's ``compress`` to the code that runs without a lookup.
"""

from __future__ import annotations

from torch import nn

from tcompress.layer_groups import select_modules


def group_modules(model: nn.Module, group: str) -> dict[str, nn.Module]:
    """The modules of layer group ``group`` by name (``tcompress.layer_groups``); a group that
    selects none is an error, since a cell would then compress nothing and report a ratio of 1."""
    modules = select_modules(model, group)
    if not modules:
        raise ValueError(f"layer group {group!r} selects no module of this model")
    return modules


def group_linears(model: nn.Module, group: str) -> dict[str, nn.Linear]:
    """The Linears of layer group ``group`` by name, for methods that quantize Linears only (a
    ``full`` cell's embeddings and LayerNorms stay float); a group without one is an error."""
    linears = {name: m for name, m in select_modules(model, group).items() if isinstance(m, nn.Linear)}
    if not linears:
        raise ValueError(f"layer group {group!r} selects no Linear of this model")
    return linears


def unwrapped(module: nn.Module, cls: type) -> nn.Module:
    """The ``cls`` module inside ``module``'s wrappers (a stored form or training wrapper keeps the
    module it wraps as ``inner``), or ``module`` itself."""
    while not isinstance(module, cls):
        module = module.inner
    return module


def replace_module(model: nn.Module, old: nn.Module, new: nn.Module) -> int:
    """Put ``new`` wherever ``old`` is a child (a shared module sits under several names); returns how many."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if child is old:
                setattr(parent, name, new)
                replaced += 1
    if not replaced:
        raise ValueError("module to replace is not part of the model")
    return replaced
