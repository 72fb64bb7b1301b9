"""Compression methods: each is a config dataclass plus one function registered in ``methods``."""

from tcompress.compress import pruning, ptq, qat  # noqa: F401  (importing a method registers it)
from tcompress.compress.methods import compress_, replace_module
from tcompress.compress.pruning import AGPConfig, IMPConfig
from tcompress.compress.ptq import PTQConfig
from tcompress.compress.qat import QATConfig

__all__ = ["AGPConfig", "IMPConfig", "PTQConfig", "QATConfig", "compress_", "replace_module"]
