"""The commands README.md and docs/*.md show work: parsed out of the pages (so the docs cannot drift
from what works), each `-S` override applied to params.yaml by DVC's own code, then loaded and
planned; each `tcompress` command's options checked against the CLI.

A full grid needs a bigger catalog than the committed one, so a page section (`## …`) may show a
`catalog:` fragment in a yaml block before its commands (docs/grids.md). The test puts it into
params.yaml as the page tells the reader to (a method's entry replaced, chains added), then checks
the section's commands against that.

Running them through `dvc exp run` takes minutes to hours (docs/grids.md lists their costs); what
can go wrong before any stage computes (DVC refusing an override, a value the loader rejects, a
grid value outside the catalog) is checked here in seconds.
"""

import json
import shlex
import shutil
from pathlib import Path

import click
import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from tcompress.cli import main
from tcompress.grid import cells_file_text, selected_cells
from tcompress.params import load_params

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OVERRIDING = ("dvc exp run", "tcompress plan")


def shown(pages=PAGES) -> list[tuple[str, str, str]]:
    """(page, section's catalog fragment as JSON, command) for every command line in a code block;
    a `\\` continues a line, `  #` starts a comment."""
    out = []
    for page in pages:
        catalog, lang, block, pending = {}, None, [], ""
        for line in page.read_text().splitlines():
            if line.startswith("```"):
                if lang is None:
                    lang, block = line[3:].strip(), []
                    continue
                fragment = yaml.safe_load("\n".join(block)) if lang == "yaml" else None
                if isinstance(fragment, dict) and "catalog" in fragment:
                    catalog = fragment["catalog"]
                lang = None
                continue
            if lang is None:
                if line.startswith("## "):
                    catalog = {}   # a fragment holds for its own section
                continue
            if lang == "yaml":
                block.append(line)
                continue
            line = pending + line.split("  #")[0].strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            if line:
                out.append((page.relative_to(REPO).as_posix(), json.dumps(catalog), line))
    return out


SHOWN = shown()


def commands(prefix) -> list[tuple[str, str, str]]:
    return list(dict.fromkeys(s for s in SHOWN if s[2].startswith(prefix)))


def ids(shown_commands) -> list[str]:
    return [f"{page}: {command}" for page, _, command in shown_commands]


def overrides(command: str) -> list[str]:
    words = shlex.split(command)
    return [words[i + 1] for i, w in enumerate(words) if w in ("-S", "--set-param")]


def with_catalog(params: Path, fragment: dict) -> None:
    """What the page asks: replace each method's catalog entry, add the chains."""
    raw = yaml.safe_load(params.read_text())
    catalog = raw.setdefault("catalog", {})
    for key, value in fragment.items():
        catalog[key] = list(dict.fromkeys([*catalog.get(key, []), *value])) if key == "chains" else value
    params.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_the_pages_show_exp_run_commands():
    readme = [c for page, _, c in commands("dvc exp run") if page == "README.md"]
    assert len(readme) >= 4 and "dvc exp run -S bits=4" in readme
    assert any(page == "docs/grids.md" for page, _, _ in commands("dvc exp run"))


@pytest.mark.parametrize("page, catalog, command", commands(OVERRIDING), ids=ids(commands(OVERRIDING)))
def test_shown_overrides_are_accepted(page, catalog, command, tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    with_catalog(params, json.loads(catalog))
    apply_overrides(params, overrides(command))   # raises where DVC itself would refuse the override
    loaded = load_params(params)
    assert selected_cells(loaded) or not loaded.methods


def test_each_catalog_fragment_is_followed_by_tcompress_catalog_and_builds_a_stage_list(tmp_path):
    fragments = {c for _, c, _ in SHOWN if c != "{}"}
    assert fragments, "docs/grids.md shows no catalog fragment"
    for fragment in fragments:
        assert [c for _, f, c in SHOWN if f == fragment][0] == "tcompress catalog", fragment
        params = tmp_path / "params.yaml"
        shutil.copy(REPO / "params.yaml", params)
        with_catalog(params, json.loads(fragment))
        assert "cells:" in cells_file_text(load_params(params))   # what `tcompress catalog` writes


def test_scalar_and_list_overrides_select_what_they_say(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    apply_overrides(params, ["bits=4"])
    ptq = [c for c in selected_cells(load_params(params)) if c.method == "ptq"]
    assert {c["bits"] for c in ptq} == {4} and len(ptq) == 4
    apply_overrides(params, ["bits=[8,4]", "groups=[ff,att]", "modes=sym"])
    ptq = [c.id for c in selected_cells(load_params(params)) if c.method == "ptq"]
    assert ptq == ["ptq-sym-8-ff", "ptq-sym-8-att", "ptq-sym-4-ff", "ptq-sym-4-att"]


def test_the_default_run_selects_the_cells_the_readme_names():
    """README, "The default run": 8 PTQ cells, one QAT, one AGP and one IMP cell."""
    cells = [c for c in selected_cells(load_params(REPO / "params.yaml")) if not c.control]
    assert {m: sum(c.method == m for c in cells) for m in {c.method for c in cells}} == \
        {"ptq": 8, "qat": 1, "agp": 1, "imp": 1}
    assert {(c["mode"], c["bits"], c["group"]) for c in cells if c.method == "ptq"} == \
        {(m, b, g) for m in ("sym", "asym") for b in (8, 4) for g in ("att", "full")}


def _options(command: click.Command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}


@pytest.mark.parametrize("page, catalog, command", commands("tcompress "), ids=ids(commands("tcompress ")))
def test_shown_tcompress_commands_use_real_options(page, catalog, command):
    words = shlex.split(command)
    assert words[1] in main.commands, f"{page}: no command `tcompress {words[1]}`"
    allowed = _options(main.commands[words[1]])
    used = {w.split("=")[0] for w in words[2:] if w.startswith("-") and not w.lstrip("-").isdigit()}
    assert used <= allowed, f"{page}: {sorted(used - allowed)} not options of `tcompress {words[1]}`"


VIEW_PREFIXES = ("dvc metrics show", "dvc metrics diff", "dvc plots show", "dvc dag", "dvc exp show", "dvc status")


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted({c for _, _, c in commands("dvc") if c.startswith(VIEW_PREFIXES)}))
def test_shown_view_commands_run_on_a_finished_pipeline(command, tiny_pipeline):
    from conftest import dvc

    dvc(shlex.split(command)[1:], tiny_pipeline)   # fails the test on a non-zero exit


def test_the_readme_shows_the_views_it_promises():
    views = [c for page, _, c in commands("dvc") if page == "README.md" and c.startswith(VIEW_PREFIXES)]
    assert {"dvc metrics show metrics/summary.json", "dvc dag --mermaid", "dvc plots show"} <= set(views)
