"""Q8BERT-style 8-bit quantization-aware training (Zafrir et al. 2019; seed 003 §3.1).

Symmetric linear quantization with M = 2^(b−1) − 1 for every matrix product's operands: each weight
matrix (Linear, Embedding) by S_W = M / max|W| from its current values, each Linear's float input by
S_x = M / EMA(max|x|), an exponential moving average of the batch's largest magnitude, and the
straight-through estimator in between. It differs from the ``qat`` method's ``sym`` mode in two
places: the activation range is one EMA of max|x| (``qat`` averages min and max separately, then
takes the larger magnitude), and biases stay float (Q8BERT stores them as int32 at S_x·S_W, which is
lossless at these scales). LayerNorm, softmax and the residual sums stay float, as in the paper.
Training runs through the one loop; the export is the same integer artifact as PTQ and QAT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcompress.methods.base import BITS, GROUP, FinetuneParams, Method, register
from tcompress.schema import setting


@dataclass(frozen=True)
class Q8BERTParams(FinetuneParams):
    bits: Optional[tuple[int, ...]] = setting((8,), doc="grid key; null: the top-level bits")
    groups: Optional[tuple[str, ...]] = setting(("full",), doc="grid key; null: the top-level groups")
    ema_decay: float = setting(0.9999, lo=0.0, hi=1.0, doc="EMA of max|x| (Q8BERT's released code: 0.9999); "
                               "the first training batch sets the range outright")
    start_step: int = setting(0, lo=0, doc="delayed start: float forward (ranges tracked) before this step")


def _abs_max_wrapper():
    """The QAT wrapper with Q8BERT's activation statistic; built lazily (it imports torch)."""
    import torch

    from tcompress.compress.qat import FakeQuantModule

    class AbsMaxFakeQuant(FakeQuantModule):
        """``FakeQuantModule`` whose activation range is [−a, a], a = EMA of max|x| over batches."""

        def _track(self, site: str, x: torch.Tensor) -> None:
            peak = x.detach().float().abs().amax()
            lo, hi, seen = (getattr(self, f"{site}_{k}") for k in ("lo", "hi", "seen"))
            m = self.momentum if bool(seen) else 0.0
            hi.copy_(m * hi + (1 - m) * peak)
            lo.copy_(-hi)
            seen.fill_(True)

    return AbsMaxFakeQuant


def compress(model, cell, params: Q8BERTParams, ctx) -> dict:
    from tcompress.compress.codebook import weight_matrices
    from tcompress.compress.linear_quant import QuantSpec
    from tcompress.compress.qat import DelayedStart, export_quantized
    from tcompress.compress.ratio import quantization_ratio
    from tcompress.compress.walker import replace_module
    from tcompress.model import count_parameters

    wrapper_cls = _abs_max_wrapper()
    modules = weight_matrices(model, cell["group"])
    if not modules:
        raise ValueError(f"layer group {cell['group']!r} has no weight matrix to quantize")
    n_model = count_parameters(model)
    n_compressed = sum(m.weight.numel() for m in modules.values())
    spec = QuantSpec(cell["bits"], "sym")
    wrappers = []
    for module in modules.values():
        # An Embedding's input is token ids: ``FakeQuantModule`` leaves non-float inputs alone.
        wrapper = wrapper_cls(module, spec, ("input",), params.ema_decay, params=("weight",))
        replace_module(model, module, wrapper)
        wrappers.append(wrapper)
    facts = ctx.finetune(model, [DelayedStart(wrappers, params.start_step)])
    export_quantized(model)
    return {**facts, "n_model": n_model, "n_compressed": n_compressed,
            "compression_ratio": round(quantization_ratio(n_model, n_compressed, cell["bits"]), 4)}


METHOD = register(Method(
    name="q8bert", title="Q8BERT 8-bit QAT (symmetric, EMA of max|x|)", params=Q8BERTParams, axes=(BITS, GROUP),
    catalog={"bits": (8, 4), "groups": ("full",)}, compress=compress, row_axes=("bits",),
    row_label=lambda v: f"{v['bits']}-bit Sym. (Q8BERT)", order=80,
))
