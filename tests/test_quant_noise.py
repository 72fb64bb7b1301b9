"""Quant-Noise and iterative product quantization: the block noise, k-means over subvectors, the
staged schedule, the stored form through the artifact, and the method through the training loop."""

import math

import pytest
import torch
from torch import nn

from tcompress.compress.artifact import save_compressed, stored_bits
from tcompress.compress.linear_quant import QuantSpec, qparams, tensor_range
from tcompress.compress.quantized import QuantizedModule
from tcompress.config import ModelConfig
from tcompress.loader import load_model
from tcompress.methods.quant_noise.modules import (
    IPQSchedule, IPQTrainingModule, NoisyScalarModule, block_mask, export, split_stages, stage_starts,
)
from tcompress.methods.quant_noise.product_quant import (
    ProductCodebookModule, gather, int8_codebook, kmeans, quantize_matrix,
)
from tcompress.model import Vocab, make_model


def _tiny():
    torch.manual_seed(0)
    return make_model(ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64), Vocab(50, 50))


# ------------------------------------------------------------------------------ product quantization

def test_kmeans_finds_well_separated_clusters_exactly():
    torch.manual_seed(0)
    centres = torch.randn(4, 3) * 10
    labels = torch.arange(200) % 4
    x = centres[labels] + 0.01 * torch.randn(200, 3)
    codes, centroids = kmeans(x, 4, iterations=20, seed=1)
    # Each found cluster is one true cluster, and its centroid is the members' mean.
    assert all(len(set(labels[codes == c].tolist())) == 1 for c in range(4))
    for c in range(4):
        assert torch.allclose(centroids[c], x[codes == c].mean(0), atol=1e-5)


def test_kmeans_reseeds_empty_clusters_and_copes_with_fewer_rows_than_centroids():
    x = torch.tensor([[0.0], [0.0], [0.0], [5.0], [9.0]])
    codes, centroids = kmeans(x, 3, iterations=10, seed=0)
    assert sorted(centroids.flatten().tolist()) == [0.0, 5.0, 9.0]   # three distinct values, three centroids
    codes, centroids = kmeans(torch.randn(3, 2), 8, iterations=5, seed=0)
    assert centroids.shape == (8, 2) and int(codes.max()) < 8


def test_a_matrix_is_cut_into_row_blocks_and_gathered_back():
    weight = torch.arange(24.0).reshape(3, 8)
    codes, codebook = quantize_matrix(weight, block=4, k=6, iterations=10, seed=0)
    assert codes.shape == (3, 2) and codes.dtype == torch.uint8 and codebook.shape == (6, 4)
    assert torch.equal(gather(codebook, codes), weight)   # 6 distinct blocks, 6 centroids: lossless
    with pytest.raises(ValueError, match="does not split into blocks of 3"):
        quantize_matrix(weight, block=3, k=4, iterations=1, seed=0)


def test_int8_codebook_step_is_max_abs_over_127():
    book = torch.tensor([[0.5, -1.27], [0.0, 0.01]])
    q, scale = int8_codebook(book)
    assert scale.item() == pytest.approx(1.27 / 127)
    assert q.dtype == torch.int8 and q.tolist() == [[50, -127], [0, 1]]


@pytest.mark.parametrize("codebook_bits", [32, 8])
def test_pq_stored_form_survives_the_artifact_and_counts_its_bits(tmp_path, codebook_bits):
    model = _tiny()
    linear = model.encoder.layers[0].feed_forward.w_1
    codes, book = quantize_matrix(linear.weight, 8, 16, 10, 0)
    stored = ProductCodebookModule.from_codes(linear, codes, book, codebook_bits)
    model.encoder.layers[0].feed_forward.w_1 = stored
    expected = gather(stored.codebook(), codes)
    assert torch.equal(stored.inner.weight, expected)
    if codebook_bits == 32:
        assert torch.equal(expected, gather(book, codes))
    else:   # int8 centroids: within half a step of the float ones
        assert (expected - gather(book, codes)).abs().max() <= stored.weight_codebook_scale / 2 + 1e-7
    # 64·32 weights in blocks of 8 at 4 bits each, plus the 16·8 codebook at its width
    assert stored.stored_bits() == 64 * 4 * 4 + 16 * 8 * codebook_bits + (32 if codebook_bits == 8 else 0)
    src, tgt = torch.randint(4, 50, (2, 7)), torch.randint(4, 50, (2, 6))
    model.eval()
    before = model(src, tgt)
    save_compressed(model, tmp_path / "m.safetensors")
    loaded, payload = load_model(tmp_path / "m.safetensors")
    assert payload["compression"]["pq"] == {"encoder.layers.0.feed_forward.w_1": stored.describe()}
    assert torch.equal(loaded(src, tgt), before)
    assert stored_bits(loaded) == stored_bits(model)


# ------------------------------------------------------------------------------------- the noise

def test_block_mask_draws_whole_blocks_at_the_rate():
    torch.manual_seed(0)
    mask = block_mask(torch.zeros(200, 64), 8, 0.25)
    blocks = mask.reshape(200, 8, 8)
    assert torch.equal(blocks.all(-1), blocks.any(-1))          # a block is drawn whole or not at all
    assert abs(blocks.all(-1).float().mean().item() - 0.25) < 0.03


def _scalar(rate: float, per_channel: bool = True):
    torch.manual_seed(0)
    return NoisyScalarModule(nn.Linear(16, 6), QuantSpec(4, "asym", per_channel), rate, block=4)


def test_scalar_noise_quantizes_the_drawn_blocks_only_with_the_straight_through_gradient():
    m = _scalar(0.5)
    w = m.inner.weight.detach()
    scale, zp = qparams(*tensor_range(w, True), m.spec)
    reference = torch.fake_quantize_per_channel_affine(w, scale, zp.to(torch.int32), 0, 0, 15)
    m.train()
    torch.manual_seed(5)
    noisy = m.noisy_weight()
    quantized = (noisy == reference) & (noisy != w)
    blocks = (noisy == reference).reshape(6, 4, 4).all(-1) | (noisy == w).reshape(6, 4, 4).all(-1)
    assert blocks.all() and 0 < quantized.float().mean() < 1   # whole blocks, some quantized, some float
    noisy.sum().backward()
    # STE: every weight inside the range gets the upstream gradient, quantized or not (min/max ranges cut none).
    assert torch.equal(m.inner.weight.grad, torch.ones_like(w))


def test_scalar_rates_zero_and_one_are_float_and_qat_and_evaluation_is_fully_quantized():
    x = torch.randn(3, 16)
    float_m, qat_m = _scalar(0.0), _scalar(1.0)
    float_m.train(), qat_m.train()
    assert torch.equal(float_m(x), float_m.inner(x))
    w = qat_m.inner.weight.detach()
    scale, zp = qparams(*tensor_range(w, True), qat_m.spec)
    reference = torch.fake_quantize_per_channel_affine(w, scale, zp.to(torch.int32), 0, 0, 15)
    assert torch.equal(qat_m.noisy_weight(), reference)
    float_m.eval()
    assert torch.equal(float_m.noisy_weight(), reference)       # same seed, same weights: eval quantizes all
    model = nn.Sequential(float_m)
    out = model(x)
    assert export(model) == 1 and isinstance(model[0], QuantizedModule)
    assert torch.equal(model(x), out)                           # the artifact computes what evaluation did


def test_ipq_proxy_noise_drops_blocks_and_rescales_the_rest():
    torch.manual_seed(0)
    m = IPQTrainingModule(nn.Linear(16, 6), rate=0.25, block=4, centroids=8)
    w = m.inner.weight.detach()
    m.train()
    noisy = m.effective_weight().detach()
    dropped = noisy == 0
    assert torch.equal(dropped.reshape(6, 4, 4).all(-1), dropped.reshape(6, 4, 4).any(-1))
    assert torch.allclose(noisy[~dropped], w[~dropped] / 0.75)
    m.eval()
    assert torch.equal(m.effective_weight(), m.inner.weight)    # no noise when evaluating


def test_ipq_quantized_matrix_trains_its_centroids_only():
    torch.manual_seed(0)
    m = IPQTrainingModule(nn.Linear(16, 6), rate=0.1, block=4, centroids=8)
    m.quantize(iterations=10, seed=0)
    assert bool(m.quantized) and m.codes.shape == (6, 4)
    m.train()
    x = torch.randn(5, 16)
    assert torch.allclose(m(x), nn.functional.linear(x, gather(m.codebook, m.codes), m.inner.bias))
    m(x).sum().backward()
    assert m.inner.weight.grad is None and m.codebook.grad is not None
    # A centroid's gradient is the sum of its members' gradients (each block's slice of dL/dW).
    dw = torch.outer(torch.ones(6), x.sum(0)).reshape(24, 4)
    members = torch.zeros(8, 4).index_add_(0, m.codes.flatten().long(), dw)
    assert torch.allclose(m.codebook.grad, members, atol=1e-5)


def test_stages_split_bottom_up_and_start_evenly_through_the_budget():
    assert stage_starts(100, 4) == [20, 40, 60, 80]
    assert split_stages(list(range(10)), 4) == [[0, 1], [2, 3, 4], [5, 6, 7], [8, 9]]
    assert split_stages([1, 2], 5) == [[1], [2]]


def test_schedule_quantizes_each_stage_at_its_step_and_a_resume_catches_up():
    class State:
        step = 0

    torch.manual_seed(0)
    modules = [IPQTrainingModule(nn.Linear(8, 4), 0.1, 4, 4) for _ in range(3)]
    schedule = IPQSchedule([[modules[0]], modules[1:]], [2, 5], iterations=5, seed=0)
    state = State()
    schedule.on_train_start(None, state)
    seen = []
    for step in range(1, 7):
        state.step = step
        schedule.on_step_end(None, state)
        seen.append([bool(m.quantized) for m in modules])
    assert seen[0] == [False] * 3 and seen[1] == [True, False, False] and seen[4] == [True] * 3
    fresh = [IPQTrainingModule(nn.Linear(8, 4), 0.1, 4, 4) for _ in range(3)]
    state.step = 3                           # a run resumed at step 3: stage 0 is due, stage 1 is not
    IPQSchedule([[fresh[0]], fresh[1:]], [2, 5], 5, 0).on_train_start(None, state)
    assert [bool(m.quantized) for m in fresh] == [True, False, False]


def test_export_refuses_a_matrix_the_schedule_never_reached():
    model = nn.Sequential(IPQTrainingModule(nn.Linear(8, 4), 0.1, 4, 4))
    with pytest.raises(RuntimeError, match="never quantized"):
        export(model)


def test_pq_ratio_counts_indices_codebooks_and_float_rest():
    model = _tiny()
    n = sum(p.numel() for p in model.parameters())
    linear = model.decoder.layers[0].feed_forward.w_2          # (32, 64)
    codes, book = quantize_matrix(linear.weight, 8, 256, 5, 0)
    model.decoder.layers[0].feed_forward.w_2 = ProductCodebookModule.from_codes(linear, codes, book)
    expected = (n - 32 * 64) * 32 + 32 * 64 // 8 * int(math.log2(256)) + 256 * 8 * 32
    assert stored_bits(model) == expected
