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

from tcompress.chains import Chain, parse_chains
from tcompress.methods import Cell, Method, get, registered
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
    return [Cell(method.name, (), control=True)] if method.trains and method.controlled else []


def catalog_cells(params) -> list[Cell]:
    """Every cell dvc.yaml has stages for, method by method in table order (a trained method's
    control first)."""
    cells = []
    for method in registered():
        cat = params.catalog[method.name]
        cells += _control(method) + _product(method, {a.name: cat[a.key] for a in method.axes})
    return cells


def _with_prefixes(chains: list[Chain]) -> list[Chain]:
    """The chains and every chain they continue, each once, a parent before its children."""
    out: dict[str, Chain] = {}
    for chain in chains:
        for c in [*chain.prefixes(), chain]:
            out.setdefault(c.id, c)
    return list(out.values())


def catalog_chains(params) -> list[Chain]:
    """The chains dvc.yaml has stages for: ``catalog.chains`` and the chains they continue. The first
    link of each must be a catalog cell (its stage makes the model the chain starts from)."""
    chains = _with_prefixes(parse_chains(params.chain_catalog, "catalog.chains"))
    ids = {c.id for c in catalog_cells(params)}
    for chain in chains:
        if chain.links[0].id not in ids:
            raise ConfigError(f"catalog.chains: {chain.spec!r} starts from {chain.links[0].id}, which is not a catalog "
                              f"cell; add its values to catalog.{chain.links[0].method}")
    return chains


def selected_chains(params) -> list[Chain]:
    """The chains ``chains`` selects, with the chains they continue; each must be in the catalog."""
    known = {c.id for c in catalog_chains(params)}
    chains = parse_chains(params.chains, "chains")
    for chain in chains:
        if chain.id not in known:
            raise ConfigError(f"chains: {chain.spec!r} is not in catalog.chains; dvc.yaml has one stage per catalog "
                              "chain: add it there and run `tcompress catalog`")
    return _with_prefixes(chains)


def selected_cells(params) -> list[Cell]:
    """The cells the grid keys select, and those the selected chains start from or compare with
    (their first link, the last link's control); a value outside the catalog is an error naming
    the key."""
    cells = []
    for method in registered():
        values = axis_values(params, method)   # every method's values are checked, selected or not
        if method.name not in params.methods:
            continue
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
    for chain in selected_chains(params):
        cells += [chain.links[0], *_control(get(chain.last.method))]
    return list({c.id: c for c in cells}.values())


def seed_stage_key(cell_id: str, seed: int) -> str:
    """The foreach key of a cell's (or chain's) stage for a seed besides the first: ``seed_cell@<key>``."""
    return f"{cell_id}.seed{seed}"


def _stage_lists(params) -> dict:
    cells, chains = [c.id for c in catalog_cells(params)], catalog_chains(params)
    seeds = [str(s) for s in params.seed_catalog]
    return {"cells": cells,
            "chain_stages": {c.id: {"parent": c.parent_id} for c in chains},
            # Per catalog seed besides the first: its baseline's stages, and every catalog cell and chain again.
            "seed_stages": seeds,
            "seed_cells": {seed_stage_key(c, s): {"cell": c, "seed": s} for s in seeds for c in cells},
            "seed_chains": {seed_stage_key(c.id, s): {"cell": c.id, "seed": s, "parent": c.parent_id}
                            for s in seeds for c in chains}}


def cells_file_text(params) -> str:
    return ("# Written by `tcompress catalog` from params.yaml's catalog and the registered methods; do not edit.\n"
            "# dvc.yaml makes one cell stage (compress, then evaluate) per entry of `cells`, and one chain stage\n"
            "# per entry of `chain_stages` (which also depends on its parent's output folder); per seed in `seed_stages`\n"
            "# (catalog.seeds), a baseline's stages and one stage per `seed_cells` and `seed_chains` entry.\n"
            + yaml.safe_dump(_stage_lists(params), default_flow_style=False, sort_keys=False))


def stage_names(dvc_yaml: dict, lists: dict) -> set[str]:
    """Every stage name ``dvc_yaml`` (its parsed text) defines, its ``foreach`` stages expanded over
    ``lists`` (stages/cells.yaml's: ``name@key`` per item of a list or key of a mapping)."""
    names = set()
    for name, stage in dvc_yaml.get("stages", {}).items():
        over = stage.get("foreach") if isinstance(stage, dict) else None
        if isinstance(over, str) and over.startswith("${") and over.endswith("}"):
            names |= {f"{name}@{key}" for key in lists.get(over[2:-1], ())}
        else:
            names.add(name)
    return names


def check_cells_file(params, path: str | Path = CELLS_FILE) -> None:
    """The stage list dvc.yaml expands must be this catalog, or cells would have no stage (or no plan)."""
    try:
        text = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        text = {}
    lists = _stage_lists(params)
    listed = list(text.get("cells", [])) + list(text.get("chain_stages") or {}) + \
        [f"seed {s}" for s in text.get("seed_stages") or []]
    expected = lists["cells"] + list(lists["chain_stages"]) + [f"seed {s}" for s in lists["seed_stages"]]
    if listed != expected or any((text.get(k) or {}) != lists[k] for k in ("chain_stages", "seed_cells", "seed_chains")):
        missing = sorted(set(expected) - set(listed))
        extra = sorted(set(listed) - set(expected))
        what = f"lacks {missing[0]}" if missing else (f"lists {extra[0]}, not in the catalog" if extra else "is out of order")
        raise ConfigError(f"{path} {what} ({len(expected)} catalog cells and chains): run `tcompress catalog` to "
                          "rewrite it")


def table_layout(params) -> dict[str, dict[str, Any]]:
    """What the aggregate needs to lay out each method's table: title, row axes, group column order."""
    return {m.name: {"title": m.title, "row_axes": list(m.row_axes),
                     "columns": list(params.catalog[m.name].get("groups", ()))} for m in registered()}
