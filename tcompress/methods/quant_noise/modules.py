"""Quant-Noise (Fan et al. 2021, seed 003): quantize a random subset of weight blocks per step.

Training a network fully quantized (QAT) biases the gradient of every weight through the
straight-through estimator; Quant-Noise quantizes only a random fraction p of the blocks of each
weight matrix in each forward pass, so the rest see the unbiased float gradient. A block is
``block`` consecutive weights of one row (the subvector of product quantization; 1 = single weights).

- ``NoisyScalarModule`` (int8, int4): the selected blocks take their fake-quantized values with the
  straight-through gradient, the rest stay float; p = 1 is plain QAT. Evaluation (validation during
  training, and the export) quantizes every block.
- ``IPQTrainingModule`` (iterative product quantization): before the matrix is quantized, the
  paper's proxy noise drops the selected blocks (zero, the rest scaled by 1/(1 − p), as fairseq's
  ``quant_noise``), since running k-means for every step's noise would be far too slow; once
  ``IPQSchedule`` quantizes it (k-means over its current subvectors), it computes with
  ``codebook[codes]``, indices fixed and centroids trained by their members' summed gradients.
- ``IPQSchedule`` quantizes the matrices bottom-up in ``stages`` groups, spread evenly over the
  fine-tuning budget, so that what is above a quantized layer adapts to it (Stock et al.'s iPQ).

Both wrappers keep their state in parameters and buffers, so a resumed run continues exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from tcompress.compress.linear_quant import QuantSpec, fake_quantize_ste, qparams, tensor_range
from tcompress.compress.quantized import QuantizedModule
from tcompress.compress.walker import replace_module
from tcompress.methods.quant_noise.product_quant import ProductCodebookModule, gather, quantize_matrix
from tcompress.training import Hook


def block_mask(weight: torch.Tensor, block: int, rate: float) -> torch.Tensor:
    """True for the weights of the blocks drawn (each independently with probability ``rate``)."""
    rows, cols = weight.shape
    drawn = torch.rand(rows, cols // block, device=weight.device) < rate                # (rows, blocks)
    return drawn.repeat_interleave(block, dim=1)                                        # (rows, cols)


class NoisyScalarModule(nn.Module):
    def __init__(self, inner: nn.Module, spec: QuantSpec, rate: float, block: int):
        super().__init__()
        if inner.weight.shape[1] % block:
            raise ValueError(f"a weight of {inner.weight.shape[1]} columns does not split into blocks of {block}")
        self.inner, self.spec, self.rate, self.block = inner, spec, rate, block

    def noisy_weight(self) -> torch.Tensor:
        w = self.inner.weight
        scale, zero_point = qparams(*tensor_range(w, self.spec.per_channel), self.spec)
        w_q = fake_quantize_ste(w, scale, zero_point, self.spec)
        if not self.training or self.rate >= 1:
            return w_q
        return torch.where(block_mask(w, self.block, self.rate), w_q, w)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return functional_call(self.inner, {"weight": self.noisy_weight()}, (x, *args), kwargs)

    def to_quantized(self) -> QuantizedModule:
        return QuantizedModule.from_float(self.inner, self.spec, {}, params=("weight",))


class IPQTrainingModule(nn.Module):
    def __init__(self, inner: nn.Module, rate: float, block: int, centroids: int):
        super().__init__()
        rows, cols = inner.weight.shape
        if cols % block:
            raise ValueError(f"a weight of {cols} columns does not split into blocks of {block}")
        self.inner, self.rate, self.block = inner, rate, block
        # A parameter from the start, so the optimizer built before training holds it; it gets no
        # gradient (and Adam leaves it alone) until the matrix is quantized.
        self.codebook = nn.Parameter(torch.zeros(centroids, block))
        self.register_buffer("codes", torch.zeros(rows, cols // block, dtype=torch.uint8))
        self.register_buffer("quantized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def quantize(self, iterations: int, seed: int) -> None:
        """k-means over the current weight's subvectors; from now on the codebook computes."""
        codes, centroids = quantize_matrix(self.inner.weight, self.block, self.codebook.shape[0], iterations, seed)
        self.codes.copy_(codes)
        self.codebook.copy_(centroids)
        self.quantized.fill_(True)

    def effective_weight(self) -> torch.Tensor:
        if bool(self.quantized):
            return gather(self.codebook, self.codes)
        w = self.inner.weight
        if not self.training or self.rate <= 0:
            return w
        return w.masked_fill(block_mask(w, self.block, self.rate), 0.0) / (1 - self.rate)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return functional_call(self.inner, {"weight": self.effective_weight()}, (x, *args), kwargs)

    def to_stored(self, codebook_bits: int) -> ProductCodebookModule:
        if not bool(self.quantized):
            raise RuntimeError("this matrix was never quantized: the schedule did not reach its stage")
        return ProductCodebookModule.from_codes(self.inner, self.codes.clone(), self.codebook.detach().clone(),
                                                codebook_bits)


def stage_starts(total_steps: int, stages: int) -> list[int]:
    """The step at which each stage is quantized: the budget cut into ``stages + 1`` equal parts, the
    first one noise only, so every stage gets fine-tuning both before and after it is quantized."""
    return [round((s + 1) * total_steps / (stages + 1)) for s in range(stages)]


class IPQSchedule(Hook):
    """Quantizes ``groups[s]`` (lists of ``IPQTrainingModule``, bottom-up) once ``starts[s]`` steps
    have been taken; which groups are quantized is read from the modules, so resumes agree."""

    def __init__(self, groups: list[list[IPQTrainingModule]], starts: list[int], iterations: int, seed: int):
        self.groups, self.starts, self.iterations, self.seed = groups, starts, iterations, seed

    def _catch_up(self, step: int) -> None:
        for s, (group, start) in enumerate(zip(self.groups, self.starts)):
            if step >= start:
                for i, module in enumerate(group):
                    if not bool(module.quantized):
                        module.quantize(self.iterations, self.seed + 1000 * s + i)

    def on_train_start(self, model, state) -> None:
        self._catch_up(state.step)

    def on_step_end(self, model, state) -> None:
        self._catch_up(state.step)


def split_stages(modules: list, stages: int) -> list[list]:
    """``modules`` (bottom-up) in ``stages`` contiguous groups of near-equal size (fewer if too few)."""
    stages = max(1, min(stages, len(modules)))
    bounds = [round(s * len(modules) / stages) for s in range(stages + 1)]
    return [modules[bounds[s]:bounds[s + 1]] for s in range(stages)]


def export(model: nn.Module, codebook_bits: int = 32) -> int:
    """Every training wrapper replaced by its stored form; returns how many."""
    wrappers = [m for m in model.modules() if isinstance(m, (NoisyScalarModule, IPQTrainingModule))]
    for m in wrappers:
        m.eval()
        stored = m.to_quantized() if isinstance(m, NoisyScalarModule) else m.to_stored(codebook_bits)
        replace_module(model, m, stored)
    return len(wrappers)
