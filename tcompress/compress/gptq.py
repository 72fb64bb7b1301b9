"""GPTQ's rounding (Frantar et al., 2023) of one weight matrix from its input Hessian; shared by the
``gptq`` method (its docstring gives the algorithm and its deviations) and the ``mixed`` method
(which rounds each Linear at the width its search gives it, and measures sensitivities with it).
"""

from __future__ import annotations


def gptq_quantize(weight, hessian, spec, block_size: int = 128, damp: float = 0.01, act_order: bool = False):
    """GPTQ's codes of ``weight`` (d_out, d_in) for the Hessian ``hessian`` (d_in, d_in; any positive
    multiple of XᵀX), with per-row step sizes and zero points; returns (codes, scale, zero_point)."""
    import torch

    from tcompress.compress.linear_quant import dequantize, qparams, quantize, tensor_range

    w = weight.detach().double().clone()
    scale, zero_point = qparams(*tensor_range(weight, per_channel=True), spec)      # (d_out,) each
    h = hessian.detach().double().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    perm = torch.argsort(torch.diag(h), descending=True, stable=True) if act_order else torch.arange(w.shape[1])
    w, h = w[:, perm], h[perm][:, perm]
    h += damp * torch.diag(h).mean() * torch.eye(h.shape[0], dtype=h.dtype)
    # Row j of the upper Cholesky factor of H⁻¹, over its diagonal, is the update row of column j.
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    codes = torch.zeros(w.shape, dtype=spec.storage_dtype)
    for i1 in range(0, w.shape[1], block_size):
        i2 = min(i1 + block_size, w.shape[1])
        block, errors = w[:, i1:i2].clone(), torch.zeros(w.shape[0], i2 - i1, dtype=w.dtype)
        for i in range(i2 - i1):
            column = block[:, i]
            q = quantize(column, scale, zero_point, spec)
            codes[:, i1 + i] = q
            err = (column - dequantize(q, scale, zero_point).double()) / u[i1 + i, i1 + i]
            block[:, i:] -= err[:, None] * u[i1 + i, i1 + i:i2][None, :]
            errors[:, i] = err
        w[:, i2:] -= errors @ u[i1:i2, i2:]                                  # the block's lazy update
    return codes[:, torch.argsort(perm)], scale, zero_point
