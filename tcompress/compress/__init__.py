"""Compression machinery: quantizers, wrappers, pruners; each a config dataclass plus one function
registered with the walker (``walker.compress_``). The grid's methods (``tcompress.methods``) use them."""

from tcompress.compress import pruning, ptq, qat  # noqa: F401  (importing one registers its function)
from tcompress.compress.walker import compress_, replace_module
from tcompress.compress.pruning import AGPConfig, IMPConfig
from tcompress.compress.ptq import PTQConfig
from tcompress.compress.qat import QATConfig

__all__ = ["AGPConfig", "IMPConfig", "PTQConfig", "QATConfig", "compress_", "replace_module"]
