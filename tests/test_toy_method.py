"""Adding a method is its package (or file) and its params.yaml section: a toy method with a stored
form of its own, defined here, goes through
resolve -> plan -> compress -> evaluate -> aggregate in a real DVC project, no other file changed
(the baseline and the PTQ cell come from the run-cache, where another test project made them).

The project copy gets the package in tcompress/methods/, its section in params.yaml, and the stage
list rewritten by `tcompress catalog` (generated, never edited by hand).
"""

import json

import pytest
import yaml

from conftest import dvc, make_project, run, tiny_catalog, tiny_params

pytestmark = pytest.mark.slow

TOY_INIT = '''
"""fp16: store the selected modules' weights as IEEE half floats (a toy method for the tests)."""

from dataclasses import dataclass
from typing import Optional

from tcompress.methods.base import GROUP, Axis, Method, register
from tcompress.schema import setting


def _check_width(width):
    if width not in (16,):
        raise ValueError(f"{width} is not allowed; expected 16")


WIDTH = Axis("width", "widths", int, "float width", _check_width)


@dataclass(frozen=True)
class FP16Params:
    widths: tuple[int, ...] = setting((16,), doc="grid key")
    groups: Optional[tuple[str, ...]] = setting(None, doc="grid key; null: the top-level groups")


def compress(model, cell, params, ctx):
    from tcompress.compress.ratio import quantization_ratio
    from tcompress.compress.walker import replace_module
    from tcompress.layer_groups import group_parameter_count, select_modules
    from tcompress.methods.fp16.modules import HalfForm
    from tcompress.model import count_parameters

    n_model, n_c = count_parameters(model), group_parameter_count(model, cell["group"])
    for module in select_modules(model, cell["group"]).values():
        replace_module(model, module, HalfForm.from_float(module))
    return {"n_model": n_model, "n_compressed": n_c,
            "compression_ratio": round(quantization_ratio(n_model, n_c, cell["width"]), 4)}


METHOD = register(Method(name="fp16", title="Half-precision weights", params=FP16Params, axes=(WIDTH, GROUP),
                         catalog={"widths": (16,), "groups": ("ff", "att")}, compress=compress,
                         row_axes=("width",), row_label=lambda v: f"fp{v['width']}", order=90))
'''

TOY_FORM = '''
"""fp16's stored form: a Linear's weight kept as half floats, 16 bits a weight in the file."""

from torch import nn

from tcompress.compress.artifact import StoredForm


class HalfForm(StoredForm, nn.Module, kind="toy_half"):
    def __init__(self, inner: nn.Linear):
        super().__init__()
        self.register_buffer("weight_half", inner.weight.detach().half())
        weight = inner.weight
        del inner._parameters["weight"]    # derived from the half codes, not saved
        inner.register_buffer("weight", weight.detach().clone(), persistent=False)
        self.inner = inner
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh())
        self.refresh()

    @classmethod
    def from_float(cls, inner: nn.Linear) -> "HalfForm":
        return cls(inner)

    def refresh(self) -> None:
        self.inner.weight = self.weight_half.float()

    def forward(self, x):
        return self.inner(x)

    def describe(self) -> dict:
        return {}

    @classmethod
    def shell(cls, inner, info):
        return cls(inner)

    def parameter_bits(self) -> int:
        return 16 * self.weight_half.numel()

    def stored_bits(self) -> int:
        return 16 * self.weight_half.numel()

    def nonzero_bits(self) -> int:
        return 16 * int((self.weight_half != 0).sum())
'''

# Run with the project's copy of the package first on the path: the form lives there.
WEIGHTS_CHECK = """
import torch
from tcompress.loader import load_model
from tcompress.methods.fp16.modules import HalfForm
base, _ = load_model('data/model/model.pt')
cell, _ = load_model('data/cells/fp16-16-att/model.safetensors')
weights = dict(base.named_parameters())
forms = {n: m for n, m in cell.named_modules() if isinstance(m, HalfForm)}
assert forms, 'no HalfForm came back from the file'
for name, form in forms.items():
    assert torch.equal(form.inner.weight, weights[name + '.weight'].detach().half().float()), name
print(len(forms))
"""


def test_a_method_package_with_its_own_stored_form_and_its_params_section_are_all_it_takes(tmp_path, shared_cache):
    ptq = {"bits": [8], "modes": ["sym"], "groups": ["full"]}   # a cell of the session's shared project
    project = make_project(tmp_path, tiny_params(methods=["ptq"], **ptq, catalog=tiny_catalog(ptq=ptq)), shared_cache)
    before = {p.relative_to(project) for p in project.rglob("*") if ".git" not in p.parts and ".dvc" not in p.parts}
    (project / "tcompress/methods/fp16").mkdir()
    (project / "tcompress/methods/fp16/__init__.py").write_text(TOY_INIT)
    (project / "tcompress/methods/fp16/modules.py").write_text(TOY_FORM)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["methods"] = ["ptq", "fp16"]
    params["fp16"] = {"groups": ["ff", "att"]}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["python", "-m", "tcompress.cli", "catalog"], project)
    after = {p.relative_to(project) for p in project.rglob("*") if ".git" not in p.parts and ".dvc" not in p.parts}
    assert {str(p) for p in after - before if "__pycache__" not in str(p)} == {
        "tcompress/methods/fp16", "tcompress/methods/fp16/__init__.py", "tcompress/methods/fp16/modules.py"}
    changed = run(["git", "status", "--porcelain", "-uall"], project).stdout.split()
    assert set(changed[1::2]) == {"params.yaml", "stages/cells.yaml", "tcompress/methods/fp16/__init__.py",
                                  "tcompress/methods/fp16/modules.py"}

    dvc(["repro"], project)
    baseline = json.loads((project / "metrics/baseline.json").read_text())
    for group in ("ff", "att"):
        m = json.loads((project / f"metrics/cells/fp16-16-{group}.json").read_text())
        n_c = baseline["group_parameters"][group]
        assert m["n_compressed"] == n_c and m["width"] == 16
        assert m["compression_ratio"] == pytest.approx(m["n_model"] * 32 / (n_c * 16 + (m["n_model"] - n_c) * 32),
                                                       abs=1e-4)
    # The file holds the form's half-precision codes, and the one loader rebuilds the form from them.
    assert int(run(["python", "-c", WEIGHTS_CHECK], project).stdout) > 0
    tables = (project / "metrics/tables.md").read_text()
    assert "## Half-precision weights" in tables and "| fp16 |" in tables
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert summary["cells"] == 3  # ptq-sym-8-full and the two fp16 cells
    points = json.loads((project / "metrics/bleu_vs_ratio.json").read_text())
    assert {p["series"] for p in points} >= {"fp16", "ptq/sym"}


def test_an_unknown_method_is_one_line_listing_the_registered_ones():
    import re

    from tcompress.methods import get, registered
    from tcompress.schema import ConfigError

    names = [m.name for m in registered()]
    assert {"ptq", "qat", "agp", "imp", "distill"} <= set(names)
    with pytest.raises(ConfigError, match=re.escape(f"unknown method 'lasso'; registered methods: {', '.join(names)}") + "$"):
        get("lasso")
