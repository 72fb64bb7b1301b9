"""The compression grid: which cells exist (the catalog) and which are selected, for any method.

Each registered method names its axes; a cell is one value per axis. The values an axis takes come
from the method's section (``agp.schedules``) or, for a shared axis left null there, from the
top-level key (``bits``). The catalog is what dvc.yaml has stages for (``stages/cells.yaml``,
written by ``tcompress catalog``); a selected value outside it fails here, before any cell runs,
with the key's name and the catalog's values.

Torch-free: resolve, plan and ``tcompress plan`` import it.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import yaml

from tcompress.methods import Cell, Method, registered
from tcompress.schema import ConfigError

CELLS_FILE = Path("stages") / "cells.yaml"


def axis_values(params, method: Method) -> dict[str, tuple]:
    """The selected values of each axis (by axis name), shared axes resolved."""
    section = params.method_params(method.name)
    values = {}
    for axis in method.axes:
        own = getattr(section, axis.key, None)
        if own is None and axis.shared:
            own, where = getattr(params, axis.key), axis.key
        else:
            where = f"{method.name}.{axis.key}"
        if own is None:
            raise ConfigError(f"{method.name}.{axis.key}: needs a value (it is not a shared grid key)")
        values[axis.name] = tuple(axis.validate(where, v) for v in own)
    return values


def _product(method: Method, values: dict[str, tuple]) -> list[Cell]:
    names = [a.name for a in method.axes]
    return [Cell(method.name, tuple(zip(names, combo))) for combo in itertools.product(*(values[n] for n in names))]


def _control(method: Method) -> list[Cell]:
    return [Cell(method.name, (), control=True)] if method.trains else []


def catalog_cells(params) -> list[Cell]:
    """Every cell dvc.yaml has stages for, method by method in table order (a trained method's
    control first)."""
    cells = []
    for method in registered():
        cat = params.catalog[method.name]
        cells += _control(method) + _product(method, {a.name: cat[a.key] for a in method.axes})
    return cells


def selected_cells(params) -> list[Cell]:
    """The cells the grid keys select; a value outside the catalog is an error naming the key."""
    cells = []
    for method in registered():
        if method.name not in params.methods:
            continue
        values = axis_values(params, method)
        for axis in method.axes:
            allowed = params.catalog[method.name][axis.key]
            for value in values[axis.name]:
                if value not in allowed:
                    key = axis.key if getattr(params.method_params(method.name), axis.key, None) is None \
                        else f"{method.name}.{axis.key}"
                    raise ConfigError(
                        f"{key}: {value!r} is not in catalog.{method.name}.{axis.key} "
                        f"({', '.join(map(str, allowed))}); dvc.yaml has one stage per catalog cell: add it to "
                        f"catalog.{method.name}.{axis.key} in params.yaml and run `tcompress catalog`")
        cells += _control(method) + _product(method, values)
    return cells


def cells_file_text(params) -> str:
    ids = [c.id for c in catalog_cells(params)]
    return ("# Written by `tcompress catalog` from params.yaml's catalog and the registered methods; do not edit.\n"
            "# dvc.yaml makes one cell stage (compress, then evaluate) per entry.\n"
            + yaml.safe_dump({"cells": ids}, default_flow_style=False, sort_keys=False))


def check_cells_file(params, path: str | Path = CELLS_FILE) -> None:
    """The stage list dvc.yaml expands must be this catalog, or cells would have no stage (or no plan)."""
    try:
        listed = (yaml.safe_load(Path(path).read_text()) or {}).get("cells", [])
    except FileNotFoundError:
        listed = []
    expected = [c.id for c in catalog_cells(params)]
    if listed != expected:
        missing = sorted(set(expected) - set(listed))
        extra = sorted(set(listed) - set(expected))
        what = f"lacks {missing[0]}" if missing else (f"lists {extra[0]}, not in the catalog" if extra else "is out of order")
        raise ConfigError(f"{path} {what} ({len(expected)} catalog cells): run `tcompress catalog` to rewrite it")


def table_layout(params) -> dict[str, dict[str, Any]]:
    """What the aggregate needs to lay out each method's table: title, row axes, group column order."""
    return {m.name: {"title": m.title, "row_axes": list(m.row_axes),
                     "columns": list(params.catalog[m.name].get("groups", ()))} for m in registered()}
