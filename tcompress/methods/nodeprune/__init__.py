"""Node pruning of FFN neurons after training (FullyQT, seed 001 §4.4 and Table 5).

On the baseline (``nodeprune-adaptive``) or, as a chain's last link, on any trained cell's model
(``chains: ["fullyqt:8-all > nodeprune:adaptive"]``, ``"qat:sym-8-full > nodeprune:adaptive"``): the
running x_max of every ReLU output node is estimated on training batches with the model frozen, and
the useless nodes are removed from W1/b1 and W2 (this package's ``nodes``); no retraining.
The ``rule`` axis: ``adaptive`` (x_max < z·σ per layer), or the fixed-ratio baselines ``xmax`` and
``l1``, which prune as many nodes per stack as the adaptive rule does.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcompress.methods.base import Axis, Method, one_of, register
from tcompress.schema import setting

RULES = ("adaptive", "xmax", "l1")
STACKS = ("encoder", "decoder")


RULE = Axis("rule", "rules", str, "adaptive: x_max < z·σ per layer | xmax, l1: the adaptive count, lowest first",
            one_of(RULES))


@dataclass(frozen=True)
class NodePruneParams:
    rules: tuple[str, ...] = setting(("adaptive", "xmax", "l1"), doc="grid key; " + RULE.doc)
    z: float = setting(0.025, lo=0.0, lo_open=True, doc="threshold in standard deviations of a layer's x_max")
    stacks: tuple[str, ...] = setting(STACKS, choices=STACKS, doc="the FFNs pruned: encoder, decoder, or both")
    estimate_batches: int = setting(50, lo=1, doc="training batches over which x_max is estimated")
    estimate_batch_tokens: int = setting(3000, lo=16)
    momentum: float = setting(0.9, lo=0.0, hi=1.0, doc="x_max: EMA of each batch's maximum")


def compress(model, cell, params: NodePruneParams, ctx) -> dict:
    from tcompress.compress.artifact import parameter_bits
    from tcompress.methods.nodeprune.nodes import estimate_xmax, feed_forwards, l1_scores, select_nodes, shrink
    from tcompress.model import count_parameters, make_model

    n_model = count_parameters(make_model(model.cfg, model.vocab))   # the float architecture's count
    batches = ctx.calibration_batches(params.estimate_batches, params.estimate_batch_tokens)
    xmax = estimate_xmax(model, batches, params.momentum)
    widths = {name: int(x.numel()) for name, x in xmax.items()}
    prune = select_nodes(xmax, cell["rule"], params.z, tuple(params.stacks), l1_scores(model))
    removed = shrink(model, prune)
    stack_pct = {}
    for stack in STACKS:
        names = [n for n in widths if n.startswith(stack)]
        total = sum(widths[n] for n in names)
        stack_pct[f"{stack}_nodes_pruned_pct"] = round(100 * sum(removed[n] for n in names) / total, 3) if total else 0.0
    return {"n_model": n_model, "n_compressed": sum(removed.values()), "nodes_pruned": removed, **stack_pct,
            "estimate_batches": len(batches), "ffn_layers": len(feed_forwards(model)),
            "compression_ratio": round(n_model * 32 / parameter_bits(model), 4)}


METHOD = register(Method(
    name="nodeprune", title="Node pruning of FFN neurons (FullyQT §4.4), no retraining", params=NodePruneParams,
    axes=(RULE,), catalog={"rules": RULES}, compress=compress, row_axes=("rule",),
    row_label=lambda v: {"adaptive": "adaptive, x_max < z·σ", "xmax": "fixed ratio, x_max sort",
                         "l1": "fixed ratio, L1 sort"}[v["rule"]],
    order=45, continues_any=True,
))
