"""Compression methods: each is a config dataclass plus one function registered in ``methods``."""

from tcompress.compress import ptq  # noqa: F401  (registers PTQConfig)
from tcompress.compress.methods import compress_, replace_module
from tcompress.compress.ptq import PTQConfig

__all__ = ["PTQConfig", "compress_", "replace_module"]
