"""The mixed-precision method against reference computations: each sensitivity against the loss
recomputed sentence by sentence with that Linear alone replaced by its stored form, the greedy path
against its definition (one Linear one width lower per step, the cheapest per byte), the choice
against a brute-force scan of the candidates, and the cell's artifact against the one loader and
the bytes its widths pack into."""

import copy
import json
import random
import struct
from types import SimpleNamespace

import pytest
import torch

from tcompress.compress.calibration import collect
from tcompress.compress.gptq import gptq_quantize
from tcompress.compress.linear_quant import QuantSpec, dequantize, quantize_tensor
from tcompress.compress.packing import packed_bytes
from tcompress.compress.quantized import QuantizedModule
from tcompress.compress.walker import group_linears, replace_module
from tcompress.config import ModelConfig, TokenizerConfig
from tcompress.data.corpora import write_split
from tcompress.data.synthetic import generate_splits
from tcompress.loader import load_model
from tcompress.methods import Cell
from tcompress.methods.mixed import MixedParams, compress
from tcompress.methods.mixed import search as mixed_search
from tcompress.methods.mixed.search import bits_summary, candidate_steps, choose, code_bytes, greedy_path
from tcompress.sensitivity import measure
from tcompress.model import PAD, Vocab, make_model
from tcompress.tokenizer import build_tokenizer

WIDTHS = (8, 4, 3, 2)


def tiny_model(vocab: int = 30, seed: int = 0):
    torch.manual_seed(seed)
    cfg = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0)
    return make_model(cfg, Vocab(src_size=vocab, tgt_size=vocab)).eval()


def pairs_of(seed: int, n: int = 6, vocab: int = 30):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        s, t = int(torch.randint(3, 9, (1,), generator=g)), int(torch.randint(3, 9, (1,), generator=g))
        out.append((torch.randint(4, vocab, (s,), generator=g), torch.randint(4, vocab, (t,), generator=g)))
    return out


def batched(pairs):
    def pad(rows):
        out = torch.full((len(rows), max(len(r) for r in rows)), PAD)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out
    return pad([s for s, _ in pairs]), pad([t[:-1] for _, t in pairs]), pad([t[1:] for _, t in pairs])


def loss_one_by_one(model, pairs) -> float:
    """Mean NLL per target token, each sentence run alone and unpadded."""
    total, count = 0.0, 0
    with torch.no_grad():
        for s, t in pairs:
            logp = torch.log_softmax(model(s[None], t[None, :-1]).double(), -1)[0]
            total -= float(logp.gather(1, t[1:, None]).sum())
            count += len(t) - 1
    return total / count


def test_each_sensitivity_is_the_loss_with_that_linear_alone_in_its_stored_form():
    model, pairs = tiny_model(), pairs_of(1)
    stats = collect(model, [batched(pairs)[:2]])
    result = measure(model, stats, [batched(pairs[:4]), batched(pairs[4:])], WIDTHS, "asym")
    base = loss_one_by_one(model, pairs)
    assert result["base_loss"] == pytest.approx(base, rel=1e-5)
    names = ["encoder.layers.0.self_attn.v_proj", "decoder.layers.0.feed_forward.w_2", "generator.proj"]
    for name in names:
        for bits in (8, 3, 2):
            reference = copy.deepcopy(model)
            linear = reference.get_submodule(name)
            spec = QuantSpec(bits, "asym", per_channel=True)
            codes = gptq_quantize(linear.weight, 2 * stats[name].gram / stats[name].count, spec)
            replace_module(reference, linear, QuantizedModule.from_codes(linear, spec, *codes))
            expected = loss_one_by_one(reference, pairs) - base
            assert result["linears"][name]["delta"][str(bits)] == pytest.approx(expected, rel=1e-4, abs=1e-6), (name, bits)
    assert set(result["linears"]) == set(group_linears(model, "full"))
    assert result["linears"]["generator.proj"]["delta"]["2"] > result["linears"]["generator.proj"]["delta"]["8"]
    assert torch.equal(model.get_submodule(names[0]).weight, tiny_model().get_submodule(names[0]).weight)  # restored
    assert result["embeddings"] == {}   # tables only when asked


def test_an_interrupted_measurement_resumes_with_the_next_module_and_ends_as_an_uninterrupted_one(tmp_path,
                                                                                                     monkeypatch):
    import tcompress.sensitivity as sensitivity

    model, pairs = tiny_model(), pairs_of(3)
    stats, batches = collect(model, [batched(pairs)[:2]]), [batched(pairs)]
    identity = {"baseline": "a", "calibration": "b", "settings": {"bits": list(WIDTHS)}}
    whole = measure(model, stats, batches, WIDTHS, "asym", embeddings=True)
    measured, real = [], sensitivity.validation_loss

    def loss_until_interrupted(model, batches):
        measured.append(1)
        if len(measured) > 1 + 3 * len(WIDTHS):   # the float loss, three modules, then the process dies
            raise KeyboardInterrupt
        return real(model, batches)

    monkeypatch.setattr(sensitivity, "validation_loss", loss_until_interrupted)
    with pytest.raises(KeyboardInterrupt):
        measure(model, stats, batches, WIDTHS, "asym", embeddings=True, resume=tmp_path / "r", identity=identity)
    counted = []
    monkeypatch.setattr(sensitivity, "validation_loss", lambda m, b: counted.append(1) or real(m, b))
    resumed = measure(model, stats, batches, WIDTHS, "asym", embeddings=True, resume=tmp_path / "r",
                      identity=identity)
    modules = len(whole["linears"]) + len(whole["embeddings"])
    assert len(counted) == (modules - 3) * len(WIDTHS)   # neither the float loss nor the three done again
    assert resumed == whole
    # another baseline, calibration or setting: the folder is discarded and everything measured
    counted.clear()
    measure(model, stats, batches, WIDTHS, "asym", embeddings=True, resume=tmp_path / "r",
            identity={**identity, "baseline": "c"})
    assert len(counted) == 1 + modules * len(WIDTHS)


def test_an_embedding_table_s_sensitivity_is_the_loss_with_it_alone_rounded_per_row():
    """The shared source/target table, measured once: rounded to nearest with a step per row."""
    model, pairs = tiny_model(), pairs_of(1)
    stats = collect(model, [batched(pairs)[:2]])
    result = measure(model, stats, [batched(pairs)], WIDTHS, "asym", embeddings=True)
    assert list(result["embeddings"]) == ["src_embed.lut"] and model.tgt_embed is model.src_embed
    base = loss_one_by_one(model, pairs)
    for bits in (8, 2):
        reference = copy.deepcopy(model)
        table = reference.src_embed.lut
        t = quantize_tensor(table.weight.detach(), QuantSpec(bits, "asym", per_channel=True))
        assert t["scale"].shape == (table.weight.shape[0],)
        with torch.no_grad():
            table.weight.copy_(dequantize(t["q"], t["scale"], t["zero_point"]))
        expected = loss_one_by_one(reference, pairs) - base
        assert result["embeddings"]["src_embed.lut"]["delta"][str(bits)] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert result["embeddings"]["src_embed.lut"]["numel"] == model.src_embed.lut.weight.numel()
    assert set(result["linears"]) == set(group_linears(model, "full"))
    assert torch.equal(model.src_embed.lut.weight, tiny_model().src_embed.lut.weight)   # restored


def random_sensitivities(seed: int, n: int = 7):
    rng = random.Random(seed)
    numels = {f"l{i}": rng.choice([64, 256, 1024, 4096]) for i in range(n)}
    deltas = {}
    for name in numels:
        steps = [rng.uniform(-0.01, 0.3) for _ in WIDTHS]
        deltas[name] = {b: sum(steps[: k + 1]) * (k > 0) for k, b in enumerate(WIDTHS)}
    return deltas, numels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_greedy_path_lowers_one_linear_one_width_at_a_time_cheapest_per_byte_first(seed):
    deltas, numels = random_sensitivities(seed)
    path = greedy_path(deltas, numels, WIDTHS)
    assert path[0] == {name: 8 for name in numels} and path[-1] == {name: 2 for name in numels}
    assert len(path) == len(numels) * (len(WIDTHS) - 1) + 1
    sizes = [code_bytes(a, numels) for a in path]
    assert all(a > b for a, b in zip(sizes, sizes[1:]))
    lower = dict(zip(WIDTHS, WIDTHS[1:]))
    for before, after in zip(path, path[1:]):
        changed = [name for name in before if before[name] != after[name]]
        assert len(changed) == 1 and after[changed[0]] == lower[before[changed[0]]]
        costs = {n: (deltas[n][lower[b]] - deltas[n][b]) / (numels[n] * (b - lower[b]) / 8)
                 for n, b in before.items() if b in lower}
        assert costs[changed[0]] == min(costs.values())
    assert sizes[0] == sum(numels.values()) and sizes[-1] == sum(packed_bytes(n, 2) for n in numels.values())


def test_candidates_span_the_path_and_the_choice_is_the_smallest_within_the_budget():
    sizes = [1000, 900, 850, 700, 640, 500, 480, 300, 250]
    steps = candidate_steps(sizes, 4)
    assert steps[0] == 0 and steps[-1] == len(sizes) - 1 and steps == sorted(set(steps))
    rng = random.Random(3)
    for _ in range(200):
        candidates = [{"file_bytes": rng.randrange(100, 1000), "valid_bleu": rng.uniform(20, 30)} for _ in range(8)]
        reference, budget = rng.uniform(25, 31), rng.choice([0.0, 0.5, 1.0, 3.0])
        i = choose(candidates, reference, budget)
        within = [c for c in candidates if reference - c["valid_bleu"] <= budget]
        if within:
            assert reference - candidates[i]["valid_bleu"] <= budget
            assert candidates[i]["file_bytes"] == min(c["file_bytes"] for c in within)
        else:
            assert i == 0


def test_a_budget_of_zero_keeps_every_linear_at_the_widest_width():
    """BLEU falling along the path (as narrower widths do on a trained model): with a budget of 0 the
    only candidate within it is the start, whose every Linear is at the widest width; a wider
    budget reaches further down the path."""
    deltas, numels = random_sensitivities(4)
    path = greedy_path(deltas, numels, WIDTHS)
    sizes = [code_bytes(a, numels) for a in path]
    candidates = [{"file_bytes": sizes[s], "valid_bleu": 30.0 - 0.4 * k}
                  for k, s in enumerate(candidate_steps(sizes, 6))]
    steps = candidate_steps(sizes, 6)
    assert set(path[steps[choose(candidates, 30.0, 0.0)]].values()) == {8}
    assert set(path[steps[choose(candidates, 30.0, 1e-3)]].values()) == {8}
    assert choose(candidates, 30.0, 1.0) == 2
    assert choose(candidates, 30.2, 0.0) == 0        # none within: the widest start all the same


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    splits = generate_splits(400, 16, 0, seed=7)
    root = tmp_path_factory.mktemp("mixed")
    src, tgt = [p[0] for p in splits["train"]], [p[1] for p in splits["train"]]
    build_tokenizer(src, tgt, TokenizerConfig(vocab_size=400, joint=True), root / "tok")
    write_split(root / "valid.parquet", [p[0] for p in splits["valid"]], [p[1] for p in splits["valid"]])
    return root


def header_layouts(path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def test_the_mixed_cell_stores_each_linear_at_its_width_and_loads_through_the_one_loader(corpus, tmp_path,
                                                                                          monkeypatch):
    from tcompress.compress.artifact import save_compressed
    from tcompress.tokenizer import Tokenizer

    tok = Tokenizer.load(corpus / "tok")
    model = tiny_model(tok.src_vocab_size, seed=2)
    pairs = pairs_of(6, vocab=tok.src_vocab_size)
    stats = collect(model, [batched(pairs)[:2]])
    sens = measure(model, stats, [batched(pairs)], WIDTHS, "asym", embeddings=True)
    ctx = SimpleNamespace(calibration=lambda: stats, device=torch.device("cpu"), tokenized=corpus / "tok",
                          valid_split=corpus / "valid.parquet", sensitivity=lambda: {
                              "format": "tcompress.sensitivity/2", "bits": list(WIDTHS), "mode": "asym", **sens},
                          entry={"evaluate": {"length_penalty": 0.6, "batch_sentences": 8, "max_len_a": 1.5,
                                              "max_len_b": 5}})
    # A random model's BLEU is about 0 everywhere: keep a candidate from the middle of the path, so
    # that the artifact holds several widths.
    monkeypatch.setattr(mixed_search, "choose", lambda candidates, reference, budget: len(candidates) // 2)
    facts = compress(model, Cell("mixed", (("budget", 0.5),)), MixedParams(candidates=5), ctx)
    chosen = facts["search_candidates"][facts["chosen_candidate"]]
    assignment = {**facts["bits_per_linear"], **facts["bits_per_embedding"]}
    assert set(facts["bits_per_embedding"]) == {"src_embed.lut"} and facts["embedding_tables"] == 1
    units = {**sens["linears"], **sens["embeddings"]}
    assert len(set(assignment.values())) > 1 and chosen["mean_bits"] == bits_summary(assignment, {
        n: units[n]["numel"] for n in assignment})["mean_bits"]
    sizes = [c["file_bytes"] for c in facts["search_candidates"]]
    assert all(a > b for a, b in zip(sizes, sizes[1:]))
    path = tmp_path / "model.safetensors"
    assert save_compressed(model, path) == chosen["file_bytes"] == path.stat().st_size
    loaded, payload = load_model(path)
    assert set(payload["compression"]) == {"quantized"}
    header = header_layouts(path)
    for name, bits in assignment.items():
        module = loaded.get_submodule(name)
        assert isinstance(module, QuantizedModule) and module.spec.bits == bits
        assert torch.equal(module.weight_q, model.get_submodule(name).weight_q)
        # codes packed at the bit length of their range (packing's ``bits`` layout): at most the width
        q = module.weight_q.to(torch.int64)
        width = int(q.max() - q.min()).bit_length()
        begin, end = header[f"{name}.weight_q"]["data_offsets"]
        assert width <= bits and end - begin == packed_bytes(q.numel(), width), (name, bits, width)
    with torch.no_grad():
        src, tgt_in, _ = batched(pairs)
        assert torch.equal(loaded(src, tgt_in), model(src, tgt_in))


def test_the_report_draws_every_candidate_of_each_search(tmp_path):
    from tcompress.report import load_searches, search_section

    candidates = [{"step": s, "code_bytes": 0, "file_bytes": b, "valid_bleu": v, "mean_bits": m,
                   "modules_at": {"8": 3, "4": 1}} for s, b, v, m in
                  [(0, 900_000, 30.1, 8.0), (4, 600_000, 29.8, 5.5), (9, 300_000, 26.0, 2.0)]]
    for cell, kept in (("mixed-0.5", 1), ("mixed-1.0", 1)):
        (tmp_path / cell).mkdir()
        (tmp_path / cell / "cell.json").write_text(json.dumps(
            {"search_candidates": candidates, "chosen_candidate": kept, "valid_bleu_float": 30.2}))
    (tmp_path / "ptq-sym-8-full").mkdir()
    (tmp_path / "ptq-sym-8-full" / "cell.json").write_text(json.dumps({"bleu": 1}))
    searches = load_searches(tmp_path, ["mixed-0.5", "mixed-1.0", "ptq-sym-8-full", "absent"])
    assert set(searches) == {"mixed-0.5", "mixed-1.0"}
    html = search_section(searches)
    for cell in searches:   # three candidates and the kept one ringed, each a point named by its cell
        assert html.count(f'data-cell="{cell}"') == 4, html.count(f'data-cell="{cell}"')
    assert "29.80" in html and search_section({}) == ""
