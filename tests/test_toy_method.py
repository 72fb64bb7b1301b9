"""Adding a method is one file and its params.yaml section: a toy method defined here goes through
resolve -> plan -> compress -> evaluate -> aggregate in a real DVC project, no other file changed
(the baseline and the PTQ cell come from the run-cache, where another test project made them).

The project copy gets the file in tcompress/methods/, its section in params.yaml, and the stage
list rewritten by `tcompress catalog` (generated, never edited by hand).
"""

import json

import pytest
import torch
import yaml

from conftest import dvc, make_project, run, tiny_catalog, tiny_params

pytestmark = pytest.mark.slow

TOY_METHOD = '''
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
    import torch
    from tcompress.compress.ratio import quantization_ratio
    from tcompress.layer_groups import group_parameter_count, select_modules
    from tcompress.model import count_parameters

    n_model, n_c = count_parameters(model), group_parameter_count(model, cell["group"])
    with torch.no_grad():
        for module in select_modules(model, cell["group"]).values():
            for p in module.parameters(recurse=False):
                p.copy_(p.half().float())
    return {"n_model": n_model, "n_compressed": n_c,
            "compression_ratio": round(quantization_ratio(n_model, n_c, cell["width"]), 4)}


METHOD = register(Method(name="fp16", title="Half-precision weights", params=FP16Params, axes=(WIDTH, GROUP),
                         catalog={"widths": (16,), "groups": ("ff", "full")}, compress=compress,
                         row_axes=("width",), row_label=lambda v: f"fp{v['width']}", order=90))
'''


def test_a_method_file_and_its_params_section_are_all_it_takes(tmp_path, shared_cache):
    ptq = {"bits": [8], "modes": ["sym"], "groups": ["full"]}   # a cell of the session's shared project
    project = make_project(tmp_path, tiny_params(methods=["ptq"], **ptq, catalog=tiny_catalog(ptq=ptq)), shared_cache)
    before = {p.relative_to(project) for p in project.rglob("*") if ".git" not in p.parts and ".dvc" not in p.parts}
    (project / "tcompress/methods/fp16.py").write_text(TOY_METHOD)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["methods"] = ["ptq", "fp16"]
    params["fp16"] = {"groups": ["ff", "full"]}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["python", "-m", "tcompress.cli", "catalog"], project)
    after = {p.relative_to(project) for p in project.rglob("*") if ".git" not in p.parts and ".dvc" not in p.parts}
    assert {str(p) for p in after - before if "__pycache__" not in str(p)} == {"tcompress/methods/fp16.py"}
    changed = run(["git", "status", "--porcelain"], project).stdout.split()
    assert set(changed[1::2]) == {"params.yaml", "stages/cells.yaml", "tcompress/methods/fp16.py"}

    dvc(["repro"], project)
    baseline = json.loads((project / "metrics/baseline.json").read_text())
    for group in ("ff", "full"):
        m = json.loads((project / f"metrics/cells/fp16-16-{group}.json").read_text())
        n_c = baseline["group_parameters"][group]
        assert m["n_compressed"] == n_c and m["width"] == 16
        assert m["compression_ratio"] == pytest.approx(m["n_model"] * 32 / (n_c * 16 + (m["n_model"] - n_c) * 32),
                                                       abs=1e-4)
    # the artifact holds exactly the half-precision values of the baseline's weights
    from tcompress.loader import load_model

    base, _ = load_model(project / "data/model/model.pt")
    cell, _ = load_model(project / "data/cells/fp16-16-full/model.safetensors")
    for (name, a), (_, b) in zip(base.state_dict().items(), cell.state_dict().items()):
        assert torch.equal(a.half().float(), b) if a.is_floating_point() else torch.equal(a, b), name
    tables = (project / "metrics/tables.md").read_text()
    assert "## Half-precision weights" in tables and "| fp16 |" in tables
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert summary["cells"] == 3  # ptq-sym-8-full and the two fp16 cells
    points = json.loads((project / "metrics/bleu_vs_ratio.json").read_text())
    assert {p["series"] for p in points} >= {"fp16", "ptq/sym"}


def test_an_unknown_method_is_one_line_listing_the_registered_ones():
    from tcompress.methods import get
    from tcompress.schema import ConfigError

    with pytest.raises(ConfigError, match="unknown method 'lasso'; registered methods: ptq, qat, agp, imp, "
                                          "fullyqt, fullyqt_ptq, nodeprune, kmeans_ptq, kmeans, binary, "
                                          "bsflex, qsgd, q8bert, quant_noise, lottery, distill$"):
        get("lasso")
