"""Integer matmuls for every quantized Linear of a cell, built from its artifact's own codes.

Each ``QuantizedModule`` around an ``nn.Linear`` whose codes fit in 8 bits (attention Q/K/V/output
projections, both feed-forward layers, the generator) computes with int8 × int8 products. Where the
cell quantizes the Linear's input with a calibrated range (PTQ with ``activations: inputs|both``),
``StaticInt8Linear`` quantizes it with exactly that range inside fbgemm's int8 GEMM, which returns
float32 in one call (``quantized::linear_with_input_q_dq_qweight_dq_output_fp32``); the cell's
output quantization stays. A static range is batch-independent and the numbers are the cell's,
up to float rounding. Where the cell has no input range (weight-only cells), the Linear becomes an
``Int8Linear``:

    y = s_x · s_w · (x_q @ (w_q − z_w)ᵀ) + b

with w_q, s_w, z_w the cell's codes, step sizes and zero points as stored, and x_q the input
quantized to int8 **per row** (per token: s_x = max|x_row| / 127), rounded as fbgemm rounds:
x_q = round(x / s_x + 128) − 128, the sum in float32 and the rounding half to even. (Adding 128
first moves a quotient within half a float32 step below k + ½ onto k + ½, which then rounds up:
about one value in 166,000 gets a code one above round(x / s_x). Every kernel rounds this way, so
all give the same numbers.) A per-row scale makes each
sentence's output independent of its batch mates, which a per-batch scale (torch's dynamic
quantization) does not. Asymmetric codes (0..255) are shifted by 128 into int8 and the shift is
added back through the row sums of x_q, exactly.

Kernels, chosen by measurement (``benchmarks/int8_kernels.py``, its outputs per CPU in
``benchmarks/results/int8_kernels*.txt``; whole decodes in BENCHMARKS.md, "int8 decoding on the
CPU"): on a CPU with VNNI, fbgemm's int8 GEMM with a fixed input scale of 1 applied to x / s_x, so that fbgemm's own quantization is the per-row
one above, and the dequantization happens inside the same call (fewer, cheaper calls than
``torch._int_mm``, which is the fallback where fbgemm is missing); elsewhere the same integers go
through a float32 matmul, which is exact while every partial sum stays below 2**24
(|x_q·w_q| ≤ 127·128 per product, so for inner sizes up to 1,032), so all paths give the same
numbers and the fallback only costs speed.

Without VNNI (AVX2 only) fbgemm sums pairs of u8 × s8 products in 16 bits, which full-range 8-bit
activations saturate, and ``torch._int_mm`` is a scalar loop. There the fast path quantizes
activations to **7 bits** per row (s_x = max|x_row| / 63, codes 1..127 after fbgemm's zero point
64), which cannot saturate: other numbers than the 8-bit path, so it is a choice
(``activation_bits``), taken by default only where nothing else is fast (``translate --int8``),
and never for a cell's metrics, which ask for 8 bits and so are the same on every machine. The
static path needs 8-bit inputs and is not taken without VNNI: those cells decode in float as
evaluated. Which path ran is printed once.
"""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from tcompress.compress.quantized import QuantizedModule
from tcompress.compress.walker import replace_module
from tcompress.schema import UserError

EXACT_FLOAT32 = 2 ** 24
TINY = torch.finfo(torch.float32).tiny
KERNELS = ("fbgemm", "int_mm", "float")
ACTIVATION_BITS = (8, 7)


def check_activation_bits(activation_bits: int) -> int:
    if activation_bits not in ACTIVATION_BITS:
        raise ValueError(f"activation_bits {activation_bits}: expected one of {ACTIVATION_BITS}")
    return activation_bits


@functools.cache  # one conversion asks several times; the CPU does not change within a process
def cpu_has_vnni() -> bool:
    """AVX-512 VNNI or AVX-VNNI: what makes int8 dot products faster than float ones on x86."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


@functools.cache
def int_mm_error() -> str | None:
    """Why ``torch._int_mm`` cannot run here, or None where it runs (without VNNI a scalar loop:
    exact, tens of times slower than float)."""
    try:
        torch._int_mm(torch.ones(17, 8, dtype=torch.int8), torch.ones(8, 8, dtype=torch.int8))
    except (RuntimeError, AttributeError) as err:
        return str(err).splitlines()[0][:80]
    return None


def fbgemm_static_available(activation_bits: int = 8) -> bool:
    """fbgemm's int8 GEMM with a static input range and float32 output, for activations of
    ``activation_bits``. Without VNNI fbgemm sums pairs of u8 × s8 products in 16 bits
    (``vpmaddubsw``): full-range 8-bit activations saturate there, 7-bit ones (0..127) cannot
    (2 · 127 · 128 < 2**15)."""
    return (activation_bits <= 7 or cpu_has_vnni()) and "fbgemm" in torch.backends.quantized.supported_engines \
        and hasattr(torch.ops.quantized, "linear_with_input_q_dq_qweight_dq_output_fp32") \
        and hasattr(torch, "_make_per_tensor_quantized_tensor")


def fastest_activation_bits(device: torch.device | str = "cpu") -> int:
    """8, unless the CPU lacks VNNI but has fbgemm: there only 7-bit activations run integer GEMMs."""
    if torch.device(device).type == "cpu" and not cpu_has_vnni() and fbgemm_static_available(7):
        return 7
    return 8


def choose_kernel(device: torch.device | str = "cpu", activation_bits: int = 8) -> tuple[str, str]:
    """The integer kernel for this machine and activation width, and the one line that says why.
    Every kernel gives the same numbers for a given activation width; only speed differs."""
    check_activation_bits(activation_bits)
    if torch.device(device).type != "cpu":
        return "float", f"int8: exact float32 matmuls of the int8 codes on {device} (integer kernels are CPU-only here)"
    vnni = cpu_has_vnni()
    if fbgemm_static_available(activation_bits):
        if vnni:
            return "fbgemm", f"int8: fbgemm's int8 GEMM (VNNI) for every quantized Linear, {activation_bits}-bit activations per row"
        return "fbgemm", ("int8: fbgemm's int8 GEMM (AVX2, no VNNI) for every quantized Linear, 7-bit activations "
                          "per row (8-bit ones would saturate its 16-bit sums)")
    if not vnni:  # torch._int_mm is a scalar loop without VNNI: tens of times slower than float
        return "float", (f"int8: this CPU has no VNNI; the int8 codes and {activation_bits}-bit activations run "
                         "through exact float32 matmuls (same numbers, no speed-up)")
    error = int_mm_error()
    if error is not None:
        return "float", f"int8: torch._int_mm is unavailable ({error}); exact float32 matmuls instead"
    return "int_mm", f"int8: torch._int_mm (VNNI) for every quantized Linear, {activation_bits}-bit activations per row"


class RowQuantizer:
    """Each row of x divided by its scale s_x = max|x_row| / L (L = 2**(bits-1) - 1), so that
    rounding gives the row's codes in [-L, L]. The last input's result is kept: self-attention's
    q, k and v projections read the same tensor, and one quantization then serves all three.
    Holding that tensor keeps its identity from being reused; an in-place change bumps its version."""

    def __init__(self, activation_bits: int = 8):
        self.bits = check_activation_bits(activation_bits)
        self.levels = float(2 ** (activation_bits - 1) - 1)
        self._last: tuple | None = None

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        last = self._last
        if last is not None and last[0] is x and last[1] == x._version:
            return last[2], last[3]
        x2 = x.reshape(-1, x.shape[-1]).float()                          # (rows, in)
        # abs().amax(): torch's inf-norm reduction is not vectorized on CPU (30x slower, a third of a step)
        row_scale = x2.abs().amax(1, keepdim=True).clamp_(min=TINY).div_(self.levels)  # (rows, 1)
        scaled = torch.div(x2, row_scale)                                # (rows, in), |scaled| ≤ L
        self._last = (x, x._version, scaled, row_scale)
        return scaled, row_scale


class Int8Linear(nn.Module):
    """A quantized Linear as int8 codes × per-row activation codes; ``rows`` (8-bit by default)
    fixes the activations' width and may be shared by every Linear of a model."""

    def __init__(self, codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                 bias: torch.Tensor | None, kernel: str = "int_mm", rows: RowQuantizer | None = None):
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel {kernel!r}: expected one of {', '.join(KERNELS)}")
        rows = rows or RowQuantizer(8)
        activation_bits = rows.bits
        if kernel == "fbgemm" and not fbgemm_static_available(activation_bits):
            # without VNNI fbgemm sums u8 × s8 pairs in 16 bits and saturates full-range codes
            raise ValueError(f"kernel 'fbgemm' with {activation_bits}-bit activations needs fbgemm"
                             + (" and a CPU with VNNI (or 7-bit activations)" if activation_bits == 8 else "")
                             + "; use 'int_mm' or 'float'")
        n_out, n_in = codes.shape
        shift = 128 if codes.dtype == torch.uint8 else 0
        self.kernel, self.in_features, self.out_features, self.rows = kernel, n_in, n_out, rows
        signed = (codes.to(torch.int32) - shift).to(torch.int8)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        # The input arrives divided by its row scale; fbgemm's fixed input scale 1 and zero point
        # L + 1 (codes 1..2L+1) then quantize every row per row, and the other kernels round alike.
        self.input_zero_point = int(rows.levels) + 1
        if kernel == "fbgemm":
            # fbgemm owns a packed copy of the codes and applies the column scales itself
            qweight = _quantized_weight(signed, scale, zero_point.to(torch.int64) - shift)
            self.packed = torch.ops.quantized.linear_prepack(qweight, None)
            self.weight_t = self.col_offset = self.col_scale = None
            return
        self.register_buffer("col_scale", scale.float().expand(n_out).contiguous())
        w = signed.t().contiguous()  # (in, out)
        self.register_buffer("weight_t", w if kernel == "int_mm" else w.float())
        offset = shift - zero_point.to(torch.int64).expand(n_out)  # x·(q − z) = x·(q − shift) + (shift − z)·Σx
        self.register_buffer("col_offset", offset.to(torch.int32) if bool(offset.any()) else None)
        if kernel == "float" and n_in * 127 * 128 >= EXACT_FLOAT32:
            self.weight_t = self.weight_t.double()  # float32 sums would round beyond 2**24

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Few, in-place kernels: at decoding sizes each call costs more in dispatch than in arithmetic.
        lead = x.shape[:-1]
        scaled, row_scale = self.rows(x)                                 # (rows, in), (rows, 1)
        if self.kernel == "fbgemm":  # quantize (round half to even, + L + 1), int8 GEMM, × column scales
            y = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(
                scaled, 1.0, self.input_zero_point, self.packed)        # (rows, out) = acc · col_scale
        else:
            z = self.input_zero_point  # fbgemm's rounding: of x / s_x + z in float32, then − z
            xq = (scaled + z).round_().sub_(z).to(torch.int8)          # (rows, in), |xq| ≤ L
            if self.kernel == "int_mm":
                acc = torch._int_mm(xq, self.weight_t)                  # (rows, out) int32, exact
            else:  # the same integers through a float matmul, exact below 2**24, back to int32
                acc = (xq.to(self.weight_t.dtype) @ self.weight_t).to(torch.int32)
            if self.col_offset is not None:
                acc += xq.sum(1, keepdim=True, dtype=torch.int32) * self.col_offset
            y = acc * self.col_scale                                    # the order fbgemm rounds in
        y = y.mul_(row_scale) if self.bias is None else torch.addcmul(self.bias, y, row_scale)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, kernel={self.kernel}, activations={self.rows.bits} bits"


def _quantized_weight(signed: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """int8 codes as the quantized tensor fbgemm packs (per output row or per tensor)."""
    with warnings.catch_warnings():  # quantized tensors are deprecated in torch; the torch cap keeps them
        warnings.simplefilter("ignore", UserWarning)
        if scale.dim() == 1:
            return torch._make_per_channel_quantized_tensor(signed, scale.double(), zero_point.to(torch.int64), 0)
        return torch._make_per_tensor_quantized_tensor(signed, float(scale), int(zero_point))


class StaticInt8Linear(nn.Module):
    """The Linear inside a ``QuantizedModule`` whose input the cell quantizes with a calibrated
    range: fbgemm quantizes the input with that range, multiplies int8 by int8 with int32 sums
    and returns float32, in one call. Weights are the artifact's codes (asymmetric ones shifted
    into int8 with their zero points, the same values); a symmetric input range is expressed as
    unsigned codes with zero point 128."""

    def __init__(self, wrapper: QuantizedModule, bias: torch.Tensor | None):
        super().__init__()
        codes, scale, zero_point = wrapper.weight_q, wrapper.weight_scale, wrapper.weight_zero_point
        shift = 128 if codes.dtype == torch.uint8 else 0
        signed = (codes.to(torch.int32) - shift).to(torch.int8)
        self.out_features, self.in_features = codes.shape
        qweight = _quantized_weight(signed, scale, zero_point.to(torch.int64) - shift)
        self.packed = torch.ops.quantized.linear_prepack(qweight, None if bias is None else bias.detach().float())
        self.x_scale = float(wrapper.input_scale)
        self.x_zero_point = int(wrapper.input_zero_point) + (128 if wrapper.spec.mode == "sym" else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(
            x.reshape(-1, self.in_features).float(), self.x_scale, self.x_zero_point, self.packed)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, input scale={self.x_scale:.4g}"


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
                      quiet: bool = False, activation_bits: int | None = None) -> dict:
    """Make every quantized Linear with codes ≤ 8 bits compute with int8 products (static where the
    cell calibrated its input, per row otherwise) and keep every quantized Embedding as its codes;
    returns what was done. Float Linears stay float: this never re-quantizes floats.

    ``activation_bits`` (8 or 7) is the width of the per-row activation codes, which fixes the
    numbers; ``None`` takes the fastest on this machine (7 on a CPU without VNNI). A result that must
    not depend on the machine (a cell's metrics) asks for 8: there every kernel computes the same."""
    names = int8_candidates(model)
    if not names:
        raise UserError("--int8 needs a cell artifact whose Linear layers are quantized to 8 bits or fewer "
                        "(a ptq/qat cell of group att, ff, gen or full); this model has none")
    if activation_bits is None:
        activation_bits = fastest_activation_bits(device)
    reason = f"int8: kernel {kernel} as asked, {activation_bits}-bit activations per row"
    if kernel is None:
        kernel, reason = choose_kernel(device, activation_bits)
    static = kernel != "float" and torch.device(device).type == "cpu" and fbgemm_static_available(8)
    rows = RowQuantizer(activation_bits)  # shared: q/k/v projections of one input quantize it once
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    counts = {"static": 0, "per_row": 0, "float_as_evaluated": 0}
    for name in names:
        wrapper = model.get_submodule(name)
        if "input" in wrapper.sites and wrapper.act_bits == 8 and static:
            # The Linear quantizes its input itself, with the cell's range; the output site stays.
            wrapper.inner = StaticInt8Linear(wrapper, wrapper.inner.bias)
            wrapper.sites = tuple(s for s in wrapper.sites if s != "input")
            for pname in wrapper.param_names:  # fbgemm holds its own packed copy of the codes
                setattr(wrapper, f"{pname}_q", None)
            counts["static"] += 1
        elif "input" in wrapper.sites:
            counts["float_as_evaluated"] += 1  # no integer kernel that reproduces a static range here
        else:
            # The bias the cell computes with: dequantized from its codes, or float where it kept one.
            replace_module(model, wrapper, Int8Linear(wrapper.weight_q, wrapper.weight_scale,
                                                      wrapper.weight_zero_point, wrapper.inner.bias, kernel,
                                                      rows))
            counts["per_row"] += 1
    if counts["static"]:
        reason += f"; fbgemm's int8 GEMM with the cell's calibrated input ranges for {counts['static']} of them"
    if counts["float_as_evaluated"]:
        reason += f"; {counts['float_as_evaluated']} Linears with calibrated input ranges stay float (no VNNI)"
    if not quiet:  # stderr: translations may be going to stdout
        print(reason, file=sys.stderr)
    int8 = counts["static"] + counts["per_row"]
    return {"int8_linears": int8, "float_linears": n_linear - int8, "int8_kernel": kernel,
            "int8_activation_bits": activation_bits,
            "int8_static_linears": counts["static"], "code_embeddings": _code_embeddings(model)}
