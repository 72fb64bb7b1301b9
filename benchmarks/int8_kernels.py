"""Candidate int8 kernels for one Linear, per call, at the sizes a decoding step uses.

Usage:
    python benchmarks/int8_kernels.py --threads 2 [--out benchmarks/results/int8_kernels.txt]

For each shape (rows × in → out): float32 ``F.linear``; our ``Int8Linear`` (per-row activation
scales) with every kernel and activation width this CPU runs fast (fbgemm with 8-bit activations
needs VNNI, with 7-bit ones AVX2; ``torch._int_mm`` is a scalar loop without VNNI and is left out
there); the same fbgemm GEMM alone, on an input already divided by its row scales (what the per-row
prologue and epilogue cost is the difference); oneDNN's int8 GEMM (AMX where present) with the
same per-row quantization, where torch has it; fbgemm's ``linear_dynamic`` with ``reduce_range``
(what ``quantize_dynamic`` runs: one 7-bit activation scale per call, so per batch). Microseconds
per call, mean of ``--calls`` after a warm-up.
"""

import platform
import sys
import time
import warnings
from pathlib import Path

import click
import torch
import torch.nn.functional as F

from tcompress.compress.int8_inference import (Int8Linear, RowQuantizer, _quantized_weight, cpu_has_vnni,
                                               fbgemm_static_available)
from tcompress.compress.linear_quant import QuantSpec, quantize_tensor
from int8_speed import cpu_flags  # benchmarks/, on the path when run as a script

SHAPES = ((128, 256, 256), (128, 256, 1024), (128, 1024, 256), (128, 256, 8000), (1, 256, 256), (1, 256, 8000))


def per_call_us(fn, calls: int) -> float:
    for _ in range(5):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def ours() -> list[tuple[str, int]]:
    """(kernel, activation bits) of our Int8Linear that run fast here."""
    runs = [(k, b) for k, b in (("fbgemm", 8), ("fbgemm", 7)) if fbgemm_static_available(b)]
    return runs + ([("int_mm", 8)] if cpu_has_vnni() else [])


def _uncached(layer: Int8Linear, x: torch.Tensor) -> torch.Tensor:
    layer.rows._last = None  # one Linear per input: no q/k/v sibling to share the row quantization with
    return layer(x)


def candidates(rows: int, n_in: int, n_out: int) -> dict:
    torch.manual_seed(0)
    x, w, b = torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(n_out)
    codes = quantize_tensor(w, QuantSpec(8, "sym", per_channel=True))
    qweight = _quantized_weight(codes["q"], codes["scale"], codes["zero_point"])
    packed_bias, packed = torch.ops.quantized.linear_prepack(qweight, b), torch.ops.quantized.linear_prepack(qweight, None)
    table = {"fp32 F.linear": lambda: F.linear(x, w, b)}
    for kernel, bits in ours():
        layer = Int8Linear(codes["q"], codes["scale"], codes["zero_point"], b, kernel, RowQuantizer(bits))
        table[f"ours: {kernel}, {bits}-bit rows"] = lambda layer=layer: _uncached(layer, x)
    bits = 8 if fbgemm_static_available(8) else 7
    scaled, _ = RowQuantizer(bits)(x)
    table[f"fbgemm GEMM alone ({bits}-bit)"] = lambda: torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(
        scaled, 1.0, 2 ** (bits - 1), packed)
    table["fbgemm linear_dynamic (per batch, 7-bit)"] = lambda: torch.ops.quantized.linear_dynamic(x, packed_bias, True)
    if onednn_available():
        table.update(onednn_candidates(x, codes, b))
    return table


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qlinear_pointwise")


def onednn_candidates(x: torch.Tensor, codes: dict, b: torch.Tensor) -> dict:
    """oneDNN's int8 GEMM (AMX where the CPU has it), which takes uint8 codes: the same per-row
    quantization as ours, plus a rounding to uint8 before the call (zero point 128)."""
    n_out = codes["q"].shape[0]
    packed = torch.ops.onednn.qlinear_prepack(codes["q"], list(x.shape))
    w_scale, w_zero = codes["scale"].float().expand(n_out).contiguous(), torch.zeros(n_out, dtype=torch.int64)

    def gemm(xu: torch.Tensor) -> torch.Tensor:  # int32 sums × column scales, float32 out
        return torch.ops.onednn.qlinear_pointwise(xu, 1.0, 128, packed, w_scale, w_zero, None, 1.0, 0,
                                                  torch.float32, "none", [], "")

    def per_row() -> torch.Tensor:
        row_scale = x.abs().amax(1, keepdim=True).clamp_(min=1e-30).div_(127)
        xu = torch.div(x, row_scale).add_(128).round_().to(torch.uint8)  # rounded as ours and fbgemm round
        return torch.addcmul(b, gemm(xu), row_scale)

    xu = torch.div(x, x.abs().amax(1, keepdim=True) / 127).add_(128).round_().to(torch.uint8)
    return {"oneDNN per row (8-bit), as ours would": per_row, "oneDNN GEMM alone": lambda: gemm(xu)}


@click.command()
@click.option("--threads", default=2, show_default=True)
@click.option("--calls", default=200, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="also write the table here, with the command")
def main(threads, calls, out):
    torch.set_num_threads(threads)
    warnings.simplefilter("ignore", UserWarning)  # torch's deprecation notice for quantized tensors
    lines = [f"command: python {' '.join(sys.argv)}",
             f"{platform.processor() or platform.machine()}; cpu flags: {' '.join(cpu_flags())}; VNNI: {cpu_has_vnni()}; "
             f"torch {torch.__version__}; {threads} threads; µs per call, mean of {calls}"]
    table = {shape: {name: per_call_us(fn, calls) for name, fn in candidates(*shape).items()} for shape in SHAPES}
    names = list(next(iter(table.values())))
    lines += ["| rows × in → out | " + " | ".join(names) + " | best of ours × fp32 |", "|---|" + "---|" * (len(names) + 1)]
    for (rows, n_in, n_out), row in table.items():
        best = min(v for n, v in row.items() if n.startswith("ours"))
        lines.append(f"| {rows} × {n_in} → {n_out} | " + " | ".join(f"{row[n]:.1f}" for n in names)
                     + f" | {row['fp32 F.linear'] / best:.2f} |")
    print("\n".join(lines))
    if out:
        Path(out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
