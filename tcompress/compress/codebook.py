"""Weights as a codebook plus one index per weight, and weights trained through a quantizer.

Two wrappers any method may use; neither knows which method made it:

- ``CodebookModule`` is the stored form of weight sharing (k-means, Deep Compression style) and of
  binarization: the wrapped module's ``weight`` becomes ``weight_codes`` (one index per weight,
  uint8) and ``weight_codebook`` (``(rows, K)`` floats: one codebook for the tensor, rows = 1, or
  one per output row), and the module computes with ``codebook[codes]``. The artifact stores the
  codes bit-packed at their bit length and the codebook as floats, so a file's bytes count both.
  Built ``trainable``, the codebook is a parameter and the weight is gathered in every forward, so
  each centroid's gradient is the sum of its members' gradients (gather's backward is a scatter-add:
  Deep Compression's centroid fine-tuning) while the indices stay fixed; ``freeze`` ends training.
- ``ShadowWeightModule`` keeps the float weight as the shadow the optimizer updates and computes
  with ``quantizer(weight)`` (binarization, two-centroid BS-Flex, QSGD's stochastic rounding):
  the quantizer owns the gradient rule (straight-through) and may keep buffers (fixed centroids).
  The method exports it to a stored form when training ends.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

from tcompress.compress.artifact import StoredForm


def gather_rows(codebook: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``codebook[r, codes[...]]`` per row r of the weight (one shared row when ``codebook`` has one)."""
    rows = codebook.shape[0]
    flat = codes.reshape(rows, -1).long()                              # (rows, weights per row)
    return codebook.gather(1, flat).reshape(codes.shape)


class CodebookModule(StoredForm, nn.Module, kind="codebook"):
    def __init__(self, inner: nn.Module, bits: int, rows: int, trainable: bool = False):
        """An empty shell around ``inner`` (its ``weight`` replaced); fill it with ``from_codes`` or
        ``load_state_dict``. ``rows``: 1 for one codebook per tensor, else the weight's first dim."""
        super().__init__()
        if not 1 <= bits <= 8:
            raise ValueError(f"codebook bits: {bits} is out of range; expected 1 to 8")
        weight = inner.weight
        if rows not in (1, weight.shape[0]):
            raise ValueError(f"codebook rows: {rows}; expected 1 or the weight's {weight.shape[0]} rows")
        self.bits, self.rows = bits, rows
        self.register_buffer("weight_codes", torch.zeros(weight.shape, dtype=torch.uint8))
        codebook = torch.zeros(rows, 2 ** bits)
        if trainable:
            self.weight_codebook = nn.Parameter(codebook)
        else:
            self.register_buffer("weight_codebook", codebook)
        # The float module keeps computing; its weight becomes a derived, unsaved buffer.
        del inner._parameters["weight"]
        inner.register_buffer("weight", weight.detach().clone(), persistent=False)
        self.inner = inner
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh())

    @classmethod
    def from_codes(cls, inner: nn.Module, codes: torch.Tensor, codebook: torch.Tensor, bits: int,
                   trainable: bool = False) -> "CodebookModule":
        if codes.shape != inner.weight.shape:
            raise ValueError(f"codes {tuple(codes.shape)} do not match the weight {tuple(inner.weight.shape)}")
        if int(codes.min()) < 0 or int(codes.max()) >= 2 ** bits:
            raise ValueError(f"codes outside 0..{2 ** bits - 1}")
        module = cls(inner, bits, codebook.shape[0], trainable)
        with torch.no_grad():
            module.weight_codes.copy_(codes)
            module.weight_codebook.copy_(codebook.reshape(module.weight_codebook.shape))
        module.refresh()
        return module

    @classmethod
    def shell(cls, inner: nn.Module, info: dict) -> "CodebookModule":
        return cls(inner, info["bits"], info["rows"])

    @property
    def trainable(self) -> bool:
        return isinstance(self.weight_codebook, nn.Parameter)

    def dequantized(self) -> torch.Tensor:
        return gather_rows(self.weight_codebook, self.weight_codes)

    @torch.no_grad()
    def refresh(self) -> None:
        """Recompute the float view of the weight from codes and codebook."""
        self.inner.weight = self.dequantized().detach().to(self.inner.weight.device)

    @torch.no_grad()
    def freeze(self) -> None:
        """The trained codebook becomes a plain buffer (the stored form)."""
        if self.trainable:
            codebook = self.weight_codebook.detach().clone()
            del self._parameters["weight_codebook"]
            self.register_buffer("weight_codebook", codebook)
        self.refresh()

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.trainable:
            return functional_call(self.inner, {"weight": self.dequantized()}, (x, *args), kwargs)
        return self.inner(x, *args, **kwargs)

    def describe(self) -> dict:
        """What the artifact records to rebuild this shell before loading its state."""
        return {"bits": self.bits, "rows": self.rows}

    def parameter_bits(self) -> int:
        """One index per weight at the code width; the codebook is not counted."""
        return self.weight_codes.numel() * self.bits

    def nonzero_bits(self) -> int:
        """Nonzero weights at the code width (the formula ratio of a pruned, then shared model)."""
        return int(torch.count_nonzero(self.dequantized())) * self.bits

    def stored_bits(self) -> int:
        return self.weight_codes.numel() * self.bits + 32 * self.weight_codebook.numel()

    def extra_repr(self) -> str:
        return f"bits={self.bits}, codebooks={self.rows}, trainable={self.trainable}"


class ShadowWeightModule(nn.Module):
    """Computes with ``quantizer(inner.weight)``; the float weight stays the trained parameter."""

    def __init__(self, inner: nn.Module, quantizer: Callable[[torch.Tensor], torch.Tensor] | nn.Module):
        super().__init__()
        self.inner, self.quantizer = inner, quantizer

    def quantized_weight(self) -> torch.Tensor:
        return self.quantizer(self.inner.weight)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return functional_call(self.inner, {"weight": self.quantized_weight()}, (x, *args), kwargs)


def straight_through(w: torch.Tensor, w_q: torch.Tensor) -> torch.Tensor:
    """``w_q`` in the forward pass, exactly, and the identity's gradient to ``w`` in the backward one
    (STE). (``w + (w_q − w).detach()`` would round: a binarized tensor would take more than two values.)"""
    return w_q.detach() + (w - w.detach())


def weight_matrices(model: nn.Module, group: str) -> dict[str, nn.Module]:
    """The selected modules that own a weight matrix (Linear, Embedding), a shared module once."""
    from tcompress.layer_groups import select_modules

    out: dict[str, nn.Module] = {}
    for name, module in select_modules(model, group).items():
        w = dict(module.named_parameters(recurse=False)).get("weight")
        if w is not None and w.dim() >= 2 and all(m is not module for m in out.values()):
            out[name] = module
    return out


def shadow_weights(model: nn.Module, group: str, quantizer_for: Callable[[nn.Module], Callable]) -> list:
    """Every weight matrix of ``group`` replaced, in place, by a ``ShadowWeightModule`` that computes
    with ``quantizer_for(module)``; the wrappers, for the method's export once training ends."""
    from tcompress.compress.walker import replace_module

    modules = weight_matrices(model, group)
    if not modules:
        raise ValueError(f"layer group {group!r} has no weight matrix to quantize")
    wrappers = []
    for module in modules.values():
        wrapper = ShadowWeightModule(module, quantizer_for(module))
        replace_module(model, module, wrapper)
        wrappers.append(wrapper)
    return wrappers


def coded_weights(model: nn.Module) -> int:
    """Weights held as codebook indices (each shared tensor once): the n_c of the ratio formula."""
    return sum(m.weight_codes.numel() for m in {id(m): m for m in model.modules()
                                                  if isinstance(m, CodebookModule)}.values())
