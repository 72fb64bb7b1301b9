"""Node pruning of the feed-forward networks (FullyQT, seed 001 §4.4): remove whole FFN neurons.

With the trained model frozen, the running maximum x_max of every ReLU output node (an EMA of each
batch's maximum over the non-padding positions, before any quantization of that output) is estimated
on training batches. Node j of a layer is useless when x_max,j < z·σ, σ the standard deviation of
that layer's x_max (``adaptive``: each layer finds its own ratio). The fixed-ratio baselines of
Table 5 prune as many nodes per stack (encoder, decoder) as the adaptive rule did, the lowest first
by x_max (``xmax``) or by the L1 norm of the node's incoming weights (``l1``).

Removal is physical: the rows of W1 and b1 and the columns of W2 go, whatever stored form holds them
(float, integer codes and their per-row steps, codebook indices), so the parameter count, the file
and the matmuls shrink. No retraining. ``NodePrunedFeedForward`` records the new width, so the
artifact loader rebuilds each layer at its own width.
"""

from __future__ import annotations

import torch
from torch import nn

from tcompress.compress.artifact import StoredForm
from tcompress.compress.walker import replace_module, unwrapped
from tcompress.model import PAD, PositionwiseFeedForward

RULES = ("adaptive", "xmax", "l1")
STACKS = ("encoder", "decoder")


class NodePrunedFeedForward(StoredForm, PositionwiseFeedForward, kind="ffn_nodes"):
    """A feed-forward network narrower than the model's d_ff; the artifact records its width."""

    @classmethod
    def shell(cls, inner: PositionwiseFeedForward, info: dict) -> "NodePrunedFeedForward":
        return cls(inner.w_1.in_features, info["d_ff"], inner.dropout.p)

    def describe(self) -> dict:
        return {"d_ff": unwrapped(self.w_1, nn.Linear).out_features}

    def parameter_bits(self) -> int:
        return 0   # its Linears count themselves

    def stored_bits(self) -> int:
        return 0

    def nonzero_bits(self) -> int:
        return 0


def feed_forwards(model: nn.Module) -> dict[str, PositionwiseFeedForward]:
    """Every FFN of the model by name (inside a FullyQT wrapper too), encoder first."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PositionwiseFeedForward)}


def _stack(name: str) -> str:
    return "decoder" if name.startswith("decoder") else "encoder"


@torch.no_grad()
def estimate_xmax(model: nn.Module, batches: list, momentum: float = 0.9) -> dict[str, torch.Tensor]:
    """Running x_max per ReLU output node of every FFN over ``batches`` of (src, tgt_in)."""
    ffns = feed_forwards(model)
    xmax: dict[str, torch.Tensor] = {}
    valid = {}

    def hook(name):
        def record(_module, _args, out):
            h = torch.relu(out.detach().float())                           # (B, T, d_ff)
            h = h[valid[_stack(name)]]                                     # real tokens only: (N, d_ff)
            if h.numel():
                batch_max = h.amax(0)
                xmax[name] = batch_max if name not in xmax else momentum * xmax[name] + (1 - momentum) * batch_max
        return record

    handles = [ffn.w_1.register_forward_hook(hook(name)) for name, ffn in ffns.items()]
    was_training = model.training
    model.eval()
    try:
        for src, tgt_in in batches:
            valid["encoder"], valid["decoder"] = src != PAD, tgt_in != PAD
            model(src, tgt_in)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return xmax


def l1_scores(model: nn.Module) -> dict[str, torch.Tensor]:
    """‖W1[j, :]‖₁ per node, from the weights the model computes with."""
    return {name: unwrapped(ffn.w_1, nn.Linear).weight.detach().float().abs().sum(1)
            for name, ffn in feed_forwards(model).items()}


def select_nodes(xmax: dict[str, torch.Tensor], rule: str, z: float, stacks: tuple[str, ...],
                 scores: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Boolean masks, True for a node to prune. ``adaptive``: x_max < z·σ(layer's x_max); the fixed
    rules prune, per stack, the adaptive rule's count of nodes with the lowest ``scores``."""
    adaptive = {name: (x < z * x.std()) if _stack(name) in stacks else torch.zeros_like(x, dtype=torch.bool)
                for name, x in xmax.items()}
    if rule == "adaptive":
        return adaptive
    if rule not in RULES:
        raise ValueError(f"unknown node-pruning rule {rule!r}; expected one of {', '.join(RULES)}")
    scores = xmax if rule == "xmax" else scores
    out = {name: torch.zeros_like(x, dtype=torch.bool) for name, x in xmax.items()}
    for stack in STACKS:
        names = [n for n in xmax if _stack(n) == stack]
        count = sum(int(adaptive[n].sum()) for n in names)
        if not names or not count:
            continue
        flat = torch.cat([scores[n] for n in names])
        chosen = torch.zeros_like(flat, dtype=torch.bool)
        chosen[flat.argsort(stable=True)[:count]] = True   # the lowest first, over the stack's layers
        for n, part in zip(names, chosen.split([scores[n].numel() for n in names])):
            out[n] = part
    return out


def _sliced(module: nn.Module, keep: torch.Tensor, dim: int, width: int) -> nn.Module:
    """``module`` (a Linear or a stored form of one) with ``keep`` of its ``width`` outputs (dim 0)
    or inputs (dim 1); its state sliced, everything else (steps of other rows, codebooks) as it was."""
    linear = unwrapped(module, nn.Linear)
    state = module.state_dict()
    for key, t in state.items():
        leaf = key.rsplit(".", 1)[-1]
        if dim == 0 and t.dim() >= 1 and t.shape[0] == width:       # rows of W1, b1, per-row steps
            state[key] = t.index_select(0, keep)
        elif dim == 1 and t.dim() == 2 and t.shape[1] == width and leaf in ("weight", "weight_q", "weight_codes"):
            state[key] = t.index_select(1, keep)
    shape = (int(keep.numel()), linear.in_features) if dim == 0 else (linear.out_features, int(keep.numel()))
    new_linear = nn.Linear(shape[1], shape[0], bias=linear.bias is not None)
    new = new_linear if module is linear else type(module).shell(new_linear, module.describe())
    new.load_state_dict(state)
    return new


def shrink(model: nn.Module, prune: dict[str, torch.Tensor]) -> dict[str, int]:
    """Remove the masked nodes of every FFN in place; returns the nodes removed per layer. A layer
    keeps at least one node."""
    ffns = feed_forwards(model)
    removed = {}
    for name, mask in prune.items():
        ffn = ffns[name]
        w_1 = unwrapped(ffn.w_1, nn.Linear)
        width = w_1.out_features
        keep = (~mask).nonzero().flatten()
        if keep.numel() == 0:
            keep = mask.new_zeros(1, dtype=torch.long)
        removed[name] = width - int(keep.numel())
        if not removed[name]:
            continue
        new = NodePrunedFeedForward(w_1.in_features, int(keep.numel()), ffn.dropout.p)
        new.w_1 = _sliced(ffn.w_1, keep, 0, width)
        new.w_2 = _sliced(ffn.w_2, keep, 1, width)
        new.train(ffn.training)
        replace_module(model, ffn, new.to(w_1.weight.device))
    return removed
