"""Which files of this repository a script runs: its import closure within the ``tcompress`` package.

Used twice, so that DVC's dependencies cannot go stale: the plan stage hashes the closure of the
cell stages into each cell's plan file (a cell reruns exactly when code it runs changed), and a test
checks that every stage in dvc.yaml lists (a file or folder covering) each file of its script's
closure. Imports are found statically, including those inside functions (the lazy ones); a
package whose ``__init__`` sets ``LOADS_ALL_SUBMODULES = True`` (the method registry, the shared
mechanisms) brings all its modules, those of its subpackages included.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "tcompress"


def _module_file(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _loads_all(init: Path) -> bool:
    return init.name == "__init__.py" and "LOADS_ALL_SUBMODULES = True" in init.read_text()


def closure(scripts: list[Path], root: Path, exclude: set[Path] = frozenset()) -> list[Path]:
    """Files (relative to ``root``) the scripts import from ``tcompress``, transitively, parents'
    ``__init__`` included; ``exclude`` files are neither included nor followed."""
    root = root.resolve()
    seen: set[Path] = set()
    todo = [p.resolve() for p in scripts]
    while todo:
        path = todo.pop()
        for dotted in _imported_modules(path):
            parts = dotted.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                found = _module_file(root, ".".join(parts[:i]))
                if found is None or found in seen or found.relative_to(root) in exclude:
                    continue
                seen.add(found)
                todo.append(found)
                if _loads_all(found):
                    todo += [p for p in sorted(found.parent.rglob("*.py"))
                             if p not in seen and p.relative_to(root) not in exclude and not seen.add(p)]
    return sorted(p.relative_to(root) for p in seen)


def file_digest(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def digest_files(paths: list[Path], root: Path) -> str:
    """One hash of the files' names and contents."""
    h = hashlib.md5()
    for rel in sorted(paths):
        h.update(str(rel).encode() + b"\0" + file_digest(root / rel).encode() + b"\n")
    return h.hexdigest()
