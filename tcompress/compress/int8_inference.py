"""Integer matmuls for every quantized Linear of a cell, built from its artifact's own codes.

Each ``QuantizedModule`` around an ``nn.Linear`` whose codes fit in 8 bits (attention Q/K/V/output
projections, both feed-forward layers, the generator) becomes an ``Int8Linear``:

    y = s_x · s_w · (x_q @ (w_q − z_w)ᵀ) + b

with w_q, s_w, z_w the cell's codes, step sizes and zero points as stored, and x_q the input
quantized to int8 **per row** (per token: s_x = max|x_row| / 127). A per-row scale makes each
sentence's output independent of its batch mates, which a per-batch scale (torch's dynamic
quantization) does not. Asymmetric codes (0..255) are shifted by 128 into int8 and the shift is
added back through the row sums of x_q, exactly.

Kernels: ``torch._int_mm`` (int8 × int8 → int32) where the CPU has VNNI; elsewhere the same
integers go through a float32 matmul, which is exact while every partial sum stays below 2**24
(|x_q·w_q| ≤ 127·128 per product, so for inner sizes up to 1,032), so both paths give the same
numbers and the fallback only costs speed. Which path ran is printed once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from tcompress.compress.quantized import QuantizedModule
from tcompress.compress.walker import replace_module
from tcompress.schema import UserError

EXACT_FLOAT32 = 2 ** 24
TINY = torch.finfo(torch.float32).tiny
KERNELS = ("int_mm", "float")


def cpu_has_vnni() -> bool:
    """AVX-512 VNNI or AVX-VNNI: what makes int8 dot products faster than float ones on x86."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def choose_kernel(device: torch.device | str = "cpu") -> tuple[str, str]:
    """The integer kernel for this machine and the one line that says why."""
    if torch.device(device).type != "cpu":
        return "float", f"int8: exact float32 matmuls of the int8 codes on {device} (integer kernels are CPU-only here)"
    if not cpu_has_vnni():
        return "float", "int8: this CPU has no VNNI; the int8 codes run through exact float32 matmuls (same numbers, no speed-up)"
    try:
        torch._int_mm(torch.ones(2, 8, dtype=torch.int8), torch.ones(8, 8, dtype=torch.int8))
    except (RuntimeError, AttributeError) as err:
        return "float", f"int8: torch._int_mm is unavailable ({str(err).splitlines()[0][:80]}); exact float32 matmuls instead"
    return "int_mm", "int8: torch._int_mm (VNNI) for every quantized Linear"


class Int8Linear(nn.Module):
    def __init__(self, codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                 bias: torch.Tensor | None, kernel: str = "int_mm"):
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel {kernel!r}: expected one of {', '.join(KERNELS)}")
        n_out, n_in = codes.shape
        shift = 128 if codes.dtype == torch.uint8 else 0
        self.kernel, self.in_features, self.out_features = kernel, n_in, n_out
        w = (codes.to(torch.int32) - shift).to(torch.int8).t().contiguous()  # (in, out)
        self.register_buffer("weight_t", w if kernel == "int_mm" else w.float())
        self.register_buffer("col_scale", scale.float().expand(n_out).contiguous())
        offset = shift - zero_point.to(torch.int64).expand(n_out)  # x·(q − z) = x·(q − shift) + (shift − z)·Σx
        self.register_buffer("col_offset", offset.float() if bool(offset.any()) else None)  # |offset| ≤ 255
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        if kernel == "float" and n_in * 127 * 128 >= EXACT_FLOAT32:
            self.weight_t = self.weight_t.double()  # float32 sums would round beyond 2**24

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Few, in-place kernels: at decoding sizes each call costs more in dispatch than in arithmetic.
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features).float()                    # (rows, in)
        row_scale = torch.linalg.vector_norm(x2, float("inf"), dim=1, keepdim=True)
        row_scale = row_scale.clamp_(min=TINY).div_(127.0)              # (rows, 1): max|x_row| / 127
        xq = torch.div(x2, row_scale).round_().to(torch.int8)           # (rows, in), |xq| ≤ 127
        if self.kernel == "int_mm":
            acc = torch._int_mm(xq, self.weight_t).float()              # (rows, out), exact int32 sums
        else:
            acc = (xq.to(self.weight_t.dtype) @ self.weight_t).float()  # the same integers in float
        if self.col_offset is not None:
            acc += xq.sum(1, keepdim=True, dtype=torch.int32).float() * self.col_offset
        acc.mul_(row_scale)
        y = acc.mul_(self.col_scale) if self.bias is None else torch.addcmul(self.bias, acc, self.col_scale)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, kernel={self.kernel}"


class CodeEmbedding(nn.Module):
    """An embedding table kept as its codes: the rows a batch looks up are dequantized, never the
    whole table, so the float table (4 bytes a value) is not held in memory. Same formula as
    ``linear_quant.dequantize``: the same floats, bit for bit."""

    def __init__(self, codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor):
        super().__init__()
        self.register_buffer("codes", codes)
        self.register_buffer("scale", scale)
        self.register_buffer("zero_point", zero_point)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        q = self.codes[tokens].to(torch.int64)                            # (..., d_model)
        if self.scale.dim() == 1:  # one step size per row of the table
            return (q - self.zero_point[tokens].unsqueeze(-1)).float() * self.scale[tokens].unsqueeze(-1)
        return (q - self.zero_point).float() * self.scale


def _code_embeddings(model: nn.Module) -> int:
    """Swap the float view inside every quantized Embedding for a ``CodeEmbedding`` (a shared
    source/target table is one module, so it is swapped once)."""
    count = 0
    for m in list(model.modules()):
        if isinstance(m, QuantizedModule) and isinstance(m.inner, nn.Embedding) and "weight" in m.param_names:
            m.inner = CodeEmbedding(m.weight_q, m.weight_scale, m.weight_zero_point)
            count += 1
    return count


def int8_candidates(model: nn.Module) -> list[str]:
    """Names of the quantized Linears whose weight codes fit in int8 (≤ 8 bits)."""
    return [name for name, m in model.named_modules()
            if isinstance(m, QuantizedModule) and isinstance(m.inner, nn.Linear) and m.spec.bits <= 8
            and "weight" in m.param_names]


def to_int8_inference(model: nn.Module, kernel: str | None = None, device: torch.device | str = "cpu",
                      quiet: bool = False) -> dict:
    """Replace, in place, every quantized Linear with codes ≤ 8 bits by an ``Int8Linear`` and every
    quantized Embedding's float table by its codes; returns what was done. Float Linears stay
    float: this never re-quantizes floats."""
    names = int8_candidates(model)
    if not names:
        raise UserError("--int8 needs a cell artifact whose Linear layers are quantized to 8 bits or fewer "
                        "(a ptq/qat cell of group att, ff, gen or full); this model has none")
    reason = f"int8: kernel {kernel} as asked"
    if kernel is None:
        kernel, reason = choose_kernel(device)
    if not quiet:  # stderr: translations may be going to stdout
        print(reason, file=sys.stderr)
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    for name in names:
        wrapper = model.get_submodule(name)
        # The bias the cell computes with: dequantized from its codes, or float where it kept one.
        replace_module(model, wrapper, Int8Linear(wrapper.weight_q, wrapper.weight_scale, wrapper.weight_zero_point,
                                                  wrapper.inner.bias, kernel))
    return {"int8_linears": len(names), "float_linears": n_linear - len(names), "int8_kernel": kernel,
            "code_embeddings": _code_embeddings(model)}
