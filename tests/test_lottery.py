"""Lottery tickets' restart points: θ₀ from the seed, random re-initialization, late rewinding, and
the control that trains θ₀ dense."""

import pytest
import torch

from tcompress.config import ModelConfig
from tcompress.methods.lottery import LotteryParams, _start, check, control_start, initial_model
from tcompress.model import Vocab, make_model
from tcompress.schema import ConfigError

CFG, VOCAB = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32), Vocab(30, 30)


class Ctx:
    seed, device = 7, "cpu"


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_theta0_depends_on_the_seed_alone():
    torch.manual_seed(99)
    a = initial_model(CFG, VOCAB, 7).state_dict()
    torch.rand(5)                                   # whatever ran before does not matter
    assert _same(a, initial_model(CFG, VOCAB, 7).state_dict())
    assert not _same(a, initial_model(CFG, VOCAB, 8).state_dict())


def test_rewind_and_random_restart_points_and_the_dense_control():
    trained = make_model(CFG, VOCAB)
    theta0 = initial_model(CFG, VOCAB, 7).state_dict()
    assert _same(_start(trained, "rewind", LotteryParams(), Ctx()), theta0)
    assert _same(_start(trained, "random", LotteryParams(), Ctx()), initial_model(CFG, VOCAB, 8).state_dict())
    control = control_start(trained, LotteryParams(), Ctx())
    assert _same(control.state_dict(), theta0)
    assert all(bool((p != 0).all()) for p in control.parameters() if p.dim() >= 2)   # dense


def test_a_ticket_may_not_start_from_scratch():
    with pytest.raises(ConfigError, match="lottery.from_scratch"):
        check(LotteryParams(from_scratch=True), None)
