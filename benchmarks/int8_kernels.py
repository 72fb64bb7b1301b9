"""Candidate int8 kernels for one Linear, per call, at the sizes a decoding step uses.

Usage:
    python benchmarks/int8_kernels.py --threads 2

For each shape (rows × in → out): float32 ``F.linear``; our ``Int8Linear`` (per-row activation
scales, ``torch._int_mm``); fbgemm's ``linear_dynamic`` (what ``quantize_dynamic`` runs: one
activation scale per call, so per batch); fbgemm with a static input range and float32 output
(what ``StaticInt8Linear`` runs); oneDNN's ``qlinear_pointwise`` with per-row scales applied around
it. Microseconds per call, mean of ``--calls`` after a warm-up.
"""

import platform
import time
import warnings

import click
import torch
import torch.nn.functional as F

from tcompress.compress.int8_inference import Int8Linear, cpu_has_vnni
from tcompress.compress.linear_quant import QuantSpec, quantize_tensor

SHAPES = ((128, 256, 256), (128, 256, 1024), (128, 1024, 256), (128, 256, 8000), (1, 256, 256), (1, 256, 8000))
TINY = torch.finfo(torch.float32).tiny


def per_call_us(fn, calls: int) -> float:
    for _ in range(5):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def candidates(rows: int, n_in: int, n_out: int) -> dict:
    torch.manual_seed(0)
    x, w, b = torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(n_out)
    codes = quantize_tensor(w, QuantSpec(8, "sym", per_channel=True))
    ours = Int8Linear(codes["q"], codes["scale"], codes["zero_point"], b, "int_mm")
    qweight = torch._make_per_channel_quantized_tensor(codes["q"], codes["scale"].double(),
                                                       codes["zero_point"], 0)
    packed = torch.ops.quantized.linear_prepack(qweight, b)
    x_scale = float(x.abs().max() / 127)
    onednn = torch.ops.onednn.qlinear_prepack(codes["q"], None)
    w_scale, w_zero = codes["scale"].contiguous(), torch.zeros(n_out, dtype=torch.long)

    def onednn_per_row():
        s = torch.linalg.vector_norm(x, float("inf"), dim=1).clamp_(min=TINY).div_(127.0)
        xq = torch.quantize_per_channel(x, s, torch.full((rows,), 128), 0, torch.quint8).int_repr()
        y = torch.ops.onednn.qlinear_pointwise(xq, 1.0, 128, onednn, w_scale, w_zero, None, 1.0, 0,
                                               torch.float32, "none", [], "")
        return torch.addcmul(b, y, s[:, None])

    return {"fp32 F.linear": lambda: F.linear(x, w, b),
            "ours: per-row + torch._int_mm": lambda: ours(x),
            "fbgemm linear_dynamic (per batch)": lambda: torch.ops.quantized.linear_dynamic(x, packed, False),
            "fbgemm static range, fp32 out": lambda: torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(
                x, x_scale, 128, packed),
            "oneDNN qlinear, per-row scales": onednn_per_row}


@click.command()
@click.option("--threads", default=2, show_default=True)
@click.option("--calls", default=200, show_default=True)
def main(threads, calls):
    torch.set_num_threads(threads)
    warnings.simplefilter("ignore", UserWarning)  # torch's deprecation notice for quantized tensors
    print(f"{platform.processor() or platform.machine()}; VNNI: {cpu_has_vnni()}; torch {torch.__version__}; "
          f"{threads} threads; µs per call, mean of {calls}")
    table = {shape: {name: per_call_us(fn, calls) for name, fn in candidates(*shape).items()} for shape in SHAPES}
    names = list(next(iter(table.values())))
    print("| rows × in → out | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for (rows, n_in, n_out), row in table.items():
        print(f"| {rows} × {n_in} → {n_out} | " + " | ".join(f"{row[n]:.1f}" for n in names) + " |")


if __name__ == "__main__":
    main()
