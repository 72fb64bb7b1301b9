"""Compression machinery: quantizers, wrappers, pruners; each a config dataclass plus one function
registered with the walker (``walker.compress_``). The grid's methods (``tcompress.methods``) use them."""

# Read by tcompress.closure: the one artifact loader imports every module of this package, because
# a stored form registers itself when its module is imported.
LOADS_ALL_SUBMODULES = True

from tcompress.compress import pruning, ptq, qat  # noqa: E402, F401  (importing one registers its function)
from tcompress.compress.walker import compress_, replace_module  # noqa: E402
from tcompress.compress.pruning import AGPConfig, IMPConfig  # noqa: E402
from tcompress.compress.ptq import PTQConfig  # noqa: E402
from tcompress.compress.qat import QATConfig  # noqa: E402

__all__ = ["AGPConfig", "IMPConfig", "PTQConfig", "QATConfig", "compress_", "replace_module"]
