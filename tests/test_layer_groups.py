import pytest
from torch import nn

from tcompress.config import ModelConfig
from tcompress.layer_groups import BASE_GROUPS, group_parameter_count, group_report, parse_group, select_modules
from tcompress.model import Vocab, count_parameters, make_model

CFG = ModelConfig(d_model=16, n_layers=2, n_heads=2, d_ff=24, dropout=0.0, share_embeddings=False)


@pytest.fixture(params=[False, True], ids=["separate-emb", "shared-emb"])
def model(request):
    cfg = ModelConfig(**{**CFG.__dict__, "share_embeddings": request.param})
    return make_model(cfg, Vocab(50, 50 if request.param else 40))


def test_every_linear_and_embedding_in_exactly_one_base_group(model):
    members = {g: set(select_modules(model, g)) for g in BASE_GROUPS}
    weights = {n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))}
    for name in weights:
        owners = [g for g, names in members.items() if name in names]
        assert len(owners) == 1, f"{name} is in {owners}"
    assert set().union(*members.values()) == weights


def test_group_counts_by_hand():
    model = make_model(CFG, Vocab(50, 40))
    d, ff, n, v_src, v_tgt = 16, 24, 2, 50, 40
    att = (n + 2 * n) * 4 * (d * d + d)          # encoder self + decoder self and cross attention
    ffn = 2 * n * (d * ff + ff + ff * d + d)
    emb = (v_src + v_tgt) * d
    gen = d * v_tgt + v_tgt
    norms = (2 * n + 1 + 3 * n + 1) * 2 * d      # 2 per encoder layer, 3 per decoder layer, 2 final
    assert group_report(model) == {"emb": emb, "att": att, "ff": ffn, "gen": gen,
                                   "full": emb + att + ffn + gen + norms}
    assert group_report(model)["full"] == count_parameters(model)


def test_shared_embedding_counted_once():
    model = make_model(ModelConfig(**{**CFG.__dict__, "share_embeddings": True}), Vocab(50, 50))
    assert list(select_modules(model, "emb")) == ["src_embed.lut"]
    assert group_parameter_count(model, "emb") == 50 * 16


def test_unions_add_up(model):
    report = group_report(model)
    assert group_parameter_count(model, "ff+emb+gen") == report["ff"] + report["emb"] + report["gen"]
    assert group_parameter_count(model, "att+full") == report["full"]


@pytest.mark.parametrize("spec", ["ffn", "ff+", "ff+ff", "FULL"])
def test_unknown_group_names_allowed(spec):
    with pytest.raises(ValueError, match="allowed|twice"):
        parse_group(spec)
