"""precision: auto takes bf16 only where the device computes it natively."""

import torch

from tcompress import precision
from tcompress.precision import resolve_precision


def test_auto_is_fp32_without_native_bf16(monkeypatch, capsys):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert "auto -> fp32 (no native bf16 on cpu)" in capsys.readouterr().err


def test_auto_is_bf16_with_native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu", quiet=True) == "bf16"


def test_explicit_choices_are_kept_and_slow_bf16_warns(monkeypatch, capsys):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert capsys.readouterr().err == ""
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert "warning: precision bf16" in capsys.readouterr().err


def test_the_probe_agrees_with_the_cpu_flags():
    """oneDNN computes bf16 natively with AVX-512 BF16 or AMX; the probe must say so exactly then."""
    import platform

    import pytest

    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("CPU flags are read from /proc/cpuinfo on x86-64 Linux")
    flags = set(open("/proc/cpuinfo").read().split())
    assert precision.cpu_has_native_bf16() == bool({"avx512_bf16", "amx_bf16"} & flags)
