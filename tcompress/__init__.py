"""tcompress: train a Transformer translation model, compress it per layer group, measure the cost."""

__version__ = "0.1.0"
