"""Layer groups of the thesis (§4.1–4.4) as name filters over ``model.named_modules()``.

A group is a predicate on a module's qualified name and type, nothing more, so a compression
method selects its targets with ``select_modules(model, "ff+emb+gen")`` and never needs to know
the model's class structure. The base groups partition every Linear and Embedding of the model
(tested); ``full`` adds the LayerNorms, so a ``full`` cell compresses every weight.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from torch import nn

# torch is imported when a predicate first runs, not with this module: the resolve stage checks
# params.yaml's group names (``parse_group``) without it.
Predicate = Callable[[str, "nn.Module"], bool]


def _name_matches(pattern: str, type_name: str) -> Predicate:
    """Modules of ``torch.nn.<type_name>`` (subclasses included) whose name matches ``pattern``."""
    regex = re.compile(pattern)
    found: list[type] = []   # the class, looked up on the first call

    def pred(name: str, module: nn.Module) -> bool:
        if not found:
            from torch import nn

            found.append(getattr(nn, type_name))
        return isinstance(module, found[0]) and regex.search(name) is not None
    return pred


BASE_GROUPS: dict[str, Predicate] = {
    "emb": _name_matches(r"(^|\.)(src|tgt)_embed\.lut$", "Embedding"),
    "att": _name_matches(r"(^|\.)(self|src)_attn\.(q|k|v|out)_proj$", "Linear"),
    "ff": _name_matches(r"(^|\.)feed_forward\.w_[12]$", "Linear"),
    "gen": _name_matches(r"(^|\.)generator\.proj$", "Linear"),
}


def _has_own_parameters(name: str, module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


FULL = "full"
ALLOWED = tuple(BASE_GROUPS) + (FULL,)


def parse_group(spec: str) -> tuple[str, ...]:
    """``"ff+emb+gen"`` -> ``("ff", "emb", "gen")``; raises ValueError naming the unknown part."""
    parts = tuple(p.strip() for p in spec.split("+"))
    for part in parts:
        if part not in ALLOWED:
            raise ValueError(f"unknown layer group {part!r} in {spec!r}; allowed: {', '.join(ALLOWED)} "
                             "and their unions joined by '+', e.g. ff+emb+gen")
    if len(set(parts)) != len(parts):
        raise ValueError(f"layer group {spec!r} names a group twice")
    return parts


def group_predicate(spec: str) -> Predicate:
    parts = parse_group(spec)
    if FULL in parts:
        return _has_own_parameters
    preds = [BASE_GROUPS[p] for p in parts]
    return lambda name, module: any(pred(name, module) for pred in preds)


def select_modules(model: nn.Module, spec: str) -> dict[str, nn.Module]:
    """The modules of ``model`` in group ``spec``, by qualified name (a shared module appears once)."""
    pred = group_predicate(spec)
    return {name: m for name, m in model.named_modules() if name and pred(name, m)}


def group_parameter_count(model: nn.Module, spec: str) -> int:
    """Parameters (weights and biases) of the group's modules, each shared tensor counted once."""
    seen: set[int] = set()
    total = 0
    for module in select_modules(model, spec).values():
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total


def group_report(model: nn.Module) -> dict[str, int]:
    """Parameter count of every base group and of ``full`` (the n_c of the thesis's ratio formula)."""
    return {spec: group_parameter_count(model, spec) for spec in ALLOWED}
