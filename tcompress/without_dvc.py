"""dvc.yaml's stage commands, run in order on a machine without DVC (a rented GPU box, say).

``tcompress run-stages -S data=multi30k resolve prepare tokenize train`` reads each named stage's
``cmd`` from dvc.yaml (a ``foreach`` stage as ``name@item``, its item from stages/cells.yaml) and
runs it as it is written there, so paths stay in dvc.yaml alone; its leading ``python`` becomes
this interpreter, for machines whose Python is ``python3`` only. Nothing is cached and nothing is
skipped: the stages run in the order given, and the first failure stops the run with its exit code.

``-S key=value`` edits params.yaml first, as ``dvc exp run -S`` does: the value is read as YAML
(``-S 'methods=[imp]'`` is a list), every key on the way must exist, and params.yaml is rewritten
without its comments, so run it in a copy of the repository. benchmarks/lottery_device.sh runs the
18-epoch lottery comparison on a CUDA machine this way (tests/test_stages_without_dvc.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import click
import yaml


def set_param(params: dict, dotted: str, value: object) -> None:
    """Set ``a.b.c`` in the nested mapping; every key on the way must exist (a typo fails here)."""
    *parents, last = dotted.split(".")
    node = params
    for i, key in enumerate(parents):
        if not isinstance(node, dict) or key not in node:
            raise click.BadParameter(f"-S {dotted}: params.yaml has no {'.'.join(parents[:i + 1])!r}")
        node = node[key]
    if not isinstance(node, dict) or last not in node:
        raise click.BadParameter(f"-S {dotted}: params.yaml has no {dotted!r}")
    node[last] = value


def edit_params(path: Path, overrides: tuple[str, ...], write: bool = True) -> None:
    """Apply every ``KEY=VALUE`` to params.yaml; nothing is written unless all of them apply."""
    params = yaml.safe_load(path.read_text())
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep:
            raise click.BadParameter(f"-S {override!r}: expected KEY=VALUE")
        set_param(params, key, yaml.safe_load(raw))
    if write:
        path.write_text(yaml.safe_dump(params, sort_keys=False))


def stage_command(dvc: dict, cells: dict, name: str) -> str:
    """The shell command dvc.yaml gives stage ``name`` (``stage@item`` for a foreach stage)."""
    stage, sep, item = name.partition("@")
    if stage not in dvc["stages"]:
        raise click.BadParameter(f"{name}: dvc.yaml has no stage {stage!r}; it has {sorted(dvc['stages'])}")
    spec = dvc["stages"][stage]
    if "foreach" not in spec:
        if sep:
            raise click.BadParameter(f"{name}: stage {stage!r} is not a foreach stage")
        return spec["cmd"]
    items = cells.get(spec["foreach"].strip("${}"), [])
    if item not in items:
        raise click.BadParameter(f"{name}: {item!r} is not one of the {len(items)} items of {spec['foreach']}")
    # A list's item is ${item}; a mapping's is ${key}, its value's fields ${item.<field>}.
    fields = {"item": item} if isinstance(items, list) else {
        "key": item, **{f"item.{k}": str(v) for k, v in items[item].items()}}
    return re.sub(r"\$\{([\w.]+)\}", lambda m: fields[m.group(1)], spec["do"]["cmd"])


def commands(stages: tuple[str, ...], root: Path = Path(".")) -> list[tuple[str, str]]:
    """(stage, command) for each named stage, on one line, ``python`` as this interpreter."""
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    cells = yaml.safe_load((root / "stages" / "cells.yaml").read_text())
    found = [(name, " ".join(stage_command(dvc, cells, name).split())) for name in stages]
    return [(name, sys.executable + cmd[len("python"):] if cmd.startswith("python ") else cmd) for name, cmd in found]


def run(found: list[tuple[str, str]], say: Callable[[str], None]) -> int:
    """Run the commands in order; the first nonzero exit code stops the run and is returned."""
    for name, cmd in found:
        say(f"[{name}] {cmd}")
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, shell=True).returncode
        say(f"[{name}] exit {rc} after {time.perf_counter() - t0:.1f} s")
        if rc:
            return rc
    return 0
