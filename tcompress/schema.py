"""Strict dataclass loading: the machinery behind ``params.yaml``'s one-line errors.

A section of params.yaml is a frozen dataclass whose fields carry their range, choices and doc in
``metadata`` (``setting(...)``), so the check and the message cannot drift (nanotron's rule). An
unknown key, a wrong type or an out-of-range value raises ``ConfigError`` naming the dotted key and
what is allowed.

Any scalar may instead be given per corpus (``epochs: {synthetic: 10, multi30k: 18}``): the value
for the selected corpus is used, so ``dvc exp run -S data=multi30k`` switches the corpus-dependent
budget along with the corpus. The resolve stage writes only the resolved values, so a value of a
corpus that is not in use never reaches a stage's dependencies.

Torch-free: the plan and resolve stages import this.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field
from typing import Any

CORPORA = ("synthetic", "multi30k", "files")


class UserError(Exception):
    """A failure the user can act on: stages and commands print ``str(err)`` as one line."""


class ConfigError(UserError, ValueError):
    """A bad value in params.yaml; ``str(err)`` is the one line shown to the user."""


def setting(default: Any, *, lo: float | None = None, hi: float | None = None, choices: tuple | None = None,
            lo_open: bool = False, doc: str = "") -> Any:
    """A dataclass field with its allowed range or choices (checked by ``build``)."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "lo_open": lo_open, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def describe(tp: Any, meta: dict) -> str:
    """``one of sym, asym`` or ``int >= 2 <= 16``: what a field accepts, for error messages."""
    if meta.get("choices"):
        return "one of " + ", ".join(map(str, meta["choices"]))
    parts = [getattr(tp, "__name__", str(tp))]
    if meta.get("lo") is not None:
        parts.append((">" if meta.get("lo_open") else ">=") + f" {meta['lo']}")
    if meta.get("hi") is not None:
        parts.append(f"<= {meta['hi']}")
    return " ".join(parts)


def check_scalar(key: str, value: Any, tp: Any, meta: dict) -> Any:
    ok = ((tp is bool and isinstance(value, bool))
          or (tp is int and isinstance(value, int) and not isinstance(value, bool))
          or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
          or (tp is str and isinstance(value, str)))
    if not ok:
        raise ConfigError(f"{key}: expected {describe(tp, meta)}, got {value!r}")
    value = float(value) if tp is float else value
    choices, lo, hi = meta.get("choices"), meta.get("lo"), meta.get("hi")
    if choices and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not allowed; expected {describe(tp, meta)}")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        raise ConfigError(f"{key}: {value!r} is out of range; expected {describe(tp, meta)}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}: {value!r} is out of range; expected {describe(tp, meta)}")
    return value


def coerce(key: str, value: Any, tp: Any, meta: dict, corpus: str) -> Any:
    """``value`` checked against type ``tp`` (a dataclass, tuple, Optional or scalar type)."""
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key, corpus)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(CORPORA))
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}: unknown corpus; a per-corpus value is keyed by "
                              f"{', '.join(CORPORA)}")
        checked = {c: coerce(f"{key}.{c}", v, tp, meta, corpus) for c, v in value.items()}
        if corpus not in checked:
            raise ConfigError(f"{key}.{corpus}: missing; {key} is given per corpus and data is {corpus!r}")
        return checked[corpus]
    origin = typing.get_origin(tp)
    if origin is tuple:
        # A grid key: one value or a list of them (`-S bits=4` or `-S 'bits=[8,4]'`).
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ConfigError(f"{key}: needs at least one value")
        items = tuple(coerce(key, v, typing.get_args(tp)[0], meta, corpus) for v in values)
        if len(set(items)) != len(items):
            raise ConfigError(f"{key}: {value!r} lists a value twice")
        return items
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return coerce(key, value, args[0], meta, corpus)
    return check_scalar(key, value, tp, meta)


def build(cls: type, raw: Any, prefix: str = "", corpus: str = "synthetic") -> Any:
    """An instance of dataclass ``cls`` from a mapping, every key checked; defaults fill the rest."""
    where = prefix or "params"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise ConfigError(f"{key}: unknown key; allowed keys here: {', '.join(fields)}")
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = coerce(key, value, hints[name], dict(fields[name].metadata), corpus)
    return cls(**kwargs)


def field_meta(cls: type, name: str) -> dict:
    return dict({f.name: f for f in dataclasses.fields(cls)}[name].metadata)


def plain(obj: Any) -> Any:
    """A dataclass (or nested values) as JSON-ready plain values: tuples become lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj
