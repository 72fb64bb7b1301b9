"""Distillation: the word-level KD loss against its formula, the student's shape, the training loop's
loss hook, the teacher's translations (framing, chunked resume) and when the teacher stage runs."""

import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import tiny_params
import tcompress.decode as decode
from tcompress.config import ModelConfig, TrainConfig
from tcompress.decode import DecodeOptions
from tcompress.methods.distill import DistillParams, TeacherTopK, _teacher_top_k, _word_kd_hook, check, student_model
from tcompress import teacher as teacher_module
from tcompress.model import BOS, EOS, PAD, Vocab, count_parameters, make_model
from tcompress.params import load_params
from tcompress.plan import resolve
from tcompress.schema import ConfigError
from tcompress.training import Hook, ParallelData, fit

TEACHER_CFG = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64)


def _teacher():
    torch.manual_seed(0)
    return make_model(TEACHER_CFG, Vocab(40, 40)).eval()


def _batch():
    torch.manual_seed(1)
    src = torch.randint(4, 40, (3, 6))
    tgt = torch.cat([torch.full((3, 1), BOS), torch.randint(4, 40, (3, 5)), torch.full((3, 1), EOS)], 1)
    tgt[2, 4:] = PAD                      # a shorter sentence: its padding is no target
    return src, tgt


@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (2.0, 0.3), (1.0, 0.0)])
def test_word_kd_loss_is_the_mixture_of_the_formula(temperature, alpha):
    teacher = _teacher()
    src, tgt = _batch()
    logits = torch.randn(3, 6, 40, requires_grad=True)
    ce = torch.tensor(7.0)
    got = _word_kd_hook(teacher, temperature, alpha).training_loss(src, tgt, logits, ce)
    with torch.no_grad():
        q = F.softmax(teacher(src, tgt[:, :-1]) / temperature, -1)
    p = F.softmax(logits / temperature, -1)
    keep = tgt[:, 1:] != PAD
    kl = (q * (q.log() - p.log())).sum(-1)[keep].sum()          # Σ over target tokens of KL(q ‖ p)
    assert torch.allclose(got, (1 - alpha) * ce + alpha * temperature ** 2 * kl, rtol=1e-5)
    if alpha:
        # Hinton et al.: the gradient of T²·KL with respect to a logit is T·(p_T − q_T), at target tokens only.
        got.backward()
        expected = alpha * temperature * (p - q).detach() * keep.unsqueeze(-1)
        assert torch.allclose(logits.grad, expected, atol=1e-6)


def _pairs(src, tgt):
    """The batch's rows as training pairs (padding stripped), with rows 1 and 0 repeated: 5 pairs, 3 distinct."""
    data = ParallelData([[x for x in r if x != PAD] for r in src.tolist()], [[x for x in r if x != PAD] for r in tgt.tolist()])
    return ParallelData([data.src[1], *data.src, data.src[0]], [data.tgt[1], *data.tgt, data.tgt[0]])


def test_cached_top_k_over_the_whole_vocabulary_is_the_live_teachers_loss():
    teacher = _teacher()
    src, tgt = _batch()
    cache = TeacherTopK(teacher, _pairs(src, tgt), 40, batch_tokens=14, device="cpu", bf16=False)
    logits = torch.randn(3, 6, 40, requires_grad=True)
    live = _word_kd_hook(teacher, 2.0, 0.5).training_loss(src, tgt, logits, torch.tensor(3.0))
    cached = _word_kd_hook(teacher, 2.0, 0.5, cache).training_loss(src, tgt, logits, torch.tensor(3.0))
    assert torch.allclose(cached, live, rtol=1e-5)
    (g_live,) = torch.autograd.grad(live, logits)
    (g_cached,) = torch.autograd.grad(cached, logits)
    assert torch.allclose(g_cached, g_live, atol=1e-6)


@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (2.0, 0.3)])
def test_cached_top_k_is_kl_to_the_teachers_renormalized_top_k(temperature, alpha):
    teacher = _teacher()
    src, tgt = _batch()
    k = 3
    cache = TeacherTopK(teacher, _pairs(src, tgt), k, batch_tokens=14, device="cpu", bf16=False)
    logits = torch.randn(3, 6, 40, requires_grad=True)
    got = _word_kd_hook(teacher, temperature, alpha, cache).training_loss(src, tgt, logits, torch.tensor(7.0))
    with torch.no_grad():
        top = teacher(src, tgt[:, :-1]).topk(k, dim=-1)
        q = torch.zeros(3, 6, 40).scatter(-1, top.indices, F.softmax(top.values / temperature, -1))
    p = F.softmax(logits / temperature, -1)
    keep = tgt[:, 1:] != PAD
    kl = torch.where(q > 0, q * (q.clamp_min(1e-30).log() - p.log()), 0.0).sum(-1)[keep].sum()
    assert torch.allclose(got, (1 - alpha) * 7.0 + alpha * temperature ** 2 * kl, rtol=1e-5)
    got.backward()   # the same form as the full KL's gradient, with q zero outside the top k
    assert torch.allclose(logits.grad, alpha * temperature * (p - q).detach() * keep.unsqueeze(-1), atol=1e-6)


def test_the_top_k_cache_finds_a_batchs_rows_by_content_and_refuses_an_unknown_pair():
    teacher = _teacher()
    src, tgt = _batch()
    cache = TeacherTopK(teacher, _pairs(src, tgt), 2, batch_tokens=14, device="cpu", bf16=False)
    assert len(cache.row) == 3                      # the duplicated pair has one entry
    order = torch.tensor([2, 0, 1])                  # another batch order, other padding
    values, indices = cache.lookup(src[order], tgt[order])
    with torch.no_grad():
        top = teacher(src[order], tgt[order][:, :-1]).topk(2, dim=-1)
    keep = tgt[order][:, 1:] != PAD
    assert torch.equal(indices, top.indices[keep]) and torch.allclose(values, top.values[keep], atol=1e-5)
    other = src.clone()
    other[0, 0] = 39 if other[0, 0] != 39 else 38
    with pytest.raises(KeyError, match="top-k were not computed"):
        cache.lookup(other, tgt)


def test_a_top_k_beyond_the_vocabulary_is_refused_by_name():
    with pytest.raises(ConfigError, match="distill.top_k: 41 is more than the 40 target tokens"):
        _teacher_top_k(_teacher(), DistillParams(top_k=41), ctx=None)


def test_the_student_is_shaped_by_the_cell_and_seeded():
    teacher = _teacher()
    cell = {"d_model": 16, "layers": 1, "d_ff": 24}
    student = student_model(teacher, cell, DistillParams(n_heads=2), seed=5)
    assert (student.cfg.d_model, student.cfg.n_layers, student.cfg.d_ff, student.cfg.n_heads) == (16, 1, 24, 2)
    assert student.vocab == teacher.vocab and student.cfg.share_embeddings == teacher.cfg.share_embeddings
    assert count_parameters(student) < count_parameters(teacher)
    again = student_model(teacher, cell, DistillParams(n_heads=2), seed=5)
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), again.state_dict().values()))


def test_check_names_the_width_the_heads_do_not_divide():
    with pytest.raises(ConfigError, match="distill.n_heads: 3 must divide .* it does not divide 128"):
        check(DistillParams(n_heads=3, d_models=(96, 128)), None)
    with pytest.raises(ConfigError, match="distill.from_scratch"):
        check(DistillParams(from_scratch=True), None)


def test_a_hooks_training_loss_is_what_the_step_minimizes(tmp_path):
    class Nothing(Hook):
        def training_loss(self, src, tgt, logits, loss):
            return loss * 0.0

    model = _teacher()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    src, tgt = _batch()
    data = ParallelData([s.tolist() for s in src], [[t for t in row.tolist() if t != PAD] for row in tgt])
    fit(model, data, data, TrainConfig(epochs=1, batch_tokens=64, warmup_steps=1, precision="fp32"), seed=0,
        best_path=tmp_path / "best.pt", resume_path=tmp_path / "r.pt", identity={}, hooks=[Nothing()],
        progress=False, stop_after_steps=1)
    # A zero loss has zero gradients, so Adam moves nothing (dropout still drew its masks).
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_teacher_translations_are_framed_and_resume_chunk_by_chunk(tmp_path, monkeypatch):
    model = _teacher()
    sources = [[5, 6, 7, EOS], [8, EOS], [9, 10, EOS], [11, 12, 13, 14, EOS], [15, EOS]]
    monkeypatch.setattr(teacher_module, "CHUNK_SENTENCES", 2)
    opts = DecodeOptions(beam_size=2, batch_sentences=2)
    identity = {"model": "a"}
    full = teacher_module.decode_sources(model, sources, opts, "cpu", tmp_path / "r", identity)
    assert len(full) == 5 and all(t[0] == BOS and t[-1] == EOS and EOS not in t[1:-1] for t in full)
    assert sorted(p.name for p in (tmp_path / "r").glob("0*.json")) == ["000000000.json", "000000002.json",
                                                                        "000000004.json"]
    # Interrupted after the first chunk: the rest is decoded, the first read back, the result the same.
    (tmp_path / "r" / "000000002.json").unlink()
    (tmp_path / "r" / "000000004.json").unlink()
    decoded = []
    original = decode.translate_ids

    def counting(model, src_ids, *args, **kwargs):
        decoded.append(len(src_ids))
        return original(model, src_ids, *args, **kwargs)

    monkeypatch.setattr(decode, "translate_ids", counting)
    assert teacher_module.decode_sources(model, sources, opts, "cpu", tmp_path / "r", identity) == full
    assert decoded == [2, 1]
    # Another model's chunks are not reused.
    decoded.clear()
    teacher_module.decode_sources(model, sources, opts, "cpu", tmp_path / "r", {"model": "b"})
    assert decoded == [2, 2, 1]


def _params(tmp_path, **overrides):
    students = {"kds": ["word", "seq", "none"], "d_models": [16], "layers": [1], "d_ffs": [32]}
    params = tiny_params(**overrides, catalog={"distill": students})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return load_params(tmp_path / "params.yaml")


def test_the_teacher_stage_is_on_only_when_a_selected_cell_trains_on_its_translations(tmp_path):
    off = resolve(_params(tmp_path, methods=["distill"], distill={"kds": ["word", "none"]}))
    assert off["teacher"] == {"enabled": False}
    on = resolve(_params(tmp_path, methods=["distill"], distill={"kds": ["seq"]}))
    assert on["teacher"]["enabled"] and on["teacher"]["beam_size"] == tiny_params()["teacher"]["beam_size"]
    assert "distill-control" not in on["cells"]["cells"]       # kd none is its comparison, not a control


def test_with_the_deploy_section_on_every_student_is_exported_and_no_other_float_method_is(tmp_path):
    """A student is a float model CTranslate2 quantizes to int8 at export (``deploy_int8``): with the
    section on, every student's plan holds it, the references-only one included (distillation has no
    control cell: that student is its comparison). Controls, and float methods without the flag, are
    not exported, whatever bits their axes say."""
    from tcompress.plan import deploys
    from tcompress.methods import registered
    from tcompress.methods.base import BITS
    from tcompress.methods.distill import METHOD

    assert METHOD.deploy_int8 and not METHOD.controlled
    cells = resolve(_params(tmp_path, methods=["distill"], deploy={"backend": "ctranslate2"}))["cells"]["cells"]
    assert sorted(cells) == sorted(f"distill-{kd}-16-1-32" for kd in ("word", "seq", "none"))
    assert all(c["deploy"]["backend"] == "ctranslate2" and not c["control"] for c in cells.values())
    assert "deploy" not in resolve(_params(tmp_path, methods=["distill"]))["cells"]["cells"]["distill-none-16-1-32"]
    student = cells["distill-none-16-1-32"]["axes"]
    assert deploys(METHOD, student, control=False) and not deploys(METHOD, student, control=True)
    floats = [m for m in registered() if not m.deploy_int8 and BITS not in m.axes]
    assert {"agp", "imp"} <= {m.name for m in floats}
    assert not any(deploys(m, {"bits": 8}, control=False) for m in floats)
