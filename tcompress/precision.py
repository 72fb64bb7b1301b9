"""Which float precision a run computes in: bf16 only where the device computes it natively.

``precision: auto`` (the default) resolves to bf16 on a CUDA device with bf16 support or a CPU that
oneDNN reports as bf16-capable (AVX-512 BF16 or AMX), and to fp32 elsewhere: on an AVX2-only CPU,
bf16 autocast is emulated and far slower than fp32 (``benchmarks/precision_speed.py`` measures both
on a machine; docs/reproducibility.md gives its numbers).
An explicit ``bf16`` on such a CPU still runs, after one warning. The choice is printed and
recorded in the metrics, since it changes results.
"""

from __future__ import annotations

import sys

import torch


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def resolve_precision(choice: str, device: torch.device | str, quiet: bool = False) -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for this device; ``fp32``/``bf16`` as asked."""
    device = torch.device(device)
    native = native_bf16(device)
    if choice == "auto":
        resolved = "bf16" if native else "fp32"
        if not quiet:
            print(f"precision: auto -> {resolved} ({'native' if native else 'no native'} bf16 on {device.type})",
                  file=sys.stderr)
        return resolved
    if choice == "bf16" and not native and not quiet:
        print(f"warning: precision bf16 on a {device.type} without native bf16 is emulated; expect it to run "
              "many times slower than fp32 (28x measured on an AVX2-only CPU); use precision: auto",
              file=sys.stderr)
    return choice
