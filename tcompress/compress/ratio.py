"""Compression ratios as the thesis defines them (§4.1)."""

from __future__ import annotations

FLOAT_BITS = 32


def quantization_ratio(n_model: int, n_compressed: int, bits: int, float_bits: int = FLOAT_BITS) -> float:
    """r = n_m·b / (n_c·b_c + (n_m − n_c)·b): n_c of the n_m parameters stored in b_c bits instead of b."""
    if not 0 <= n_compressed <= n_model:
        raise ValueError(f"compressed parameters {n_compressed} must be within 0..{n_model}")
    return n_model * float_bits / (n_compressed * bits + (n_model - n_compressed) * float_bits)


def pruning_ratio(n_model: int, nonzero: int) -> float:
    """r = n_m / NNZ."""
    if nonzero <= 0:
        raise ValueError("a model with no nonzero parameter has no finite compression ratio")
    return n_model / nonzero
