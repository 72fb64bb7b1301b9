"""One registry and one walker for every compression method (torchao's pattern).

A method is a frozen config dataclass plus one function registered for it with ``@register``:
``fn(model, modules, config, **context) -> report``. ``compress_(model, config, group)`` selects the
group's modules by name and hands them to the method, which swaps wrappers in with
``replace_module``. The grid methods in ``tcompress.methods`` call ``compress_`` with these configs.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from tcompress.layer_groups import select_modules

_METHODS: dict[type, Callable[..., dict]] = {}


def register(config_cls: type) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    def decorate(fn: Callable[..., dict]) -> Callable[..., dict]:
        if config_cls in _METHODS:
            raise ValueError(f"{config_cls.__name__} already has a registered method")
        _METHODS[config_cls] = fn
        return fn
    return decorate


def compress_(model: nn.Module, config: Any, group: str, **context: Any) -> dict:
    """Apply the method registered for ``type(config)`` to the modules of ``group``, in place."""
    try:
        fn = _METHODS[type(config)]
    except KeyError:
        known = ", ".join(c.__name__ for c in _METHODS) or "none"
        raise TypeError(f"no compression method registered for {type(config).__name__}; known: {known}") from None
    modules = select_modules(model, group)
    if not modules:
        raise ValueError(f"layer group {group!r} selects no module of this model")
    return fn(model, modules, config, **context)


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
