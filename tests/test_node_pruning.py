"""Node pruning (FullyQT §4.4): x_max estimation, the adaptive and fixed-ratio rules, and physical
removal from float and quantized FFNs, down to the artifact."""

import pytest
import torch
from torch import nn

from tcompress.chains import parse_chain
from tcompress.compress.artifact import parameter_bits, save_compressed
from tcompress.compress.walker import unwrapped
from tcompress.compress.quantized import QuantizedModule
from tcompress.config import ModelConfig
from tcompress.decode import greedy
from tcompress.loader import load_model
from tcompress.methods.fullyqt.modules import FullyQTSpec, freeze, fully_quantize
from tcompress.methods.nodeprune.nodes import (NodePrunedFeedForward, estimate_xmax, feed_forwards, l1_scores,
                                               select_nodes, shrink)
from tcompress.model import BOS, PAD, Vocab, count_parameters, make_model
from tcompress.schema import ConfigError

DEAD = {"encoder.layers.0.feed_forward": [1, 5, 6], "decoder.layers.1.feed_forward": [0]}


def model_with_dead_nodes():
    """Nodes whose ReLU output is exactly 0 on any input: zero incoming weights, negative bias."""
    torch.manual_seed(0)
    model = make_model(ModelConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0), Vocab(40, 40))
    ffns = feed_forwards(model)
    with torch.no_grad():
        for name, nodes in DEAD.items():
            ffns[name].w_1.weight[nodes] = 0.0
            ffns[name].w_1.bias[nodes] = -1.0
    return model.eval()


def batches(n=4):
    g = torch.Generator().manual_seed(2)
    out = []
    for _ in range(n):
        src, tgt = torch.randint(4, 40, (3, 7), generator=g), torch.randint(4, 40, (3, 6), generator=g)
        tgt[:, 0] = BOS
        src[0, 5:], tgt[1, 4:] = PAD, PAD
        out.append((src, tgt))
    return out


def test_xmax_is_the_running_max_of_relu_outputs_over_real_tokens():
    model = model_with_dead_nodes()
    xmax = estimate_xmax(model, batches(), momentum=0.9)
    assert set(xmax) == set(feed_forwards(model))
    for name, nodes in DEAD.items():
        assert (xmax[name][nodes] == 0).all()
    # Reference for one layer: the EMA of each batch's max over non-padding positions.
    ffn, seen = feed_forwards(model)["encoder.layers.1.feed_forward"], []
    handle = ffn.w_1.register_forward_hook(lambda m, a, o: seen.append(torch.relu(o)))
    expected = None
    with torch.no_grad():
        for src, tgt in batches():
            seen.clear()
            model(src, tgt)
            m = seen[0][src != PAD].amax(0)
            expected = m if expected is None else 0.9 * expected + 0.1 * m
    handle.remove()
    assert torch.allclose(xmax["encoder.layers.1.feed_forward"], expected)


def test_adaptive_rule_is_x_max_below_z_sigma_per_layer_and_fixed_rules_match_its_count_per_stack():
    xmax = {"encoder.layers.0.feed_forward": torch.tensor([0.0, 0.01, 1.0, 2.0, 3.0]),
            "encoder.layers.1.feed_forward": torch.tensor([0.5, 0.6, 0.7, 5.0, 0.001]),
            "decoder.layers.0.feed_forward": torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])}
    z = 0.05
    adaptive = select_nodes(xmax, "adaptive", z, ("encoder", "decoder"))
    for name, x in xmax.items():
        assert torch.equal(adaptive[name], x < z * x.std())
    assert [int(m.sum()) for m in adaptive.values()] == [2, 1, 0]
    by_x = select_nodes(xmax, "xmax", z, ("encoder", "decoder"))
    assert sum(int(m.sum()) for m in by_x.values()) == 3          # the adaptive count, lowest x_max in the stack
    assert by_x["encoder.layers.1.feed_forward"].tolist() == [False, False, False, False, True]
    scores = {n: torch.arange(5.0, 0.0, -1.0) for n in xmax}       # L1: the last nodes are the lightest
    by_l1 = select_nodes(xmax, "l1", z, ("encoder", "decoder"), scores)
    assert sum(int(by_l1[n].sum()) for n in xmax if n.startswith("encoder")) == 3
    assert not by_l1["decoder.layers.0.feed_forward"].any()
    only_dec = select_nodes(xmax, "adaptive", z, ("decoder",))
    assert not any(only_dec[n].any() for n in xmax if n.startswith("encoder"))


def test_removing_nodes_that_output_zero_leaves_the_logits_and_translations_unchanged(tmp_path):
    model = model_with_dead_nodes()
    src, tgt = batches(1)[0]
    before, before_hyps = model(src, tgt), greedy(model, src, 12)
    n_before = count_parameters(model)
    xmax = estimate_xmax(model, batches())
    removed = shrink(model, {n: x == 0 for n, x in xmax.items()})
    # The planted dead nodes, and any the random decoder never fires on these batches.
    assert all(removed[n] >= len(v) for n, v in DEAD.items()) and removed["encoder.layers.0.feed_forward"] == 3
    total = sum(removed.values())
    assert count_parameters(model) == n_before - total * (2 * 16 + 1)   # a row of W1, its bias, a column of W2
    assert unwrapped(feed_forwards(model)["encoder.layers.0.feed_forward"].w_2, nn.Linear).in_features == 29
    assert torch.allclose(model(src, tgt), before, atol=1e-6) and greedy(model, src, 12) == before_hyps
    save_compressed(model, tmp_path / "m.safetensors")
    loaded, payload = load_model(tmp_path / "m.safetensors")
    assert payload["compression"]["ffn_nodes"] == {n: {"d_ff": 32 - k} for n, k in removed.items() if k}
    assert torch.equal(loaded(src, tgt), model(src, tgt))


def test_a_fully_quantized_model_shrinks_in_its_codes_and_per_row_steps(tmp_path):
    model = model_with_dead_nodes()
    fully_quantize(model, FullyQTSpec())
    model.train()
    for s, t in batches():
        model(s, t)
    freeze(model)
    model.eval()
    src, tgt = batches(1)[0]
    before, bits_before = model(src, tgt), parameter_bits(model)
    xmax = estimate_xmax(model, batches())
    assert set(xmax) == {f"{n}.inner" for n in DEAD} | {f"{n}.inner" for n in
                                                       ("encoder.layers.1.feed_forward", "decoder.layers.0.feed_forward")}
    removed = shrink(model, {n: x == 0 for n, x in xmax.items()})
    ffn = feed_forwards(model)["encoder.layers.0.feed_forward.inner"]
    assert isinstance(ffn, NodePrunedFeedForward) and isinstance(ffn.w_1, QuantizedModule)
    assert ffn.w_1.weight_q.shape == (29, 16) and ffn.w_1.weight_scale.shape == (29,)
    assert ffn.w_2.weight_q.shape == (16, 29) and ffn.w_2.weight_scale.shape == (16,)
    assert parameter_bits(model) == bits_before - sum(removed.values()) * (2 * 16 * 8 + 32)  # codes; b1 float
    assert torch.allclose(model(src, tgt), before, atol=1e-6)
    save_compressed(model, tmp_path / "m.safetensors")
    assert torch.equal(load_model(tmp_path / "m.safetensors")[0](src, tgt), model(src, tgt))


def test_l1_scores_are_the_incoming_weights_l1_norm():
    model = model_with_dead_nodes()
    scores = l1_scores(model)
    w = feed_forwards(model)["encoder.layers.1.feed_forward"].w_1.weight
    assert torch.equal(scores["encoder.layers.1.feed_forward"], w.abs().sum(1))
    assert (scores["encoder.layers.0.feed_forward"][DEAD["encoder.layers.0.feed_forward"]] == 0).all()


def test_node_pruning_may_continue_a_quantized_cell_and_nothing_else_may():
    chain = parse_chain("fullyqt:8-all > nodeprune:adaptive")
    assert chain.id == "fullyqt-8-all_then_nodeprune-adaptive"
    parse_chain("qat:sym-8-full > nodeprune:l1")
    with pytest.raises(ConfigError, match="cannot start a chain link"):
        parse_chain("fullyqt:8-all > kmeans:4-full")
