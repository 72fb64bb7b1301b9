import pytest
import torch

from tcompress.config import ModelConfig
from tcompress.decode import DecodeOptions, _length_penalty, beam_search, greedy, translate_ids
from tcompress.model import BOS, EOS, PAD, Vocab, make_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = make_model(ModelConfig(d_model=32, n_layers=2, n_heads=4, d_ff=48, dropout=0.0), Vocab(60, 60))
    with torch.no_grad():  # a peaked output layer so that EOS does get chosen and lengths vary
        m.generator.proj.weight.mul_(8)
    return m.eval()


@pytest.fixture(scope="module")
def src():
    g = torch.Generator().manual_seed(1)
    s = torch.randint(4, 60, (6, 9), generator=g)
    s[1, 6:] = PAD
    s[4, 3:] = PAD
    return s


def test_cached_greedy_equals_full_prefix_greedy(model, src):
    assert greedy(model, src, 25, use_cache=True) == greedy(model, src, 25, use_cache=False)


def test_cached_step_logits_match_full_decoder(model, src):
    memory, mask = model.encode(src)
    ys = torch.tensor([[BOS, 5, 9, 11, 7]] * src.size(0))
    full = model.generator(model.decode(ys, memory, mask))
    caches = [{} for _ in model.decoder.layers]
    steps = [model.decode_step(ys[:, t:t + 1], t, memory, mask, caches) for t in range(ys.size(1))]
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_beam_of_one_is_greedy(model, src):
    assert beam_search(model, src, 1, 0.6, 25) == greedy(model, src, 25)


def _sequence_score(model, src_row, hyp, alpha):
    ys = torch.tensor([[BOS] + hyp + [EOS]])
    memory, mask = model.encode(src_row[None])
    logp = torch.log_softmax(model.generator(model.decode(ys[:, :-1], memory, mask)).float(), -1)
    total = logp[0, torch.arange(len(hyp) + 1), ys[0, 1:]].sum()
    return float(total / _length_penalty(torch.tensor(len(hyp) + 1), alpha))


def test_beam_finds_at_least_the_greedy_score(model, src):
    with torch.no_grad():
        g, b = greedy(model, src, 25), beam_search(model, src, 5, 0.6, 25)
        for row, (gh, bh) in enumerate(zip(g, b)):
            if len(gh) < 25 and len(bh) < 25:  # both ended with EOS
                assert _sequence_score(model, src[row], bh, 0.6) >= _sequence_score(model, src[row], gh, 0.6) - 1e-4


def test_translate_ids_keeps_input_order(model, src):
    rows = [[int(t) for t in r if t != PAD] for r in src]
    batched = translate_ids(model, rows, DecodeOptions(beam_size=1, batch_sentences=2, max_len_a=1.0, max_len_b=5))
    one_by_one = [translate_ids(model, [r], DecodeOptions(beam_size=1, max_len_a=1.0, max_len_b=5))[0] for r in rows]
    assert batched == one_by_one
