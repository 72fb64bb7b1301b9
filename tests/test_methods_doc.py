"""docs/methods.md is generated from the registry (`tcompress docs`), so it cannot drift: the
committed page must equal a fresh render, and a render changes when a method's own text does."""

import dataclasses
import re
import sys
from pathlib import Path

from click.testing import CliRunner

from tcompress.cli import main
from tcompress.methods import FinetuneParams, registered
from tcompress.methods_doc import METHODS_PAGE, render

REPO = Path(__file__).resolve().parents[1]


def test_the_committed_methods_page_is_the_generated_one():
    assert (REPO / METHODS_PAGE).read_text() == render(), "docs/methods.md is stale: run `tcompress docs`"


def test_a_changed_method_docstring_changes_the_page(monkeypatch):
    module = sys.modules[registered()[0].compress.__module__]
    monkeypatch.setattr(module, "__doc__", module.__doc__ + "\nOne more sentence.\n")
    assert render() != (REPO / METHODS_PAGE).read_text()


def test_every_method_axis_and_setting_has_its_line():
    page = render()
    budget = {f.name for f in dataclasses.fields(FinetuneParams)}
    for method in registered():
        assert f"### `{method.name}`: {method.title}\n" in page
        for axis in method.axes:
            assert f"| {axis.name} | `{method.name}.{axis.key}` |" in page
        own = {f.name for f in dataclasses.fields(method.params)} - {a.key for a in method.axes}
        section = page.split(f"### `{method.name}`:")[1].split("\n### ")[0].split("\n## ")[0]
        for key in own - (budget if method.trains else set()):
            assert f"| `{key}` |" in section, (method.name, key)


def test_the_bit_ranges_are_each_methods_own():
    page = render()
    assert "| bits | `ptq.bits` | `null` (null: the top-level `bits`) | `[16, 8, 4, 3]` | an int from 2 to 16" in page
    assert "| bits | `kmeans.bits` | `[4]` (null: the top-level `bits`) | `[4, 1]` | an int from 1 to 8" in page


def test_tcompress_docs_writes_the_page(tmp_path):
    out = tmp_path / "methods.md"
    first = CliRunner().invoke(main, ["docs", "--out", str(out)])
    assert first.exit_code == 0 and first.output == f"{out}: {len(registered())} methods\n", first.output
    assert out.read_text() == render()
    again = CliRunner().invoke(main, ["docs", "--out", str(out)])
    assert again.output.endswith("(unchanged)\n")


def test_the_readme_names_every_registered_method():
    readme = (REPO / "README.md").read_text()
    listed = readme[readme.index("- Methods, a file or a package each"):].split("\n- ")[0]
    assert re.findall(r"`(\w+)`", listed.split("):", 1)[1]) == [m.name for m in registered()]
