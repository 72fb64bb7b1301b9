"""Run dvc.yaml's stage commands in order on a machine without DVC (a rented GPU box, say).

    python benchmarks/stages_without_dvc.py -S data=multi30k -S seed=7 \
        resolve prepare tokenize train evaluate teacher plan cell@lottery-50-rewind-full

``-S key=value`` edits params.yaml first, as ``dvc exp run -S`` does (the value is read as YAML, so
``-S 'methods=[imp]'`` is a list); this rewrites params.yaml without its comments, so run it in a
copy of the repository. Each named stage's ``cmd`` is read from dvc.yaml (a ``foreach`` stage as
``name@item``) and run as it is written there, so paths stay in dvc.yaml alone (its leading
``python`` is this interpreter, for machines whose Python is ``python3`` only). Nothing is cached
and nothing is skipped: the stages run in the order given, and the first failure stops the run.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

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


@click.command()
@click.option("-S", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="edit params.yaml before running (the value is parsed as YAML)")
@click.option("--dry-run", is_flag=True, help="print the commands without running them")
@click.argument("stages", nargs=-1)
def main(overrides: tuple[str, ...], dry_run: bool, stages: tuple[str, ...]) -> None:
    if overrides:
        params = yaml.safe_load(Path("params.yaml").read_text())
        for override in overrides:
            key, sep, raw = override.partition("=")
            if not sep:
                raise click.BadParameter(f"-S {override!r}: expected KEY=VALUE")
            set_param(params, key, yaml.safe_load(raw))
        if not dry_run:
            Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = yaml.safe_load(Path("dvc.yaml").read_text())
    cells = yaml.safe_load(Path("stages/cells.yaml").read_text())
    commands = [(name, " ".join(stage_command(dvc, cells, name).split())) for name in stages]
    commands = [(name, sys.executable + cmd[len("python"):] if cmd.startswith("python ") else cmd)
                for name, cmd in commands]
    for name, cmd in commands:
        click.echo(f"[{name}] {cmd}", err=True)
        if dry_run:
            continue
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, shell=True).returncode
        click.echo(f"[{name}] exit {rc} after {time.perf_counter() - t0:.1f} s", err=True)
        if rc:
            sys.exit(rc)


if __name__ == "__main__":
    main()
