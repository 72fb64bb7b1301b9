"""docs/methods.md, generated from the method registry: what each method does, its axes, its params.

Each section is read from the method's own file (its package's ``__init__`` where it is a package):
its module docstring, its ``Method`` (title, axes, default catalog, what chains it may join) and its
params dataclass (each field's default, allowed values and doc, from ``setting``). ``tcompress docs`` writes the page; a test regenerates it
and compares, so a docstring or a default cannot change without the page changing too.

Torch-free, like the registry it reads.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from tcompress.methods import FinetuneParams, Method, registered
from tcompress.schema import describe

METHODS_PAGE = Path("docs") / "methods.md"


def _yaml(value: Any) -> str:
    """A default as params.yaml would spell it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return str(value)


def _accepts(tp: Any, meta: dict) -> str:
    """What a field accepts, in words: ``int >= 1``, ``one of sym, asym``, ``list of int``, ``… or null``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return _accepts(inner, meta) + " or null"
    if origin is tuple:
        return "list of " + _accepts(typing.get_args(tp)[0], meta)
    return describe(tp, meta)


def _cell(text: str) -> str:
    """Text for one markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _markdown(docstring: str) -> str:
    """A docstring as markdown: reST's ``code`` becomes `code`."""
    return re.sub(r"``(.+?)``", r"`\1`", inspect.cleandoc(docstring), flags=re.DOTALL)


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _fields(params: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(params)
    return [(f, hints[f.name]) for f in dataclasses.fields(params)]


def _params_table(rows: list[tuple[dataclasses.Field, Any]]) -> list[str]:
    out = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for f, tp in rows:
        out.append(f"| `{f.name}` | `{_yaml(_default(f))}` | {_cell(_accepts(tp, dict(f.metadata)))} | "
                   f"{_cell(f.metadata.get('doc', ''))} |")
    return out


def _axes_table(method: Method) -> list[str]:
    fields = {f.name: (f, tp) for f, tp in _fields(method.params)}
    out = ["| axis | params key | default | default catalog | values |", "| --- | --- | --- | --- | --- |"]
    for axis in method.axes:
        f, tp = fields[axis.key]
        default = f"`{_yaml(_default(f))}`"
        if axis.shared and type(None) in typing.get_args(tp):
            default += f" (null: the top-level `{axis.key}`)"
        allowed = getattr(axis.check, "allowed", None)
        values = f"{allowed}: {axis.doc}" if allowed and axis.doc else allowed or axis.doc
        catalog = _yaml(method.catalog.get(axis.key))
        out.append(f"| {axis.name} | `{method.name}.{axis.key}` | {default} | `{catalog}` | {_cell(values)} |")
    return out


def _facts(method: Method) -> list[str]:
    """What the pipeline does with the method's cells, from its ``Method`` attributes."""
    if method.trains and method.controlled:
        trains = (f"trains through the one training loop, on the budget keys above; its control cell "
                  f"`{method.name}-control` trains the same budget uncompressed")
    elif method.trains:
        trains = "trains through the one training loop, on the budget keys above; no control cell (its grid " \
                 "holds its own comparison)"
    else:
        trains = "no training"
    chains = ["may start a chain (its model is float)"] if method.float_output else []
    if method.continues_any:
        chains.append("may continue any cell's model")
    elif method.keeps_zeros:
        chains.append("may continue a chain (it keeps a pruned parent's zeros)")
    else:
        chains.append("may not continue a chain (it does not keep a parent's zeros)")
    teacher = ["some cells train on the `teacher` stage's translations"] if method.needs_teacher else []
    if method.calibrated:
        teacher.append("its cells read the `calibrate` stage's per-Linear input statistics of the baseline "
                       "(params.yaml's `calibration` section)")
    if method.sensitivity:
        teacher.append("its cells read the `sensitivity` stage's validation-loss increase of each Linear per "
                       "bit width (params.yaml's `sensitivity` section)")
    if method.deploy_int8:
        teacher.append("with params.yaml's `deploy` section on, its cells' float models are exported to "
                       "CTranslate2 as int8 by CTranslate2's own rule (docs/deployment.md)")
    return [f"- Cell id: `{method.name}-" + "-".join(f"<{a.name}>" for a in method.axes) + "`.",
            f"- {trains.capitalize()}.", f"- {'; '.join(chains).capitalize()}."] + \
        [f"- {t[0].upper()}{t[1:]}." for t in teacher]   # not capitalize(): it lowercases CTranslate2


def _method_section(method: Method) -> list[str]:
    budget = {f.name: _default(f) for f in dataclasses.fields(FinetuneParams)} if method.trains else {}
    axis_keys = {a.key for a in method.axes}
    # A budget key is listed with the method only where the method gives it a default of its own.
    own = [(f, tp) for f, tp in _fields(method.params)
           if f.name not in axis_keys and (f.name not in budget or _default(f) != budget[f.name])]
    lines = [f"### `{method.name}`: {method.title}", "", *_facts(method), "", *_axes_table(method), ""]
    if own:
        lines += [f"Settings (`{method.name}.<key>` in params.yaml):", "", *_params_table(own), ""]
    return lines


def render() -> str:
    """The whole page."""
    methods = registered()
    lines = [
        "# Methods",
        "",
        "<!-- Generated by `tcompress docs` from tcompress/methods/; do not edit by hand. "
        "tests/test_methods_doc.py fails when this page is stale. -->",
        "",
        f"{len(methods)} methods are registered in `tcompress/methods/`, each a file, or a package where it brings "
        "modules of its own (a file or package may register two). "
        "A cell is a method and one value per grid axis. `methods:` in params.yaml says which methods run; "
        "each axis's params key says which values. A selected value must also be in params.yaml's `catalog` "
        "(then `tcompress catalog`): the default catalog below applies where params.yaml's leaves an axis out.",
        "",
        "Defaults are those of each params dataclass, used where params.yaml leaves a key out. They are the "
        "committed params.yaml's values; a value it gives per corpus (`epochs: {synthetic: 2, multi30k: 1}`) "
        "defaults to its `synthetic` entry, the default corpus's (tests/test_defaults.py). Any scalar may be "
        "given per corpus that way.",
        "",
        "## The training budget (every method that trains)",
        "",
        *_params_table(_fields(FinetuneParams)),
        "",
    ]
    by_module: dict[str, list[Method]] = {}
    for method in methods:
        by_module.setdefault(method.compress.__module__, []).append(method)
    for module, group in by_module.items():
        names = " and ".join(f"`{m.name}`" for m in group)
        is_package = hasattr(sys.modules[module], "__path__")
        path = module.replace(".", "/") + ("/" if is_package else ".py")
        lines += [f"## {names} ({path})", "", _markdown(sys.modules[module].__doc__ or ""), ""]
        for method in group:
            lines += _method_section(method)
    return "\n".join(lines).rstrip("\n") + "\n"


def write(path: str | Path = METHODS_PAGE) -> bool:
    """Write the page; True when its text changed."""
    path, text = Path(path), render()
    changed = not path.exists() or path.read_text() != text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return changed
