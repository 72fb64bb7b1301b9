"""Weight sharing and quantizer-trained weights: k-means against a textbook Lloyd, codebook gradients against a
dense reference, artifacts, binarizers, BS-Flex centroids, QSGD's unbiasedness and the config checks."""

import copy

import pytest
import torch
import yaml
from torch import nn

from conftest import REPO
from tcompress.compress.artifact import save_compressed
from tcompress.compress.codebook import CodebookModule, ShadowWeightModule, gather_rows
from tcompress.config import ModelConfig
from tcompress.loader import load_model
from tcompress.methods.binary import _binarizer, export_binary, two_centroids, two_means
from tcompress.methods.kmeans import KMeansPTQParams, cluster_weight, kmeans_1d, share_weights
from tcompress.methods.qsgd import code_bits, levels, qsgd, qsgd_levels
from tcompress.model import BOS, EOS, Vocab, make_model
from tcompress.params import params_from_dict
from tcompress.schema import ConfigError

TINY = ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, share_embeddings=True)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def tiny_model():
    torch.manual_seed(0)
    return make_model(TINY, Vocab(50, 50)).eval()


def tokens():
    g = gen(1)
    src, tgt = torch.randint(4, 50, (3, 7), generator=g), torch.randint(4, 50, (3, 6), generator=g)
    src[:, -1], tgt[:, 0] = EOS, BOS
    return src, tgt


# 1-3. k-means.

def lloyd_reference(x, k, iterations):
    """Textbook Lloyd per row in float64: linear init, argmin |x - c|, members' means (an empty cluster keeps its
    centroid), centroids sorted, stop when no assignment changes."""
    all_codes, all_cents = [], []
    for row in x.double():
        lo, hi = float(row.min()), float(row.max())
        c = torch.tensor([lo + (hi - lo) * i / (k - 1) for i in range(k)], dtype=torch.float64)
        codes = (row[:, None] - c[None]).abs().argmin(1)
        for _ in range(iterations):
            c = torch.stack([row[codes == j].mean() if (codes == j).any() else c[j] for j in range(k)]).sort().values
            new = (row[:, None] - c[None]).abs().argmin(1)
            if torch.equal(new, codes):
                break
            codes = new
        all_codes.append(codes)
        all_cents.append(c)
    return torch.stack(all_codes), torch.stack(all_cents)


@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("k", [2, 4, 16])
def test_kmeans_linear_equals_textbook_lloyd(rows, k):
    """Linear init: same codes and centroids as the naive reference, empty clusters (an outlier) included."""
    x = torch.randn(rows, 300, generator=gen(k + rows))
    x[:, 0] = 12.0  # the outlier leaves linear bins between 3 and 12 empty
    codes, cents = kmeans_1d(x, k, init="linear", iterations=30)
    ref_codes, ref_cents = lloyd_reference(x, k, 30)
    assert codes.shape == (rows, 300) and cents.shape == (rows, k)
    assert torch.equal(codes, ref_codes)
    assert torch.allclose(cents.double(), ref_cents, atol=1e-5)


def test_kmeanspp_is_seeded_and_finds_separated_means():
    """k-means++: one result per seed, seeds differ, seeds are data points; a 4-Gaussian mixture's means are found."""
    x = torch.rand(2, 500, generator=gen(0))
    a, b = kmeans_1d(x, 8, iterations=0, seed=3), kmeans_1d(x, 8, iterations=0, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert any(not torch.equal(kmeans_1d(x, 8, iterations=0, seed=s)[1], a[1]) for s in range(4))
    assert all(bool((x[r][:, None] == a[1][r][None]).any(0).all()) for r in range(2))  # seeds are data points
    means = torch.tensor([-6.0, -1.0, 3.0, 9.0])
    mix = (means[torch.arange(2000) % 4] + 0.3 * torch.randn(2000, generator=gen(1)))
    mix = torch.stack([mix, mix[torch.randperm(2000, generator=gen(2))]])
    for seed in range(3):
        codes, cents = kmeans_1d(mix, 4, init="kmeans++", iterations=30, seed=seed)
        assert codes.min() >= 0 and codes.max() < 4
        assert torch.allclose(cents, means.expand(2, 4), atol=0.05)


def nearest(values, cents):
    return (values[:, None] - cents[None]).abs().argmin(1)


@pytest.mark.parametrize("bits", [1, 2, 4])
@pytest.mark.parametrize("per_row", [False, True])
def test_cluster_weight_codes_zeros_and_rows(bits, per_row):
    """uint8 codes of the weight's shape, (rows, 2^bits) codebook; exact zeros -> code 0 with centroid exactly 0
    (nonzeros never); each weight at its row's nearest centroid; gather_rows reads each row's own codebook."""
    w = torch.randn(6, 20, generator=gen(bits))
    for pruned in (False, True):
        if pruned:
            w = w * (torch.rand(6, 20, generator=gen(9)) > 0.3)
            w[2] = 0.0  # a fully pruned row
        codes, book = cluster_weight(w, bits, per_row, "kmeans++", 30, seed=0)
        rows = 6 if per_row else 1
        assert codes.dtype == torch.uint8 and codes.shape == w.shape and book.shape == (rows, 2 ** bits)
        deq = gather_rows(book, codes)
        for r in range(6):
            cb = book[r if per_row else 0]
            assert torch.equal(deq[r], cb[codes[r].long()])
            if pruned:
                zero = w[r] == 0
                assert (codes[r][zero] == 0).all() and (codes[r][~zero] != 0).all() and cb[0].item() == 0.0
                if (~zero).any():
                    assert torch.equal(codes[r][~zero].long(), nearest(w[r][~zero], cb[1:]) + 1)
            else:
                assert torch.equal(codes[r].long(), nearest(w[r], cb))


# 4-5. CodebookModule.

def gathered(codebook, codes):
    """The dense weight by explicit indexing, row by row."""
    return torch.stack([codebook[r if codebook.shape[0] > 1 else 0][codes[r].long()] for r in range(codes.shape[0])])


@pytest.mark.parametrize("kind", ["linear", "embedding"])
@pytest.mark.parametrize("per_row", [False, True])
def test_trainable_codebook_gradient_is_scatter_add(kind, per_row):
    """d loss / d codebook[r, c] = sum of the dense weight's gradients over row r's (or all) weights coded c."""
    torch.manual_seed(0)
    inner = nn.Linear(8, 6) if kind == "linear" else nn.Embedding(10, 5)
    x = torch.randn(4, 8) if kind == "linear" else torch.tensor([[1, 3, 3, 9], [0, 1, 7, 3]])
    rows, bits = (inner.weight.shape[0] if per_row else 1), 2
    codes = torch.randint(0, 4, inner.weight.shape, dtype=torch.uint8)
    codebook = torch.randn(rows, 4)
    ref = copy.deepcopy(inner)
    ref.weight = nn.Parameter(gathered(codebook, codes))
    m = CodebookModule.from_codes(inner, codes, codebook, bits, trainable=True)
    assert m.trainable and "inner.weight" not in dict(m.named_parameters())
    upstream = torch.randn(ref(x).shape)
    out_ref, out = ref(x), m(x)
    assert torch.allclose(out, out_ref, atol=1e-6)
    (out * upstream).sum().backward()
    (out_ref * upstream).sum().backward()
    dense = ref.weight.grad.reshape(rows, -1)
    expected = torch.zeros(rows, 4, dtype=dense.dtype)
    for r in range(rows):
        expected[r].index_add_(0, codes.reshape(rows, -1)[r].long(), dense[r])
    assert torch.allclose(m.weight_codebook.grad, expected, atol=1e-5)
    if kind == "linear":
        assert torch.allclose(m.inner.bias.grad, ref.bias.grad, atol=1e-6)


def test_freeze_makes_the_trained_codebook_a_buffer():
    """freeze(): same values as a buffer, the forward computes with the trained codebook."""
    torch.manual_seed(0)
    m = CodebookModule.from_codes(nn.Linear(8, 6), torch.randint(0, 8, (6, 8), dtype=torch.uint8),
                                  torch.randn(1, 8), bits=3, trainable=True)
    x = torch.randn(5, 8)
    m(x).square().sum().backward()
    with torch.no_grad():
        m.weight_codebook -= 0.1 * m.weight_codebook.grad  # a training step moves the centroids
        out, book = m(x), m.weight_codebook.detach().clone()
    m.freeze()
    assert not m.trainable and "weight_codebook" in dict(m.named_buffers())
    assert not any(n.endswith("codebook") for n, _ in m.named_parameters())
    assert torch.equal(m.weight_codebook, book) and torch.equal(m(x), out)


@pytest.mark.parametrize("per_row", [False, True])
def test_kmeans_model_round_trips_through_the_artifact(tmp_path, per_row):
    """A 4-bit k-means model (centroids fine-tuned a step, then frozen) loads with its codes and equal logits, and
    its file is smaller than the float model's by most of the codes' saving."""
    model, (src, tgt) = tiny_model(), tokens()
    float_bytes = save_compressed(model, tmp_path / "float.safetensors")
    share_weights(model, {"group": "att", "bits": 4}, KMeansPTQParams(per_row=per_row, iterations=10),
                  seed=0, trainable=True)
    wrappers = [m for m in model.modules() if isinstance(m, CodebookModule)]
    model(src, tgt).logsumexp(-1).sum().backward()
    with torch.no_grad():
        for w in wrappers:
            w.weight_codebook -= 0.01 * w.weight_codebook.grad
    for w in wrappers:
        w.freeze()
    size = save_compressed(model, tmp_path / "c.safetensors")
    loaded, _ = load_model(tmp_path / "c.safetensors")
    coded = {n: m for n, m in model.named_modules() if isinstance(m, CodebookModule)}
    assert len(coded) == len(wrappers) == 12
    for name, m in coded.items():
        got = loaded.get_submodule(name)
        assert isinstance(got, CodebookModule) and (got.bits, got.rows) == (4, m.rows)
        assert torch.equal(got.weight_codes, m.weight_codes) and torch.equal(got.weight_codebook, m.weight_codebook)
    with torch.no_grad():
        assert torch.equal(loaded(src, tgt), model.eval()(src, tgt))
    saving = sum(4 * m.weight_codes.numel() - m.weight_codes.numel() // 2 - 4 * m.weight_codebook.numel()
                 for m in coded.values())
    assert size < float_bytes - saving // 2


# 6-7. Binarization and BS-Flex.

@pytest.mark.parametrize("per_row", [False, True])
def test_binarizer_is_alpha_sign_with_straight_through_gradient(per_row):
    """scale mean: exactly ±α, α = mean|w| per tensor or row; gradient = upstream."""
    w = torch.randn(5, 7, generator=gen(0), requires_grad=True)
    out = _binarizer("mean", per_row)(w)
    alpha = w.detach().abs().mean(1, keepdim=True) if per_row else w.detach().abs().mean()
    assert torch.equal(out, torch.where(w >= 0, alpha, -alpha))
    g = torch.randn(5, 7, generator=gen(1))
    (out * g).sum().backward()
    assert torch.equal(w.grad, g)


def test_binarizer_without_scale_is_sign_with_binaryconnect_clip():
    """scale none: exactly ±1; gradient upstream where |w| <= 1, zero where |w| > 1."""
    w = (2 * torch.randn(8, 9, generator=gen(0))).requires_grad_()
    out = _binarizer("none", False)(w)
    assert torch.equal(out, torch.where(w >= 0, 1.0, -1.0))
    g = torch.randn(8, 9, generator=gen(1))
    (out * g).sum().backward()
    inside = w.detach().abs() <= 1
    assert (~inside).any() and torch.equal(w.grad, torch.where(inside, g, torch.zeros(())))


def test_bsflex_fixed_and_flex_centroids():
    """fixed: centroids never move; flex: a training forward is one Lloyd step (assign by the old midpoint, move to
    members' means), eval never updates; output is the nearer centroid, gradient straight through."""
    w = torch.randn(6, 10, generator=gen(0))
    lo, hi = two_means(w, 10)
    mid = (lo + hi) / 2
    assert torch.allclose(torch.stack([w[w < mid].mean(), w[w >= mid].mean()]), torch.stack([lo, hi]))
    fixed = two_centroids(w, flex=False, iterations=10).train()
    start = fixed.centroids.clone()
    moved = w + 0.5 * torch.randn(6, 10, generator=gen(1))
    for _ in range(3):
        out = fixed(moved)
    assert torch.equal(fixed.centroids, start)
    assert torch.allclose(out, torch.where(moved >= mid, hi, lo))
    flex = two_centroids(w, flex=True, iterations=10).train()
    pushed = w.clone()
    i = int((w < mid).reshape(-1).nonzero()[0])
    pushed.view(-1)[i] = hi + 1.0                   # a low member pushed across the midpoint
    shadow = pushed.clone().requires_grad_()
    out = flex(shadow)
    upper = pushed >= mid
    new_lo, new_hi = pushed[~upper].mean(), pushed[upper].mean()
    assert torch.allclose(flex.centroids, torch.stack([new_lo, new_hi]))
    assert torch.allclose(out, torch.where(upper, new_hi, new_lo)) and out.view(-1)[i] > mid
    g = torch.randn(6, 10, generator=gen(2))
    (out * g).sum().backward()
    assert torch.equal(shadow.grad, g)
    flex.eval()
    before = flex.centroids.clone()
    flex(moved)
    assert torch.equal(flex.centroids, before)


@pytest.mark.parametrize("quantizer", ["mean", "mean-row", "bsflex"])
def test_binarized_forward_takes_exactly_two_values_per_codebook(quantizer):
    """The forward is exactly ±α (per row for mean-row) or exactly one of the two centroids."""
    w = torch.randn(64, 64, generator=gen(0))
    q = two_centroids(w, True, 10).train() if quantizer == "bsflex" else _binarizer("mean", quantizer == "mean-row")
    out = q(w)
    assert all(row.unique().numel() <= 2 for row in out) and out.unique().numel() <= (128 if "row" in quantizer else 2)


def test_export_binary_keeps_every_weights_sign():
    """Export to a 1-bit CodebookModule: each weight keeps its binarized value (±α), so its sign."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64))
    w = model[0].weight.detach().clone()
    wrapper = ShadowWeightModule(model[0], _binarizer("mean", False))
    model[0] = wrapper
    export_binary(model, [wrapper], per_row_codebook=False)
    assert isinstance(model[0], CodebookModule)
    alpha = w.abs().mean()
    assert torch.equal(model[0].dequantized(), torch.where(w >= 0, alpha, -alpha))


# 8. QSGD.

def test_levels_and_code_bits():
    assert (levels(8), levels(4), levels(2), levels(1)) == (127, 7, 1, 1)
    assert (code_bits(8), code_bits(4), code_bits(2), code_bits(1)) == (8, 4, 2, 2)


@pytest.mark.parametrize("s", [1, 3, 127])
def test_qsgd_is_unbiased_and_draws_neighbouring_levels(s):
    """Mean of 20,000 draws within 5 standard errors (per entry, from p(1-p)) of v; each draw is
    sign(v_i)·‖v‖·l/s or ·(l+1)/s with l = floor(|v_i|/‖v‖·s)."""
    v, n_draws = torch.randn(64, generator=gen(s)), 20_000
    g = gen(100 + s)
    draws = torch.stack([qsgd(v, s, "tensor", "l2", generator=g) for _ in range(n_draws)])
    norm = v.norm()
    a = v.abs() / norm * s
    p = a - a.floor()
    tolerance = 5 * norm / s * (p * (1 - p) / n_draws).sqrt() + 1e-6 * norm
    assert ((draws.mean(0) - v).abs() <= tolerance).all()
    level = draws.abs() * s / norm
    assert torch.allclose(level, level.round(), atol=1e-4)
    level = level.round()
    assert ((level == a.floor()) | (level == a.floor() + 1)).all() and (level <= s).all()
    assert ((draws == 0) | (draws.sign() == v.sign())).all()
    q, step = qsgd_levels(v, s, generator=gen(7))
    assert torch.equal(q, q.round()) and q.abs().max() <= s and torch.allclose(step, norm / s)


def test_qsgd_zero_vector_and_zero_row_are_exactly_zero():
    assert torch.equal(qsgd(torch.zeros(16), 7), torch.zeros(16))
    v = torch.randn(3, 8, generator=gen(0))
    v[1] = 0.0
    q, step = qsgd_levels(v, 7, bucket="row", generator=gen(1))
    out = q * step
    assert not out.isnan().any() and torch.equal(out[1], torch.zeros(8)) and out[0].abs().sum() > 0


@pytest.mark.parametrize("norm", ["l2", "max"])
def test_qsgd_row_buckets_max_norm_and_nearest_rounding(norm):
    """bucket row = each row alone as a tensor; norm max = max|v_i| (the largest entry at level s); deterministic
    rounding = sign(v)·round(|v|/‖v‖·s)."""
    v, s = torch.randn(5, 16, generator=gen(0)), 7
    q, step = qsgd_levels(v, s, bucket="row", norm=norm, stochastic=False)
    assert step.shape == (5, 1)
    for r in range(5):
        qr, sr = qsgd_levels(v[r], s, bucket="tensor", norm=norm, stochastic=False)
        assert torch.equal(q[r], qr) and torch.allclose(step[r, 0], sr)
    q, step = qsgd_levels(v, s, bucket="tensor", norm=norm, stochastic=False)
    scale = v.abs().max() if norm == "max" else torch.linalg.vector_norm(v)
    assert torch.allclose(step, scale / s)
    assert torch.equal(q, v.sign() * (v.abs() / scale * s).round())
    if norm == "max":
        assert q.abs().max() == s



def test_qsgd_eval_mode_computes_the_kind_of_codes_its_export_stores():
    """Training draws afresh at every call; eval mode rounds to nearest with ``export: nearest`` (the
    default) and holds one fixed draw with ``export: stochastic``; at s = 1 on a 256-wide row nearest
    rounding sends most entries to 0, and a draw keeps a few."""
    from tcompress.methods.qsgd import QSGDParams, _quantizer

    w = torch.randn(4, 256, generator=gen(3))
    drawn = _quantizer(1, QSGDParams(bucket="row", export="stochastic"))
    assert QSGDParams().export == "nearest"
    drawn.train()
    assert not torch.equal(drawn(w), drawn(w))
    drawn.eval()
    assert torch.equal(drawn(w), drawn(w))
    nearest = _quantizer(1, QSGDParams(bucket="row", export="nearest")).eval()
    q, _ = qsgd_levels(w, 1, bucket="row", stochastic=False)
    assert torch.equal(nearest(w), (q * w.norm(dim=1, keepdim=True)).to(w.dtype))
    assert (nearest(w) == 0).float().mean() > 0.9 and (drawn(w) != 0).float().mean() > 0.03


# 9. Config validation.

def repo_params(**patch):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw.update(patch)
    return raw


@pytest.mark.parametrize("section, bits", [("kmeans", 9), ("kmeans_ptq", 9), ("qsgd", 0)])
def test_out_of_range_bits_name_the_key_when_selected(section, bits):
    with pytest.raises(ConfigError) as err:
        params_from_dict(repo_params(methods=[section], **{section: {"bits": [bits]}}))
    assert f"{section}.bits: {bits} is out of range" in str(err.value)


@pytest.mark.parametrize("section, bits", [("kmeans", 9), ("qsgd", 0)])
def test_out_of_range_bits_name_the_key_when_not_selected(section, bits):
    """params.yaml's promise: every value is checked, a method's grid keys too when it is not selected."""
    with pytest.raises(ConfigError) as err:
        params_from_dict(repo_params(**{section: {"bits": [bits]}}))
    assert section in str(err.value) and "bits" in str(err.value)


class NoTraining:
    """A cell context whose fine-tuning takes no step: what compress() does around the loop."""
    seed = 0

    def finetune(self, model, hooks):
        return {}


def test_binary_score_scale_multiplies_every_attention_score_through_the_queries():
    """binary.score_scale c: each exported query projection computes c times what the unscaled cell's
    does (so q·k/√d_k is multiplied by c); every other projection is unchanged."""
    from tcompress.methods.base import Cell
    from tcompress.methods.binary import BinaryParams, compress_binary

    torch.manual_seed(0)
    plain, scaled = tiny_model(), tiny_model()
    scaled.load_state_dict(plain.state_dict())
    cell = Cell("binary", (("group", "att"),))
    compress_binary(plain, cell, BinaryParams(groups=("att",)), NoTraining())
    compress_binary(scaled, cell, BinaryParams(groups=("att",), score_scale=0.25), NoTraining())
    x = torch.randn(3, 5, plain.cfg.d_model, generator=gen(2))
    names = [n for n, m in plain.named_modules() if isinstance(m, CodebookModule)]
    assert any(n.endswith(".q_proj") for n in names)
    for name in names:
        a, b = plain.get_submodule(name)(x), scaled.get_submodule(name)(x)
        assert torch.allclose(b, 0.25 * a if name.endswith(".q_proj") else a, atol=1e-6), name
