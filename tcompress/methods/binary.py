"""Binarized weights trained with the straight-through estimator (seed 002 §2.1; seed 004's BS-Flex).

- ``binary``: w_b = α·sign(w) (BinaryConnect; Courbariaux et al.). ``scale: mean`` (the default)
  sets α = mean |w| per tensor or per output row (XNOR-Net's choice, recomputed from the float
  shadow weights every step); ``scale: none`` is seed 002's plain sign(w) = ±1, which loses the
  weights' scale. The gradient passes straight through where |w| ≤ 1 (BinaryConnect's clip; with
  a scale, where |w| ≤ the tensor's max |w|, i.e. everywhere).
- ``bsflex``: two centroids per tensor, every weight at the nearest one (seed 004). ``flex``: each
  step reassigns the weights to the nearer centroid and moves each centroid to its members' mean
  (one Lloyd step of 2-means on the shadow weights), so assignments can change during retraining,
  unlike k-means' fixed indices; ``fixed``: the centroids found at the start stay (the "original
  way" seed 004 compares with) and only the assignments follow the shadow weights.

Both export to a ``CodebookModule``: a 1-bit code per weight and a two-entry codebook per tensor
(per row when α is per row).
"""

from __future__ import annotations

from dataclasses import dataclass

from tcompress.methods.base import GROUP, Axis, FinetuneParams, Method, one_of, register
from tcompress.schema import setting

SCALES = ("mean", "none")
CENTROIDS = ("flex", "fixed")
BINARY_GROUPS = ("att", "ff+att")   # seed 002's table: attention linear, all linear (not the generator)


@dataclass(frozen=True)
class BinaryParams(FinetuneParams):
    groups: tuple[str, ...] = setting(("att",), doc="grid key")
    scale: str = setting("mean", choices=SCALES, doc="α: mean |w| (per tensor or row), or none (plain ±1)")
    per_row: bool = setting(False, doc="one α per output row instead of one per tensor")
    score_scale: float = setting(1.0, lo=0.0, lo_open=True, doc="multiplies every attention score q·k/√d_k "
                                 "(seed 002's fix for ±1 attention weights replaces √d_k by 25·d_k: "
                                 "√d_k/(25·d_k), 0.005 at d_k = 64); 1 = off")


@dataclass(frozen=True)
class BSFlexParams(FinetuneParams):
    centroids: tuple[str, ...] = setting(("flex",), doc="grid key: flex (re-estimated every step) | fixed")
    groups: tuple[str, ...] = setting(("att",), doc="grid key")
    init_iterations: int = setting(10, lo=1, doc="2-means iterations on the starting weights")


CENTROID_AXIS = Axis("centroids", "centroids", str, "flex: re-estimated every step | fixed: the initial ones",
                     one_of(CENTROIDS))
OWN_GROUP = Axis(GROUP.name, GROUP.key, GROUP.kind, GROUP.doc, GROUP.check, shared=False)


# ------------------------------------------------------------------------------------- quantizers

def _binarizer(scale: str, per_row: bool):
    import torch

    from tcompress.compress.codebook import straight_through

    def binarize(w):
        sign = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
        if scale == "none":
            # BinaryConnect's STE: no gradient where the shadow weight left [-1, 1].
            return straight_through(w.clamp(-1, 1), sign)
        flat = w.detach().abs().reshape(w.shape[0] if per_row else 1, -1)
        alpha = flat.mean(1).reshape(-1, *([1] * (w.dim() - 1))) if per_row else flat.mean()
        return straight_through(w, alpha * sign)
    return binarize


def two_means(w, iterations: int):
    """(low, high) centroids of 2-means over the values of ``w``, started at the negative and
    non-negative halves' means."""
    import torch

    x = w.detach().float().reshape(-1)
    neg, pos = x[x < 0], x[x >= 0]
    lo = neg.mean() if neg.numel() else x.min()
    hi = pos.mean() if pos.numel() else x.max()
    for _ in range(iterations):
        upper = x >= (lo + hi) / 2
        if upper.all() or not upper.any():
            break
        lo, hi = x[~upper].mean(), x[upper].mean()
    return torch.stack([lo, hi])


def two_centroids(w, flex: bool, iterations: int):
    """BS-Flex's quantizer for weight ``w``: the nearer of two centroids, straight-through gradient.
    A module, so its centroids (a buffer) travel in the resumable checkpoint."""
    import torch
    from torch import nn

    from tcompress.compress.codebook import straight_through

    class TwoCentroids(nn.Module):
        def __init__(self):
            super().__init__()
            self.flex = flex
            self.register_buffer("centroids", two_means(w, iterations))

        def forward(self, weight):
            lo, hi = self.centroids
            upper = weight.detach() >= (lo + hi) / 2
            if self.flex and self.training and upper.any() and not upper.all():   # a Lloyd step of 2-means
                lo, hi = weight.detach()[~upper].mean(), weight.detach()[upper].mean()
                self.centroids.copy_(torch.stack([lo, hi]))
            return straight_through(weight, torch.where(upper, hi, lo).to(weight.dtype))

        def extra_repr(self) -> str:
            return f"flex={self.flex}"
    return TwoCentroids()


# ------------------------------------------------------------------------------------------ method

def export_binary(model, wrappers: list, per_row_codebook: bool) -> None:
    """Each trained wrapper -> a CodebookModule: code 1 where the binarized weight took the upper value."""
    import torch

    from tcompress.compress.codebook import CodebookModule
    from tcompress.compress.walker import replace_module

    for wrapper in wrappers:
        with torch.no_grad():
            w = wrapper.inner.weight.detach()
            w_b = wrapper.quantized_weight().detach()
            rows = w.shape[0] if per_row_codebook else 1
            # The binarized weight takes two values per codebook (one if all weights agreed).
            flat_b = w_b.reshape(rows, -1)
            lo, hi = flat_b.amin(1), flat_b.amax(1)
            codes = (flat_b >= ((lo + hi) / 2).unsqueeze(1)).to(torch.uint8).reshape(w.shape)
            codebook = torch.stack([lo, hi], 1)
        inner = wrapper.inner
        replace_module(model, wrapper, CodebookModule.from_codes(inner, codes, codebook, bits=1))


def _facts(model, n_model: int) -> dict:
    from tcompress.compress.codebook import coded_weights
    from tcompress.compress.ratio import quantization_ratio

    coded = coded_weights(model)
    return {"n_model": n_model, "n_compressed": coded,
            "compression_ratio": round(quantization_ratio(n_model, coded, 1), 4)}


def check_binary(params: BinaryParams, budget) -> None:
    from tcompress.schema import ConfigError

    if params.score_scale != 1.0 and not any(g in ("att", "full") or "att" in g.split("+") for g in params.groups):
        raise ConfigError("binary.score_scale: scales attention scores through the binarized query projections, "
                          f"but binary.groups {list(params.groups)} has none (add att)")


def _scaled_queries(model, group: str, scale: float) -> set:
    """The query projections of the group, their biases multiplied by ``scale`` (their binarized
    weights are, in the quantizer): q·k, hence every attention score, is multiplied by it."""
    import torch

    from tcompress.compress.codebook import weight_matrices

    names = {name for name in weight_matrices(model, group) if name.endswith(".q_proj")}
    with torch.no_grad():
        for name in names:
            bias = model.get_submodule(name).bias
            if bias is not None:
                bias.mul_(scale)
    return {id(model.get_submodule(name)) for name in names}


def compress_binary(model, cell, params: BinaryParams, ctx) -> dict:
    from tcompress.compress.codebook import shadow_weights
    from tcompress.model import count_parameters

    n_model = count_parameters(model)
    binarize = _binarizer(params.scale, params.per_row)
    queries = _scaled_queries(model, cell["group"], params.score_scale) if params.score_scale != 1.0 else set()
    wrappers = shadow_weights(model, cell["group"], lambda m: (lambda w: params.score_scale * binarize(w))
                     if id(m) in queries else binarize)
    facts = ctx.finetune(model, [])
    export_binary(model, wrappers, per_row_codebook=params.per_row)
    return {**facts, **_facts(model, n_model)}


def compress_bsflex(model, cell, params: BSFlexParams, ctx) -> dict:
    import time

    from tcompress.compress.codebook import shadow_weights
    from tcompress.model import count_parameters

    n_model = count_parameters(model)
    start = time.perf_counter()
    flex = cell["centroids"] == "flex"
    wrappers = shadow_weights(model, cell["group"], lambda m: two_centroids(m.weight, flex, params.init_iterations))
    fit_seconds = time.perf_counter() - start
    facts = ctx.finetune(model, [])
    export_binary(model, wrappers, per_row_codebook=False)
    return {**facts, **_facts(model, n_model), "fit_seconds": round(fit_seconds, 3)}


BINARY = register(Method(
    name="binary", title="Binarized weights, α·sign(w) with STE", params=BinaryParams, axes=(OWN_GROUP,),
    catalog={"groups": BINARY_GROUPS}, compress=compress_binary, check=check_binary,
    row_label=lambda v: "1-bit sign", order=60,
    keeps_zeros=False,   # sign(0) is +1: a pruned weight would come back as +α
))
BSFLEX = register(Method(
    name="bsflex", title="BS-Flex: two centroids per tensor, reassigned while retraining", params=BSFlexParams,
    axes=(CENTROID_AXIS, OWN_GROUP), catalog={"centroids": CENTROIDS, "groups": ("att",)},
    compress=compress_bsflex, row_axes=("centroids",), row_label=lambda v: f"1-bit, {v['centroids']} centroids",
    order=61, keeps_zeros=False,
))
