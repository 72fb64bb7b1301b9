"""Training tokens/s in fp32 and in bf16 autocast on this machine, and what `precision: auto` picks.

    python benchmarks/precision_speed.py --steps 8

A d256 3+3 model (the default) on random batches of ~3,000 target tokens, 2 warm-up steps.
"""

import platform
import time

import click
import torch
import torch.nn.functional as F

from tcompress.config import ModelConfig
from tcompress.model import Vocab, make_model
from tcompress.precision import cpu_has_native_bf16, resolve_precision


def tokens_per_second(precision: str, steps: int, batch: int = 60, length: int = 50) -> float:
    torch.manual_seed(0)
    model = make_model(ModelConfig(), Vocab(8000, 8000))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    src = torch.randint(4, 8000, (batch, length))
    tgt = torch.randint(4, 8000, (batch, length + 1))
    total, tokens = 0.0, 0
    for step in range(steps + 2):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(src, tgt[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 2:
            total += time.perf_counter() - start
            tokens += batch * length
    return tokens / total


@click.command()
@click.option("--steps", default=8, show_default=True)
def main(steps: int) -> None:
    flags = open("/proc/cpuinfo").read() if platform.system() == "Linux" else ""
    seen = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    click.echo(f"CPU flags: {' '.join(seen) or 'unknown'}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    click.echo(f"oneDNN native bf16: {cpu_has_native_bf16()}; precision auto -> {resolve_precision('auto', 'cpu', quiet=True)}")
    fp32 = tokens_per_second("fp32", steps)
    bf16 = tokens_per_second("bf16", steps)
    click.echo(f"fp32 {fp32:,.0f} tokens/s, bf16 autocast {bf16:,.0f} tokens/s (bf16/fp32 = {bf16 / fp32:.2f})")


if __name__ == "__main__":
    main()
