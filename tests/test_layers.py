"""Layers point down: no module imports from a layer above its own.

Every module of ``tcompress`` and every stage script is listed in one layer below (a package's
``.*`` covers its modules), top to bottom; a module may import from its own layer and any layer
under it. Imports are read statically (``ast``), the lazy ones inside functions included, so a
torch-free module that defers an import is checked as strictly as one that imports at the top.
A new module fails ``test_every_module_has_one_layer`` until it is placed here: placing it is the
decision of what it may import.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # What a user or DVC runs: thin scripts, the CLI, the helper they share (one-line errors,
    # resolved configs, runtime settings), and dvc.yaml's commands run without DVC.
    ("entry points", ("stages.*", "tcompress.cli", "tcompress.stage", "tcompress.templates.*",
                      "tcompress.without_dvc")),
    # What loops over the method registry: params, grid, chains, plan, the cell runner, what the
    # aggregate writes (results, significance, report, its plots) and compares beyond its tables,
    # and the generated methods page.
    # The one model loader sits here too: a stored form used by one method lives in that method's
    # package, so the loader imports every method's modules before it rebuilds a file's forms
    # (naming none), which only a layer above the methods may do. The CTranslate2 export and the
    # deploy section sit beside it: they read the stored forms of a model their caller loaded.
    ("runner, plan and aggregate", (
        "tcompress.params", "tcompress.grid", "tcompress.chains", "tcompress.plan", "tcompress.preview",
        "tcompress.runner", "tcompress.cellfiles", "tcompress.loader", "tcompress.export_ct2", "tcompress.deploy",
        "tcompress.results", "tcompress.seeds", "tcompress.significance", "tcompress.report", "tcompress.svgplot", "tcompress.compare",
        "tcompress.methods_doc", "tcompress.shard", "tcompress.push")),
    # One file, or one package where it brings modules of its own (its stored forms, its wrappers),
    # per compression method, and the registry they register with.
    # The mixed search's per-Linear sensitivities sit beside them, measured by a stage of their own and
    # kept out of the methods' package, which the loader imports whole (only a mixed cell runs them).
    ("methods", ("tcompress.methods", "tcompress.methods.*", "tcompress.sensitivity")),
    # What two or more methods share: the stored forms they share and the artifact's writer and bit
    # counts, packing, linear quantization, codebooks, pruners, the module walker.
    ("shared compression mechanisms", ("tcompress.compress", "tcompress.compress.*")),
    # The float model and everything about it that knows nothing of compression (decoding an
    # exported model with CTranslate2 included: it needs the tokenizer, not the model's forms; the
    # float baseline's own loader and the teacher stage's decoding, which read no stored form).
    ("model, data, config and base", (
        "tcompress", "tcompress.schema", "tcompress.config", "tcompress.model", "tcompress.layer_groups",
        "tcompress.batching", "tcompress.tokenizer", "tcompress.data", "tcompress.data.*", "tcompress.decode",
        "tcompress.evaluation", "tcompress.precision", "tcompress.checkpoint", "tcompress.safetensors_file",
        "tcompress.training", "tcompress.closure", "tcompress.translate_ct2", "tcompress.post_config",
        "tcompress.vocabulary_map", "tcompress.baseline", "tcompress.teacher", "tcompress.resume_folder")),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted([*(REPO / "tcompress").rglob("*.py"), *(REPO / "stages").glob("*.py")])}


def layer_of(module: str) -> list[int]:
    """The indexes (0 = top) of every layer that lists ``module``."""
    return [i for i, (_, patterns) in enumerate(LAYERS) if any(fnmatchcase(module, p) for p in patterns)]


def _imported(module: str, source: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) for each project module the source imports; ``from pkg import name`` counts as
    importing ``pkg.name`` where that is a module, else ``pkg``."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:   # `import a.b.Thing` style leftovers: the module part
                name = name.rpartition(".")[0]
            if name:
                found.append((node.lineno, name))
    return list(dict.fromkeys(found))   # `from pkg import a, b` names pkg once


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """Each import in ``source`` (the text of ``module``) that points to a layer above the module's."""
    own = layer_of(module)[0]
    out = []
    for line, target in _imported(module, source, is_package):
        layers = layer_of(target)
        if layers and layers[0] < own:
            out.append(f"{module}:{line} imports {target} ({LAYERS[layers[0]][0]}), above its own layer "
                       f"({LAYERS[own][0]})")
    return out


def test_every_module_has_one_layer():
    unplaced = [m for m in MODULES if len(layer_of(m)) != 1]
    assert not unplaced, f"place each module in exactly one layer of LAYERS: {', '.join(unplaced)}"


def test_every_layer_entry_names_a_module():
    stale = [p for _, patterns in LAYERS for p in patterns
             if not any(fnmatchcase(m, p) for m in MODULES)]
    assert not stale, f"LAYERS lists modules that do not exist: {', '.join(stale)}"


def test_imports_point_down():
    found = [v for module, path in MODULES.items()
             for v in violations(module, path.read_text(), path.name == "__init__.py")]
    assert not found, "imports that point up:\n" + "\n".join(found)


@pytest.mark.parametrize("module, source, bad", [
    ("tcompress.compress.packing", "def f():\n    from tcompress.methods import get\n", "tcompress.methods"),
    ("tcompress.compress.packing", "import tcompress.runner\n", "tcompress.runner"),
    ("tcompress.methods.ptq", "from tcompress import plan\n", "tcompress.plan"),
    ("tcompress.model", "from .compress.artifact import save_compressed\n", "tcompress.compress.artifact"),
    ("tcompress.compress.codebook", "from tcompress import loader\n", "tcompress.loader"),
    ("tcompress.runner", "from tcompress.stage import runtime\n", "tcompress.stage"),
])
def test_an_import_that_points_up_is_reported(module, source, bad):
    """The checker itself: lazy, aliased, ``from pkg import module`` and relative imports are all seen."""
    found = violations(module, source)
    assert len(found) == 1 and f"imports {bad} " in found[0], found


def test_imports_down_and_sideways_are_allowed():
    assert not violations("tcompress.runner", "from tcompress.plan import training_subset\n"
                                              "from tcompress.methods import get\nimport torch\n")
    assert not violations("tcompress.methods.qat", "from tcompress.methods.ptq import compress\n")
