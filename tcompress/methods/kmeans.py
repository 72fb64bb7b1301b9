"""k-means weight sharing (Deep Compression; seed 004's "K-means quantization").

Each weight matrix of the selected modules (or each of its rows) is clustered into 2^b centroids by
1-D k-means (k-means++ initialisation with a fixed seed, or linear: evenly spaced between min and
max); every weight is replaced by its centroid's index. ``kmeans`` then fine-tunes through the one
training loop with the indices fixed and each centroid moved by the summed gradients of its members
(``CodebookModule(trainable=True)``); ``kmeans_ptq`` stops after clustering. Biases, LayerNorm gains
and 1-D tensors stay float. A tensor with exact zeros (a pruned parent in a chain) keeps them: its
zeros get their own fixed centroid 0 and the nonzero weights share the other 2^b − 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcompress.methods.base import GROUP, FinetuneParams, Method, low_bits_axis, register
from tcompress.schema import setting

INITS = ("kmeans++", "linear")
BITS = low_bits_axis("2^bits centroids per codebook")


@dataclass(frozen=True)
class KMeansPTQParams:
    bits: Optional[tuple[int, ...]] = setting((4,), doc="grid key: 2^bits centroids; null: the top-level bits")
    groups: Optional[tuple[str, ...]] = setting(("full",), doc="grid key; null: the top-level groups")
    per_row: bool = setting(False, doc="one codebook per output row instead of one per tensor")
    init: str = setting("kmeans++", choices=INITS, doc="centroid initialisation")
    iterations: int = setting(30, lo=1, doc="Lloyd iterations at most (stops earlier when no index changes)")


@dataclass(frozen=True)
class KMeansParams(FinetuneParams, KMeansPTQParams):
    pass


# ------------------------------------------------------------------------------------------ k-means

def _kmeanspp(x, k: int, generator):
    """k-means++ seeds for every row of ``x`` (rows, n) at once: (rows, k), ascending."""
    import torch

    rows = x.shape[0]
    first = torch.randint(x.shape[1], (rows, 1), generator=generator)
    centroids = [x.gather(1, first)]
    dist = (x - centroids[0]) ** 2
    for _ in range(1, k):
        weights = dist + 1e-30 * (dist.sum(1, keepdim=True) == 0)          # all covered: uniform
        pick = torch.multinomial(weights, 1, generator=generator)
        centroids.append(x.gather(1, pick))
        dist = torch.minimum(dist, (x - centroids[-1]) ** 2)
    return torch.cat(centroids, 1).sort(1).values


def _assign(x, centroids):
    """Index of the nearest centroid; ``centroids`` ascending per row."""
    import torch

    mids = (centroids[:, 1:] + centroids[:, :-1]) / 2                     # (rows, k - 1) boundaries
    return torch.searchsorted(mids.contiguous(), x.contiguous())


def kmeans_1d(x, k: int, init: str = "kmeans++", iterations: int = 30, seed: int = 0):
    """Cluster each row of ``x`` (rows, n) into ``k`` centroids: (codes (rows, n), centroids (rows, k)).

    One-dimensional, so assignment is a binary search among the sorted centroids' midpoints and an
    update is one scatter-add: fast enough for a 2M-entry embedding table. An empty cluster keeps
    its centroid."""
    import torch

    if init not in INITS:
        raise ValueError(f"init: {init!r}; expected one of {', '.join(INITS)}")
    x = x.detach().float()
    if init == "linear":
        lo, hi = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
        centroids = lo + (hi - lo) * torch.linspace(0, 1, k).unsqueeze(0)
    else:
        centroids = _kmeanspp(x, k, torch.Generator().manual_seed(seed))
    codes = _assign(x, centroids)
    for _ in range(iterations):
        sums = torch.zeros_like(centroids).scatter_add_(1, codes, x)
        counts = torch.zeros_like(centroids).scatter_add_(1, codes, torch.ones_like(x))
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids).sort(1).values
        new = _assign(x, centroids)
        if torch.equal(new, codes):
            break
        codes = new
    return codes, centroids


def cluster_weight(weight, bits: int, per_row: bool, init: str, iterations: int, seed: int):
    """Codes (uint8, the weight's shape) and codebook (rows, 2^bits) for one weight tensor. Exact zeros
    (pruned weights) keep centroid 0 at index 0; the nonzero weights share the other centroids."""
    import torch

    k = 2 ** bits
    rows = weight.shape[0] if per_row else 1
    x = weight.detach().float().reshape(rows, -1)
    zeros = x == 0
    if not zeros.any() or k == 1:
        codes, centroids = kmeans_1d(x, k, init, iterations, seed)
        return codes.to(torch.uint8).reshape(weight.shape), centroids
    # Pruned: cluster each row's nonzeros into k - 1 centroids (a zero-filled row keeps zeros only).
    codes = torch.zeros_like(x, dtype=torch.long)
    centroids = torch.zeros(rows, k)
    for r in range(rows):
        keep = ~zeros[r]
        if keep.sum() == 0:
            continue
        c, cent = kmeans_1d(x[r, keep].unsqueeze(0), k - 1, init, iterations, seed + r)
        codes[r, keep] = c[0] + 1
        centroids[r, 1:] = cent[0]
    return codes.to(torch.uint8).reshape(weight.shape), centroids


# ------------------------------------------------------------------------------------------ method

def share_weights(model, cell, params: KMeansPTQParams, seed: int, trainable: bool) -> list:
    """Replace every selected weight matrix by its k-means codebook form, in place; returns
    (wrapper, whether the weight had exact zeros) pairs."""
    from tcompress.compress.codebook import CodebookModule, weight_matrices
    from tcompress.compress.walker import replace_module

    modules = weight_matrices(model, cell["group"])
    if not modules:
        raise ValueError(f"layer group {cell['group']!r} has no weight matrix to cluster")
    wrappers = []
    for i, (name, module) in enumerate(modules.items()):
        pruned = bool((module.weight == 0).any())
        codes, codebook = cluster_weight(module.weight, cell["bits"], params.per_row, params.init,
                                         params.iterations, seed + 1000 * i)
        wrapper = CodebookModule.from_codes(module, codes, codebook, cell["bits"], trainable=trainable)
        replace_module(model, module, wrapper)
        wrappers.append((wrapper, pruned))
    return wrappers


def _facts(model, n_model: int, bits: int) -> dict:
    from tcompress.compress.codebook import coded_weights
    from tcompress.compress.ratio import quantization_ratio

    coded = coded_weights(model)
    return {"n_model": n_model, "n_compressed": coded,
            "compression_ratio": round(quantization_ratio(n_model, coded, bits), 4)}


def compress_ptq(model, cell, params: KMeansPTQParams, ctx) -> dict:
    import time

    from tcompress.model import count_parameters

    n_model = count_parameters(model)
    start = time.perf_counter()
    share_weights(model, cell, params, ctx.seed, trainable=False)
    return {**_facts(model, n_model, cell["bits"]), "fit_seconds": round(time.perf_counter() - start, 2)}


def compress(model, cell, params: KMeansParams, ctx) -> dict:
    import time

    import torch

    from tcompress.compress.pruning import ZeroKeeper
    from tcompress.model import count_parameters

    n_model = count_parameters(model)
    start = time.perf_counter()
    wrappers = share_weights(model, cell, params, ctx.seed, trainable=True)
    fit_seconds = time.perf_counter() - start
    # A pruned tensor's zero centroid (index 0) stays exactly zero while the others move.
    zero_centroids = [(w.weight_codebook, torch.arange(w.weight_codebook.shape[1]).expand_as(w.weight_codebook) == 0)
                      for w, pruned in wrappers if pruned]
    facts = ctx.finetune(model, [ZeroKeeper(zero_centroids)] if zero_centroids else [])
    for wrapper, _ in wrappers:
        wrapper.freeze()
    return {**facts, **_facts(model, n_model, cell["bits"]), "fit_seconds": round(fit_seconds, 2)}


def _row_label(values) -> str:
    return f"{values['bits']}-bit ({2 ** values['bits']} centroids)"


CATALOG = {"bits": (4, 1), "groups": ("att", "full")}   # seed 004's table

PTQ_METHOD = register(Method(
    name="kmeans_ptq", title="k-means weight sharing, no fine-tuning", params=KMeansPTQParams,
    axes=(BITS, GROUP), catalog=CATALOG, compress=compress_ptq, row_axes=("bits",), row_label=_row_label, order=50,
))
METHOD = register(Method(
    name="kmeans", title="k-means weight sharing, centroids fine-tuned (Deep Compression)", params=KMeansParams,
    axes=(BITS, GROUP), catalog=CATALOG, compress=compress, row_axes=("bits",), row_label=_row_label, order=51,
))
