"""The compression methods, one file each, or one package where a method brings modules of its own
(``fullyqt/``, for one); see ``base`` for what a method defines.

Every module of this package is imported by ``load_all`` (hence by ``registered``/``get``), and
every module of a method's package by the loader (``tcompress.loader``: a stored form may live
there), so a new method is a new file or package here plus its section in params.yaml; nothing else
names it.
"""

# Read by tcompress.closure: importing this package may import any of its modules, a method
# package's included.
LOADS_ALL_SUBMODULES = True

from tcompress.methods.base import (  # noqa: E402
    CONTROL, Axis, Budget, Cell, FinetuneParams, Method, get, load_all, register, registered,
)

__all__ = ["CONTROL", "Axis", "Budget", "Cell", "FinetuneParams", "Method", "get", "load_all", "register",
           "registered"]
