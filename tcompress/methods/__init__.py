"""The compression methods, one file each; see ``base`` for what a method file defines.

Every module of this package is imported by ``load_all`` (hence by ``registered``/``get``), so a
new method is a new file here plus its section in params.yaml; nothing else names it.
"""

# Read by tcompress.closure: importing this package may import any of its modules.
LOADS_ALL_SUBMODULES = True

from tcompress.methods.base import (  # noqa: E402
    CONTROL, Axis, Budget, Cell, FinetuneParams, Method, get, load_all, register, registered,
)

__all__ = ["CONTROL", "Axis", "Budget", "Cell", "FinetuneParams", "Method", "get", "load_all", "register",
           "registered"]
