"""Product quantization of weight matrices (Stock et al. 2020; Fan et al.'s iPQ, seed 003).

Each row of a weight matrix (Linear: ``(out, in)``, Embedding: ``(vocab, d_model)``) is cut into
subvectors of ``block`` consecutive entries; one codebook of K centroids (``(K, block)``) per matrix
is learned by k-means over all its subvectors, and every subvector is stored as the index of its
nearest centroid: log2(K) bits per ``block`` weights (8 bits per 8 weights at K = 256: 32× fewer
bits than float32), plus the codebook.

``ProductCodebookModule`` is the stored form (kind ``pq``): ``weight_codes`` (``(rows, cols/block)``,
uint8) and the codebook, float32 (``weight_codebook``) or int8 with one step size
(``weight_codebook_q``, ``weight_codebook_scale``: "iPQ & int8"). The wrapped module computes with
``codebook[codes]``, a derived, unsaved buffer, as ``CodebookModule`` does for scalar codebooks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tcompress.compress.artifact import StoredForm

CODEBOOK_BITS = (32, 8)


def subvectors(weight: torch.Tensor, block: int) -> torch.Tensor:
    """``(rows, cols)`` -> ``(rows · cols/block, block)``: each row cut into consecutive blocks."""
    rows, cols = weight.shape
    if cols % block:
        raise ValueError(f"a weight of {cols} columns does not split into blocks of {block}")
    return weight.detach().float().reshape(rows * cols // block, block)


def nearest(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Index of each row of ``x`` (n, d)'s nearest centroid (K, d), by squared distance, in chunks
    so that the (chunk, K) distance matrix stays small."""
    c_sq = (centroids * centroids).sum(1)                                   # (K,)
    out = torch.empty(x.shape[0], dtype=torch.long)
    for i in range(0, x.shape[0], chunk):
        part = x[i:i + chunk]
        # |x − c|² = |x|² − 2 x·c + |c|²; |x|² is the same for every c, so it drops out of the argmin.
        out[i:i + chunk] = (c_sq - 2 * part @ centroids.T).argmin(1)
    return out


def kmeans(x: torch.Tensor, k: int, iterations: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means of the rows of ``x`` (n, d): (codes (n,), centroids (k, d)). Seeded by k
    distinct rows drawn at random (rows repeat only when n < k); an empty cluster is re-seeded with
    the row farthest from its centroid, so no codebook entry is wasted."""
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    pick = torch.randperm(n, generator=gen)[:k]
    if n < k:
        pick = torch.cat([pick, torch.randint(n, (k - n,), generator=gen)])
    centroids = x[pick].clone()
    codes = nearest(x, centroids)
    for _ in range(iterations):
        counts = torch.bincount(codes, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, codes, x)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
        empty = (counts == 0).nonzero().flatten()
        if len(empty) and n >= k:
            error = ((x - centroids[codes]) ** 2).sum(1)
            centroids[empty] = x[error.topk(len(empty)).indices]
        new = nearest(x, centroids)
        if torch.equal(new, codes):
            break
        codes = new
    return codes, centroids


def quantize_matrix(weight: torch.Tensor, block: int, k: int, iterations: int, seed: int):
    """Codes ``(rows, cols/block)`` (uint8) and codebook ``(k, block)`` of one weight matrix."""
    if not 2 <= k <= 256:
        raise ValueError(f"centroids: {k}; expected 2 to 256 (codes are stored in one byte at most)")
    codes, centroids = kmeans(subvectors(weight, block), k, iterations, seed)
    return codes.to(torch.uint8).reshape(weight.shape[0], -1), centroids


def gather(codebook: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """The weight a codebook and its codes stand for: ``(rows, cols/block)`` codes -> ``(rows, cols)``."""
    rows, blocks = codes.shape
    return codebook[codes.long()].reshape(rows, blocks * codebook.shape[1])   # (rows, blocks, block) -> (rows, cols)


def int8_codebook(codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 codes and the one step size of a codebook (max |c| ↦ 127)."""
    scale = codebook.abs().max().clamp(min=torch.finfo(torch.float32).tiny) / 127
    return torch.clamp(torch.round(codebook * (1.0 / scale)), -127, 127).to(torch.int8), scale


class ProductCodebookModule(StoredForm, nn.Module, kind="pq"):
    def __init__(self, inner: nn.Module, block: int, centroids: int, codebook_bits: int = 32):
        """An empty shell around ``inner`` (its ``weight`` replaced); fill it with ``from_codes`` or
        ``load_state_dict``."""
        super().__init__()
        if codebook_bits not in CODEBOOK_BITS:
            raise ValueError(f"codebook_bits: {codebook_bits}; expected one of {CODEBOOK_BITS}")
        weight = inner.weight
        rows, cols = weight.shape
        if cols % block:
            raise ValueError(f"a weight of {cols} columns does not split into blocks of {block}")
        self.block, self.centroids, self.codebook_bits = block, centroids, codebook_bits
        self.register_buffer("weight_codes", torch.zeros(rows, cols // block, dtype=torch.uint8))
        if codebook_bits == 32:
            self.register_buffer("weight_codebook", torch.zeros(centroids, block))
        else:
            self.register_buffer("weight_codebook_q", torch.zeros(centroids, block, dtype=torch.int8))
            self.register_buffer("weight_codebook_scale", torch.ones(()))
        del inner._parameters["weight"]
        inner.register_buffer("weight", weight.detach().clone(), persistent=False)
        self.inner = inner
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh())

    @classmethod
    def from_codes(cls, inner: nn.Module, codes: torch.Tensor, codebook: torch.Tensor,
                   codebook_bits: int = 32) -> "ProductCodebookModule":
        module = cls(inner, codebook.shape[1], codebook.shape[0], codebook_bits)
        if codes.shape != module.weight_codes.shape:
            raise ValueError(f"codes {tuple(codes.shape)}; expected {tuple(module.weight_codes.shape)}")
        with torch.no_grad():
            module.weight_codes.copy_(codes)
            if codebook_bits == 32:
                module.weight_codebook.copy_(codebook)
            else:
                q, scale = int8_codebook(codebook.detach().float())
                module.weight_codebook_q.copy_(q)
                module.weight_codebook_scale.copy_(scale)
        module.refresh()
        return module

    @classmethod
    def shell(cls, inner: nn.Module, info: dict) -> "ProductCodebookModule":
        return cls(inner, info["block"], info["centroids"], info["codebook_bits"])

    def codebook(self) -> torch.Tensor:
        if self.codebook_bits == 32:
            return self.weight_codebook
        return self.weight_codebook_q.float() * self.weight_codebook_scale

    @torch.no_grad()
    def refresh(self) -> None:
        self.inner.weight = gather(self.codebook(), self.weight_codes).to(self.inner.weight.device)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.inner(x, *args, **kwargs)

    def describe(self) -> dict:
        return {"block": self.block, "centroids": self.centroids, "codebook_bits": self.codebook_bits}

    def index_bits(self) -> int:
        return self.weight_codes.numel() * math.ceil(math.log2(self.centroids))

    def parameter_bits(self) -> int:
        """The indices; the codebook is not counted."""
        return self.index_bits()

    def stored_bits(self) -> int:
        """Indices at log2(K) bits, the codebook at its width (its int8 step size at 32)."""
        book = self.centroids * self.block * self.codebook_bits
        return self.index_bits() + book + (32 if self.codebook_bits == 8 else 0)

    def nonzero_bits(self) -> int:
        """The indices (a subvector's code stands for all its weights, zeros included)."""
        return self.index_bits()

    def extra_repr(self) -> str:
        return f"block={self.block}, centroids={self.centroids}, codebook_bits={self.codebook_bits}"
