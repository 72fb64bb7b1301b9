import pytest
import torch
from torch import nn

from tcompress.batching import pad
from tcompress.checkpoint import load_safe
from tcompress.compress.pruning import (AGPConfig, IMPConfig, MagnitudePruner, agp_sparsity, magnitude_mask,
                                        magnitude_pruning, nonzero_parameters)
from tcompress.compress.ratio import pruning_ratio
from tcompress.config import ModelConfig, TrainConfig
from tcompress.layer_groups import select_modules
from tcompress.model import Vocab, count_parameters, make_model
from tcompress.training import Hook, ParallelData, TrainState, fit


def _model(share=True):
    torch.manual_seed(0)
    return make_model(ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, share_embeddings=share), Vocab(50, 50))


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    src, tgt = [], []
    for _ in range(n):
        s = torch.randint(4, 45, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g).tolist()
        src.append(s + [3])
        tgt.append([2] + list(reversed(s)) + [3])
    return ParallelData(src, tgt)


def _formula(t, s_i, s_f, dt, t0, end):
    n = (end - t0) // dt
    return s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3


# ---------------------------------------------------------------------------------------- schedules

@pytest.mark.parametrize("s_i,s_f,dt", [(0.10, 0.70, 1), (0.45, 0.70, 3), (0.90, 1.00, 1)])
def test_agp_schedule_is_zhu_gupta_at_every_pruning_step_of_the_thesis_schedules(s_i, s_f, dt):
    t0, end = 2, 20
    pruning_steps = list(range(t0, end + 1, dt))
    assert pruning_steps[-1] == 20
    cfg = AGPConfig(s_i, s_f, dt, start_step=t0, end_step=end)
    for t in range(0, 30):
        got = cfg.schedule(t)
        assert got == agp_sparsity(t, s_i, s_f, dt, t0, end)
        if t in pruning_steps:
            assert got == pytest.approx(_formula(t, s_i, s_f, dt, t0, end), abs=1e-12), t
        else:
            assert got is None, t
    assert cfg.schedule(t0) == pytest.approx(s_i, abs=1e-12) and cfg.schedule(20) == s_f
    values = [cfg.schedule(t) for t in pruning_steps]
    assert values == sorted(values)                    # monotone, steepest at the start
    assert values[1] - values[0] >= values[-1] - values[-2]


def test_agp_last_pruning_step_is_the_last_multiple_of_the_frequency():
    steps = {t: agp_sparsity(t, 0.2, 0.8, 3, 0, 10) for t in range(12)}
    assert [t for t, s in steps.items() if s is not None] == [0, 3, 6, 9]
    assert steps[9] == 0.8 and steps[10] is None


@pytest.mark.parametrize("kwargs,word", [
    ({"initial": -0.1}, "initial"), ({"initial": 1.1, "final": 1.2}, "initial"),
    ({"initial": 0.5, "final": 0.4}, "final"), ({"final": 1.5}, "final"),
    ({"frequency": 0}, "frequency"), ({"frequency": 1.5}, "frequency"),
    ({"end": 2}, "end"), ({"start": -1}, "start"), ({"frequency": 5, "start": 0, "end": 4}, "frequency"),
])
def test_agp_arguments_are_validated(kwargs, word):
    args = {"initial": 0.1, "final": 0.7, "frequency": 1, "start": 2, "end": 20, **kwargs}
    with pytest.raises(ValueError, match=word):
        agp_sparsity(5, **args)
    with pytest.raises(ValueError, match=word):
        AGPConfig(args["initial"], args["final"], args["frequency"], start_step=args["start"], end_step=args["end"])


def test_agp_end_step_is_required():
    with pytest.raises(TypeError):
        AGPConfig(0.1, 0.7, 1)


def test_imp_schedule_prunes_a_fraction_of_the_remaining_weights_each_round():
    cfg = IMPConfig(fraction=0.2, rounds=3, steps_per_round=5)
    assert {t: cfg.schedule(t) for t in range(20) if cfg.schedule(t) is not None} == pytest.approx(
        {0: 0.2, 5: 1 - 0.8 ** 2, 10: 1 - 0.8 ** 3})
    for bad in [dict(fraction=0.0), dict(rounds=0), dict(steps_per_round=0), dict(threshold=-1.0)]:
        with pytest.raises(ValueError, match=next(iter(bad))):
            IMPConfig(**{"fraction": 0.2, "rounds": 3, "steps_per_round": 5, **bad})


# -------------------------------------------------------------------------------------------- masks

def _linear(values):
    lin = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(values, dtype=torch.float32).view(3, 4))
    return lin


def test_mask_keeps_the_largest_magnitudes_breaks_ties_by_index_and_never_unprunes():
    lin = _linear([0.5, -0.1, 0.3, -0.3, 0.9, 0.2, -0.2, 0.05, 0.3, -0.7, 0.1, 0.8])
    pruner = MagnitudePruner({"lin": lin}, AGPConfig(0.5, 0.75, 1, end_step=1))
    pruner.on_train_start(lin, TrainState())           # step 0: 6 of 12 zeros
    # smallest |w|: 0.05(7), 0.1(1), 0.1(10), 0.2(5), 0.2(6), then 0.3 ties (2, 3, 8): index 2 goes first
    assert (~pruner.masks["lin"]).flatten().nonzero().flatten().tolist() == [1, 2, 5, 6, 7, 10]
    assert (lin.weight.flatten() == 0).nonzero().flatten().tolist() == [1, 2, 5, 6, 7, 10]
    with torch.no_grad():                              # even if pruned weights come back large ...
        lin.weight.view(-1)[[1, 2, 5, 6, 7, 10]] = 5.0
    pruner.prune_to(0.75)                              # ... they stay pruned; 9 zeros = 3 more among the rest:
    zeros = (~pruner.masks["lin"]).flatten().nonzero().flatten().tolist()   # 0.3(3), 0.3(8), 0.5(0)
    assert zeros == [0, 1, 2, 3, 5, 6, 7, 8, 10]
    assert (lin.weight.flatten() == 0).nonzero().flatten().tolist() == zeros
    pruner.prune_to(0.5)                               # a lower target un-prunes nothing
    assert (~pruner.masks["lin"]).flatten().nonzero().flatten().tolist() == zeros


def _mask_by_stable_sort(weight, mask, sparsity):
    """The definition: old zeros first, then |w| ascending, ties by flat index; the first round(s·n) go."""
    target = round(sparsity * weight.numel())
    score = weight.abs().flatten().masked_fill(~mask.flatten(), -1.0)
    keep = torch.ones(weight.numel(), dtype=torch.bool)
    keep[torch.sort(score, stable=True).indices[:target]] = False
    return keep.view_as(mask) & mask


def test_mask_equals_a_stable_sort_of_magnitudes_on_tie_heavy_tensors():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        shape = tuple(torch.randint(1, 30, (2,), generator=g).tolist())
        weight = torch.randint(-3, 4, shape, generator=g).float() * 0.5    # few distinct magnitudes
        mask = torch.rand(shape, generator=g) > 0.3
        sparsity = float(torch.rand(1, generator=g))
        assert torch.equal(magnitude_mask(weight, mask, sparsity), _mask_by_stable_sort(weight, mask, sparsity))


def test_imp_threshold_mode_prunes_below_the_threshold_and_keeps_old_zeros():
    lin = _linear([0.5, -0.1, 0.3, -0.3, 0.9, 0.2, -0.2, 0.05, 0.3, -0.7, 0.1, 0.8])
    pruner = MagnitudePruner({"lin": lin}, IMPConfig(0.2, rounds=2, steps_per_round=3, threshold=0.25))
    pruner.on_train_start(lin, TrainState())
    assert (lin.weight == 0).flatten().nonzero().flatten().tolist() == [1, 5, 6, 7, 10]
    with torch.no_grad():
        lin.weight.mul_(0.5)                            # 0.3 -> 0.15 falls below, 0.5 -> 0.25 stays
    for step in (1, 2, 3):
        pruner.on_step_end(lin, TrainState(step=step))
    assert (lin.weight == 0).flatten().nonzero().flatten().tolist() == [1, 2, 3, 5, 6, 7, 8, 10]


def test_gradients_of_pruned_entries_are_zero_after_after_backward():
    model = _model()
    pruner = magnitude_pruning(model, AGPConfig(0.5, 0.5, 1, end_step=1), "ff+att")["pruner"]
    pruner.on_train_start(model, TrainState())
    data = _data(8, 0)
    logits = model(pad(data.src), pad(data.tgt)[:, :-1])
    logits.pow(2).mean().backward()
    assert all(bool((pruner.weight(n).grad[~m] != 0).any()) for n, m in pruner.masks.items())  # before: not zero
    pruner.after_backward(model, TrainState())
    for name, mask in pruner.masks.items():
        grad = pruner.weight(name).grad
        assert torch.all(grad[~mask] == 0) and bool((grad[mask] != 0).any()), name


# ---------------------------------------------------------------------------- through the real loop

class Recorder(Hook):
    """Runs after the pruner: what the optimizer step left, at every step."""

    def __init__(self, pruner):
        self.pruner, self.steps = pruner, []

    def after_backward(self, model, state):
        self.steps.append({"grad_masked": all(bool(torch.all(self.pruner.weight(n).grad[~m] == 0))
                                              for n, m in self.pruner.masks.items())})

    def on_step_end(self, model, state):
        self.steps[-1].update(step=state.step, masks={n: m.clone() for n, m in self.pruner.masks.items()},
                              zeros={n: (self.pruner.weight(n) == 0).clone() for n in self.pruner.masks})


AGP = AGPConfig(0.2, 0.6, 2, start_step=0, end_step=6)
CFG = TrainConfig(epochs=3, batch_tokens=80, lr=1e-2, warmup_steps=1, precision="fp32")


def _fit(tmp, config=AGP, stop=12, pruner_cls=MagnitudePruner, record=True):
    model = _model()
    pruner = pruner_cls(select_modules(model, "ff+att"), config)
    hooks = [pruner] + ([Recorder(pruner)] if record else [])
    fit(model, _data(60, 0), _data(10, 1), CFG, seed=3, best_path=tmp / "best.pt", resume_path=tmp / "resume.pt",
        identity={"run": "prune"}, hooks=hooks, progress=False, stop_after_steps=stop,
        checkpoint_every=1000)
    return model, pruner, hooks[-1]


def _expected_zeros(step, numel):
    last = max(t for t in range(0, step + 1) if AGP.schedule(t) is not None)
    return round(_formula(last, 0.2, 0.6, 2, 0, 6) * numel)


def test_pruned_weights_stay_exactly_zero_through_adam_steps_and_zeros_only_grow(tmp_path):
    initial = {n: p.detach().clone() for n, p in _model().named_parameters()}
    model, pruner, rec = _fit(tmp_path)
    assert [s["step"] for s in rec.steps] == list(range(1, 13)) and all(s["grad_masked"] for s in rec.steps)
    previous = None
    for s in rec.steps:
        for name, mask in s["masks"].items():
            assert torch.equal(s["zeros"][name], ~mask), (s["step"], name)   # pruned ⇔ exactly 0.0
            assert int((~mask).sum()) == _expected_zeros(s["step"], mask.numel()), (s["step"], name)
            if previous is not None:
                assert not bool((~previous[name] & mask).any()), (s["step"], name)   # never un-pruned
        previous = s["masks"]
    for name, mask in pruner.masks.items():            # the learning rate moves the surviving weights
        moved = pruner.weight(name).detach() != initial[name + ".weight"]
        assert moved[mask].float().mean() > 0.9, name


class GradOnlyPruner(MagnitudePruner):
    """Masks gradients and updates masks, but does not re-zero weights after each optimizer step."""

    def on_step_end(self, model, state):
        self._step(state.step)


def test_without_reapplying_masks_adam_momentum_revives_pruned_weights(tmp_path):
    _, pruner, _ = _fit(tmp_path, pruner_cls=GradOnlyPruner, record=False)
    revived = sum(int((pruner.weight(n)[~m] != 0).sum()) for n, m in pruner.masks.items())
    assert revived > 0      # so the exact zeros of the test above are the pruner's doing


def test_final_sparsity_is_exactly_round_sf_numel_once_the_schedule_ends(tmp_path):
    _, pruner, _ = _fit(tmp_path, record=False)
    report = pruner.sparsity_report()
    assert len(report["tensors"]) == 16                # encoder 4 attention + 2 ff, decoder 8 + 2
    for name, row in report["tensors"].items():
        assert row["zeros"] == round(0.6 * row["numel"]) == int((~pruner.masks[name]).sum()), name
        assert abs(row["sparsity"] - 0.6) <= 1 / row["numel"]
    total = report["total"]
    assert total["zeros"] == sum(r["zeros"] for r in report["tensors"].values())
    assert total["numel"] == sum(r["numel"] for r in report["tensors"].values())


def test_imp_rounds_through_fit(tmp_path):
    _, pruner, rec = _fit(tmp_path, config=IMPConfig(0.3, rounds=2, steps_per_round=5))
    for s in rec.steps:
        sparsity = 0.3 if s["step"] < 5 else 1 - 0.7 ** 2
        for name, mask in s["masks"].items():
            assert int((~mask).sum()) == round(sparsity * mask.numel())
            assert torch.equal(s["zeros"][name], ~mask)


def test_resume_continues_with_the_same_masks(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    full_model, full_pruner, _ = _fit(tmp_path / "a", record=False)
    _, partial, _ = _fit(tmp_path / "b", stop=3, record=False)
    saved = load_safe(tmp_path / "b" / "resume.pt")["hooks"][0]
    fresh = MagnitudePruner(select_modules(_model(), "ff+att"), AGP)
    fresh.load_state_dict(saved)                       # round trip through a weights_only checkpoint
    assert fresh.masks.keys() == partial.masks.keys() and all(m.dtype == torch.bool for m in fresh.masks.values())
    assert all(torch.equal(fresh.masks[n], partial.masks[n]) for n in partial.masks)
    assert all(int((~m).sum()) == _expected_zeros(3, m.numel()) for m in fresh.masks.values())
    resumed_model, resumed_pruner, _ = _fit(tmp_path / "b", record=False)
    assert all(torch.equal(full_pruner.masks[n], resumed_pruner.masks[n]) for n in full_pruner.masks)
    for (name, a), (_, b) in zip(full_model.state_dict().items(), resumed_model.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="masks"):
        MagnitudePruner(select_modules(_model(), "ff"), AGP).load_state_dict(saved)


# ------------------------------------------------------------------------------- groups and ratios

def test_only_the_groups_weight_matrices_are_pruned():
    model = _model()
    before = {n: t.clone() for n, t in model.state_dict().items()}
    report = magnitude_pruning(model, AGPConfig(0.5, 0.5, 1, end_step=1), "ff")
    pruner = report["pruner"]
    assert isinstance(pruner, MagnitudePruner) and report["hooks"] == [pruner]
    pruner.on_train_start(model, TrainState())
    pruned = {f"{side}.layers.0.feed_forward.w_{i}.weight" for side in ("encoder", "decoder") for i in (1, 2)}
    for name, t in model.state_dict().items():
        if name in pruned:
            assert int((t == 0).sum()) == t.numel() // 2, name
        else:
            assert torch.equal(t, before[name]), name   # biases, other groups, LayerNorms untouched


def test_full_group_skips_layernorms_and_prunes_a_shared_embedding_once():
    model = _model(share=True)
    before = {n: t.clone() for n, t in model.state_dict().items()}
    pruner = magnitude_pruning(model, AGPConfig(0.5, 0.5, 1, end_step=1), "full")["pruner"]
    pruner.on_train_start(model, TrainState())
    names = set(pruner.masks)
    assert "src_embed.lut" in names and "tgt_embed.lut" not in names
    assert not any("norm" in n for n in names) and len(names) == 1 + 4 + 2 + 8 + 2 + 1
    for name, t in model.state_dict().items():
        if "norm" in name or name.endswith(".bias"):
            assert torch.equal(t, before[name]), name
    lut = model.src_embed.lut.weight
    assert model.tgt_embed.lut.weight is lut and int((lut == 0).sum()) == lut.numel() // 2
    # the same module under two names, or the same tensor in two modules, gets one mask
    assert list(MagnitudePruner({"a": model.src_embed.lut, "b": model.tgt_embed.lut}, AGP).modules) == ["a"]
    other = nn.Embedding(50, 32)
    other.weight = lut
    assert list(MagnitudePruner({"a": model.src_embed.lut, "b": other}, AGP).modules) == ["a"]
    with pytest.raises(ValueError, match="no weight matrix"):
        MagnitudePruner({"norm": model.encoder.norm}, AGP)


def test_nonzero_parameters_and_pruning_ratio_match_a_hand_count():
    model = _model(share=True)
    # hand count, d=32, d_ff=64, vocab 50, one layer a side, shared 50x32 embedding:
    matrices = 50 * 32 + 4 * 32 * 32 + 2 * 32 * 64 + 8 * 32 * 32 + 2 * 32 * 64 + 32 * 50
    biases = 12 * 32 + 2 * (64 + 32) + 50
    norms = 7 * 2 * 32                                  # 7 LayerNorms: weight and (zero-initialized) bias
    n_m = matrices + biases + norms
    assert count_parameters(model) == n_m == 24754
    assert nonzero_parameters(model) == n_m - 7 * 32    # only the LayerNorm biases start at zero
    pruner = magnitude_pruning(model, AGPConfig(0.5, 0.5, 1, end_step=1), "full")["pruner"]
    pruner.on_train_start(model, TrainState())
    nnz = n_m - matrices // 2 - 7 * 32
    assert nonzero_parameters(model) == nnz == 12690
    assert pruning_ratio(count_parameters(model), nonzero_parameters(model)) == pytest.approx(24754 / 12690)
    assert pruner.sparsity_report()["total"] == {"zeros": matrices // 2, "numel": matrices, "sparsity": 0.5}
