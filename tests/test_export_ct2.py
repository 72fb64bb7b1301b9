"""CTranslate2 exports against our own decoder, token for token, and against the artifact's codes.

The quick tests use small random models (seeded; their generator's EOS bias set so that some
outputs end with EOS and others at their length limit) and in-process cells; the slow one exports
the tiny pipeline's baseline and cells with the CLI. Everything that needs CTranslate2 skips
without it: it is the optional ``deploy`` extra.
"""

import copy
import gzip
import importlib.util
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tcompress.checkpoint import model_payload
from tcompress.cli import main
from tcompress.compress.artifact import save_compressed
from tcompress.compress.codebook import CodebookModule
from tcompress.compress.int8_inference import to_int8_inference
from tcompress.compress.quantized import QuantizedModule
from tcompress.config import ModelConfig, TokenizerConfig
from tcompress.data.corpora import read_split
from tcompress.data.synthetic import generate_splits
from tcompress.decode import DecodeOptions, translate_ids
from tcompress.loader import load_model, load_payload
from tcompress.methods.fullyqt.modules import FullyQTSpec, freeze, fully_quantize
from tcompress.methods.nodeprune.nodes import NodePrunedFeedForward
from tcompress.methods.ptq.post_training import PTQConfig, post_training_quantize
from tcompress.model import BOS, EOS, UNK, Vocab, make_model
from tcompress.tokenizer import Tokenizer, build_tokenizer

needs_ct2 = pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None,
                               reason='CTranslate2 is the deploy extra: pip install -e ".[deploy]"')
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_model_bin(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin, parsed per its format (``ModelSpec._serialize``)."""
    data, pos = Path(path).read_bytes(), 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return values

    def string():
        nonlocal pos
        (n,) = take("H")
        text = data[pos: pos + n - 1].decode()
        pos += n
        return text

    take("I"), string(), take("I")   # binary version, spec name, spec revision
    variables = {}
    for _ in range(take("I")[0]):
        name = string()
        (rank,) = take("B")
        shape = take(f"{rank}I") if rank else ()
        (dtype,), (nbytes,) = take("B"), take("I")
        variables[name] = np.frombuffer(data, CT2_DTYPES[dtype], nbytes // np.dtype(CT2_DTYPES[dtype]).itemsize,
                                        pos).reshape(shape)
        pos += nbytes
    for _ in range(take("I")[0]):
        alias = string()
        variables[alias] = variables[string()]
    return variables


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A synthetic test set and its tokenizers: one joint vocabulary, and one per side."""
    splits = generate_splits(400, 0, 40, seed=7)
    src, tgt = [p[0] for p in splits["train"]], [p[1] for p in splits["train"]]
    root = tmp_path_factory.mktemp("tok")
    toks = {joint: build_tokenizer(src, tgt, TokenizerConfig(vocab_size=400, joint=joint), root / str(joint))
            for joint in (True, False)}
    return {"test": splits["test"], "tok": toks, "dirs": {j: root / str(j) for j in toks}}


def random_model(tok, seed: int = 0, share: bool = True, layers: int = 2):
    torch.manual_seed(seed)
    cfg = ModelConfig(d_model=32, n_layers=layers, n_heads=2, d_ff=64, dropout=0.0, share_embeddings=share)
    return make_model(cfg, Vocab(tok.src_vocab_size, tok.tgt_vocab_size)).eval()


def end_some_early(model, ids) -> None:
    """Raise the EOS bias until some outputs end with EOS and others run to their limit."""
    limits = [int(1.5 * len(s) + 10) for s in ids]
    for bias in np.arange(0.0, 4.0, 0.05):
        with torch.no_grad():
            model.generator.proj.bias[EOS] = float(bias)
        lengths = [len(o) for o in translate_ids(model, ids, DecodeOptions(beam_size=1))]
        early = sum(n < lim for n, lim in zip(lengths, limits))
        if 0.2 * len(ids) <= early <= 0.8 * len(ids) and sum(lengths) > 2 * len(ids):
            return
    raise AssertionError("no EOS bias gives both kinds of ending")


def export(model_file, *args, **kwargs):
    """``tcompress.export_ct2.export`` of the model file as the loader reads it (what `tcompress export` does)."""
    from tcompress.export_ct2 import export as write

    return write(load_model(model_file), model_file, *args, **kwargs)


def log_probs(model, tok, pairs) -> np.ndarray:
    """Our log-probability of each reference token (EOS included), teacher-forced."""
    out = []
    with torch.no_grad():
        for s, t in zip(tok.encode_src([p[0] for p in pairs]), tok.encode_tgt([p[1] for p in pairs])):
            lp = torch.log_softmax(model(torch.tensor([s]), torch.tensor([t[:-1]])).float(), -1)[0]
            out.append(lp.gather(1, torch.tensor(t[1:])[:, None])[:, 0].numpy())
    return np.concatenate(out)


def ct2_log_probs(export_dir, tok, pairs, compute_type=None) -> np.ndarray:
    """CTranslate2's log-probability of the same tokens (``score_batch``)."""
    import ctranslate2

    from tcompress.translate_ct2 import open_export

    translator = open_export(export_dir).translator if compute_type is None else \
        ctranslate2.Translator(str(export_dir), compute_type=compute_type)
    src = [tok.src.encode(p[0], out_type=str) for p in pairs]
    tgt = [tok.tgt.encode(p[1], out_type=str) for p in pairs]
    return np.concatenate([np.array(r.log_probs) for r in translator.score_batch(src, tgt)])


def ct2_ids(export_dir, ids, batch):
    from tcompress.translate_ct2 import open_export
    from tcompress.translate_ct2 import translate_ids as ct2_translate_ids

    return ct2_translate_ids(open_export(export_dir), ids, DecodeOptions(beam_size=1, batch_sentences=batch))


@needs_ct2
@pytest.mark.parametrize("joint", [True, False])
def test_float32_export_decodes_token_for_token_like_ours(corpus, tmp_path, joint):

    tok = corpus["tok"][joint]
    model = random_model(tok, share=joint)
    ids = tok.encode_src([p[0] for p in corpus["test"]])
    end_some_early(model, ids)
    torch.save(model_payload(model), tmp_path / "model.pt")
    manifest = export(tmp_path / "model.pt", corpus["dirs"][joint], tmp_path / "ct2")
    assert manifest["exact"] and manifest["compute_type"] == "float32" and not manifest["differences"]
    for batch in (7, 1):   # mixed lengths in a batch, and one sentence at a time
        assert ct2_ids(tmp_path / "ct2", ids, batch) == translate_ids(model, ids, DecodeOptions(beam_size=1,
                                                                                                batch_sentences=batch))
    ours, theirs = log_probs(model, tok, corpus["test"]), ct2_log_probs(tmp_path / "ct2", tok, corpus["test"])
    assert np.abs(ours - theirs).max() < 1e-4


@needs_ct2
def test_int8_export_holds_the_cells_codes_and_multiplies_them(corpus, tmp_path):
    """Symmetric 4-bit per-row codes (QAT's default form) go in verbatim; CTranslate2's int8 then
    computes what our per-row int8 path computes, which its own re-quantization of the floats does not."""

    tok, pairs = corpus["tok"][True], corpus["test"]
    model = random_model(tok)
    post_training_quantize(model, PTQConfig(bits=4, mode="sym", per_channel=True, activations="none"), "full")
    save_compressed(model, tmp_path / "cell.safetensors")
    manifest = export(tmp_path / "cell.safetensors", corpus["dirs"][True], tmp_path / "int8", int8=True)
    export(tmp_path / "cell.safetensors", corpus["dirs"][True], tmp_path / "fp32")
    assert manifest["compute_type"] == "int8_float32"
    assert [d["finding"] for d in manifest["differences"]] == ["int8_inputs"]
    assert len(manifest["same_numbers"][0]["modules"]) == 34   # one shared table, 12 + 20 Linears, the generator
    assert_codes_verbatim(tmp_path / "cell.safetensors", tmp_path / "int8", layers=2)
    cell, _ = load_model(tmp_path / "cell.safetensors")
    int8_path = copy.deepcopy(cell)
    to_int8_inference(int8_path, activation_bits=8)
    ours = log_probs(int8_path, tok, pairs)

    def agree(theirs):
        return float(np.mean(np.abs(ours - theirs) < 1e-4))
    assert agree(ct2_log_probs(tmp_path / "int8", tok, pairs)) > 0.7       # rare rounding ties aside
    assert agree(ct2_log_probs(tmp_path / "fp32", tok, pairs, compute_type="int8_float32")) < 0.3


def assert_codes_verbatim(artifact: Path, export_dir: Path, layers: int) -> None:
    """Each int8 weight in model.bin is the artifact's codes (fused as CTranslate2 fuses them), its
    weight_scale 1 / step."""
    state = load_payload(artifact)["model"]
    stored = read_model_bin(export_dir / "model.bin")
    fused = {"self_attention/linear_0": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
             "self_attention/linear_1": ["self_attn.out_proj"],
             "attention/linear_0": ["src_attn.q_proj"], "attention/linear_1": ["src_attn.k_proj", "src_attn.v_proj"],
             "attention/linear_2": ["src_attn.out_proj"], "ffn/linear_0": ["feed_forward.w_1"],
             "ffn/linear_1": ["feed_forward.w_2"]}
    expected = {"encoder/embeddings_0": ["src_embed.lut"], "decoder/embeddings": ["tgt_embed.lut"],
                "decoder/projection": ["generator.proj"]}
    for stack, ours in (("encoder", "encoder"), ("decoder", "decoder")):
        for i in range(layers):
            for theirs, names in fused.items():
                if stack == "decoder" or theirs.startswith("self_attention") or theirs.startswith("ffn"):
                    expected[f"{stack}/layer_{i}/{theirs}"] = [f"{ours}.layers.{i}.{n}" for n in names]
    for variable, modules in expected.items():
        codes = np.concatenate([state[f"{m}.weight_q"].numpy() - state[f"{m}.weight_zero_point"].numpy()[:, None]
                                for m in modules])
        steps = np.concatenate([state[f"{m}.weight_scale"].numpy() for m in modules])
        assert stored[f"{variable}/weight"].dtype == np.int8, variable
        assert np.array_equal(stored[f"{variable}/weight"], codes), variable
        assert np.array_equal(stored[f"{variable}/weight_scale"], np.float32(1) / steps), variable


@needs_ct2
def test_asymmetric_codes_go_in_shifted_or_are_named_where_they_do_not_fit(corpus, tmp_path):
    from tcompress.export_ct2 import ct2_int8

    tok = corpus["tok"][True]
    for bits in (4, 8):
        model = random_model(tok, layers=1)
        post_training_quantize(model, PTQConfig(bits=bits, mode="asym", per_channel=True, activations="none"), "full")
        save_compressed(model, tmp_path / f"asym{bits}.safetensors")
        manifest = export(tmp_path / f"asym{bits}.safetensors", corpus["dirs"][True], tmp_path / f"asym{bits}",
                          int8=True)
        findings = {d["finding"]: d["modules"] for d in manifest["differences"] + manifest["same_numbers"]}
        q = model.generator.proj
        stored = read_model_bin(tmp_path / f"asym{bits}" / "model.bin")["decoder/projection/weight"]
        if bits == 4:   # q − z spans at most ±15: the codes themselves
            assert "rows_requantized" not in findings and "generator.proj" in findings["codes_verbatim"]
            assert np.array_equal(stored, (q.weight_q.long() - q.weight_zero_point[:, None]).numpy())
        else:           # q − z spans up to ±255: those rows get CTranslate2's own rule, and the manifest says so
            assert "generator.proj (400 of 400 rows, 8-bit asym)" in findings["rows_requantized"]
            assert np.array_equal(stored, ct2_int8(q.inner.weight.numpy())[0])


@needs_ct2
def test_what_cannot_be_carried_over_is_named_module_by_module(corpus, tmp_path):
    """Calibrated activation ranges, float layers CTranslate2 would quantize, wrappers that compute
    more than their weights, codebooks: each in the manifest and the one stderr line."""
    tok = corpus["tok"][True]
    src = torch.tensor(tok.encode_src([p[0] for p in corpus["test"][:8]])[0])[None]
    model = random_model(tok, layers=1)
    post_training_quantize(model, PTQConfig(bits=8, mode="sym", activations="both"), "ff",
                           calibration_batches=[(src, src)])
    inner = model.encoder.layers[0].self_attn.q_proj
    model.encoder.layers[0].self_attn.q_proj = CodebookModule.from_codes(
        inner, torch.randint(0, 4, inner.weight.shape), torch.randn(1, 4), bits=2)
    save_compressed(model, tmp_path / "cell.safetensors")
    result = CliRunner().invoke(main, ["export", "--format", "ctranslate2", "--tokenizer", str(corpus["dirs"][True]),
                                       "--int8", str(tmp_path / "cell.safetensors"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    line, = result.stderr.strip().splitlines()
    assert "differs from the source: float weights quantized (14), activation ranges dropped (4)" in line
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    found = {d["finding"]: d["modules"] for d in manifest["differences"] + manifest["same_numbers"]}
    assert "encoder.layers.0.feed_forward.w_1 (input+output)" in found["activation_ranges"]
    assert "encoder.layers.0.self_attn.q_proj" in found["float_requantized"]   # the codebook's values
    assert found["codebook_as_float"] == ["encoder.layers.0.self_attn.q_proj (codebook)"]
    # The float32 export of it is our model with the activation ranges left out, token for token.
    CliRunner().invoke(main, ["export", "--format", "ctranslate2", "--tokenizer", str(corpus["dirs"][True]),
                              str(tmp_path / "cell.safetensors"), str(tmp_path / "fp32")])
    cell, _ = load_model(tmp_path / "cell.safetensors")
    for module in cell.modules():
        if isinstance(module, QuantizedModule):
            module.sites = ()
    ids = tok.encode_src([p[0] for p in corpus["test"]])
    assert ct2_ids(tmp_path / "fp32", ids, 16) == translate_ids(cell, ids, DecodeOptions(beam_size=1,
                                                                                        batch_sentences=16))
    fullyqt = random_model(tok, layers=1)
    fully_quantize(fullyqt, FullyQTSpec())
    fullyqt.train()
    fullyqt(src, src)
    freeze(fullyqt.eval())
    save_compressed(fullyqt, tmp_path / "fq.safetensors")
    result = CliRunner().invoke(main, ["export", "--format", "ctranslate2", "--tokenizer", str(corpus["dirs"][True]),
                                       str(tmp_path / "fq.safetensors"), str(tmp_path / "fq")])
    manifest = json.loads((tmp_path / "fq" / "manifest.json").read_text())
    found = {d["finding"]: d["modules"] for d in manifest["differences"]}
    assert "decoder.layers.0.src_attn (fq_attention)" in found["wrapper_dropped"]
    assert "quantized activations dropped (14)" in result.stderr


@needs_ct2
def test_node_pruned_layers_export_at_their_own_widths(corpus, tmp_path):

    tok = corpus["tok"][True]
    model = random_model(tok)
    model.encoder.layers[0].feed_forward = NodePrunedFeedForward(32, 40, 0.0)
    model.decoder.layers[1].feed_forward = NodePrunedFeedForward(32, 24, 0.0)
    save_compressed(model, tmp_path / "cell.safetensors")
    manifest = export(tmp_path / "cell.safetensors", corpus["dirs"][True], tmp_path / "ct2")
    assert manifest["exact"]
    assert manifest["same_numbers"][0]["modules"] == ["encoder.layers.0.feed_forward (ffn_nodes)",
                                                      "decoder.layers.1.feed_forward (ffn_nodes)"]
    ids = tok.encode_src([p[0] for p in corpus["test"]])
    assert ct2_ids(tmp_path / "ct2", ids, 16) == translate_ids(model, ids, DecodeOptions(beam_size=1,
                                                                                         batch_sentences=16))


@needs_ct2
def test_a_distilled_student_exports_at_its_own_shapes(corpus, tmp_path):
    """A student (narrower, fewer layers, fewer heads than its teacher) is a whole model of its own:
    the export's spec, variables and manifest are its shapes, and it decodes as ours does."""
    from types import SimpleNamespace

    from tcompress.methods.distill import student_model

    tok = corpus["tok"][True]
    teacher = random_model(tok)                                        # d 32, 2 + 2 layers, ff 64, 2 heads
    student = student_model(teacher, {"d_model": 16, "layers": 1, "d_ff": 24}, SimpleNamespace(n_heads=4), 0).eval()
    save_compressed(student, tmp_path / "student.safetensors")
    manifest = export(tmp_path / "student.safetensors", corpus["dirs"][True], tmp_path / "ct2")
    assert manifest["exact"] and {k: manifest["model"][k] for k in ("d_model", "n_layers", "n_heads", "d_ff")} == \
        {"d_model": 16, "n_layers": 1, "n_heads": 4, "d_ff": 24}
    stored = read_model_bin(tmp_path / "ct2" / "model.bin")
    assert stored["encoder/layer_0/ffn/linear_0/weight"].shape == (24, 16)
    assert stored["decoder/layer_0/self_attention/linear_0/weight"].shape == (48, 16)    # q|k|v fused
    assert stored["decoder/projection/weight"].shape == (tok.tgt_vocab_size, 16)
    assert not any(name.startswith(("encoder/layer_1", "decoder/layer_1")) for name in stored)
    assert int(stored["encoder/num_heads"]) == int(stored["decoder/num_heads"]) == 4
    ids = tok.encode_src([p[0] for p in corpus["test"]])
    end_some_early(student, ids)
    save_compressed(student, tmp_path / "student.safetensors")
    export(tmp_path / "student.safetensors", corpus["dirs"][True], tmp_path / "ct2", force=True)
    assert ct2_ids(tmp_path / "ct2", ids, 16) == translate_ids(student, ids, DecodeOptions(beam_size=1,
                                                                                         batch_sentences=16))


@needs_ct2
def test_translate_backend_keeps_the_translate_contract(corpus, tmp_path):
    """Plain or .gz files, empty lines kept, --out written whole, the JSON on stderr, one-line refusals."""

    tok, pairs = corpus["tok"][True], corpus["test"][:6]
    torch.save(model_payload(random_model(tok)), tmp_path / "model.pt")
    export(tmp_path / "model.pt", corpus["dirs"][True], tmp_path / "ct2")
    lines = {side: [p[side] for p in pairs[:3]] + [""] + [p[side] for p in pairs[3:]] for side in (0, 1)}
    (tmp_path / "src.gz").write_bytes(gzip.compress(("\n".join(lines[0]) + "\n").encode()))
    (tmp_path / "ref.txt").write_text("\n".join(lines[1]) + "\n")
    result = CliRunner().invoke(main, ["translate", "--backend", "ctranslate2", "--model", str(tmp_path / "ct2"),
                                       "--src", str(tmp_path / "src.gz"), "--ref", str(tmp_path / "ref.txt"),
                                       "--beam-size", "1", "--out", str(tmp_path / "hyp.txt")])
    assert result.exit_code == 0, result.stderr
    hyps = (tmp_path / "hyp.txt").read_text().split("\n")[:-1]
    assert len(hyps) == 7 and hyps[3] == ""
    facts = json.loads(result.stderr[result.stderr.index("{"):])
    assert facts["sentences"] == 7 and facts["empty_source_lines"] == 1 and facts["decoding"] == "greedy"
    assert facts["backend"] == "ctranslate2" and facts["compute_type"] == "float32" and facts["exact"] is True
    refusals = {
        "--checkpoint: for --backend pytorch": ["--backend", "ctranslate2", "--model", str(tmp_path / "ct2"),
                                                "--checkpoint", "x.pt"],
        "needs --model": ["--backend", "ctranslate2"],
        "--model is the export folder of --backend ctranslate2": ["--model", str(tmp_path / "ct2")],
        "not a CTranslate2 export (no manifest.json)": ["--backend", "ctranslate2", "--model", str(tmp_path)],
    }
    for message, args in refusals.items():
        result = CliRunner().invoke(main, ["translate", *args, "--src", str(tmp_path / "src.gz"),
                                           "--out", str(tmp_path / "no.txt")])
        assert result.exit_code in (1, 2) and message in result.stderr.strip().splitlines()[-1], result.stderr
        assert not (tmp_path / "no.txt").exists()



def test_vocabulary_shortlist_ranks_by_dice_and_always_lists_the_frequent_pieces():
    """Counts per sentence pair: c(4)=2, c(5)=2, c(9)=1 on the source side, c(6)=c(7)=c(8)=2 on the
    target side; Dice(4,6)=1, Dice(4,7)=1/2, Dice(5,7)=1, Dice(5,6)=Dice(5,8)=1/2 (the tie goes to the
    lower id), Dice(9,8)=2/3. Special ids (BOS, EOS) count for nothing."""
    from tcompress.vocabulary_map import build

    src = [np.array([4, 5, EOS]), np.array([4, EOS]), np.array([5, EOS]), np.array([9, EOS])]
    tgt = [np.array([BOS, 6, 7, EOS]), np.array([BOS, 6, EOS]), np.array([BOS, 7, 8, EOS]), np.array([BOS, 8, EOS])]
    short = build(src, tgt, 10, 10, per_source=2, frequent=2)
    assert short.per_source == {4: (6, 7), 5: (7, 6), 9: (8,)}
    assert short.frequent == (6, 7)                  # equal counts: by id; 8 is not among the first two
    assert short.candidates([9]) == {6, 7, 8} and short.candidates([]) == {6, 7}
    assert build(src, tgt, 10, 10, per_source=0, frequent=5) == type(short)((6, 7, 8), {})


def test_the_vocabulary_map_file_is_ctranslate2_s_format_without_pieces_it_cannot_hold(tmp_path):
    from tcompress.vocabulary_map import Shortlist, write

    pieces = {4: "▁a", 5: "b\tc", 6: "▁x", 7: "y z", 8: "▁w"}     # 5 and 7 hold whitespace
    write(Shortlist((6, 7), {4: (6, 8), 5: (6,), 9: (7, 8)}), tmp_path / "vmap.txt",
          lambda i: pieces.get(i, f"p{i}"), lambda i: pieces.get(i, f"p{i}"))
    assert (tmp_path / "vmap.txt").read_text().splitlines() == ["\t▁x", "▁a\t▁x ▁w", "p9\t▁w"]


@needs_ct2
def test_an_export_with_a_shortlist_outputs_only_the_candidates_of_its_sources(corpus, tmp_path):
    """The shortlist is written into the export, named in its manifest as a difference, and used by
    every decoding of it: at batch 1 each output piece is a candidate of its own source."""
    import shutil

    import pandas as pd

    from tcompress.vocabulary_map import FILE, PAIRS_FILE, build

    tok = corpus["tok"][True]
    pairs = corpus["test"]
    src_ids, tgt_ids = tok.encode_src([p[0] for p in pairs]), tok.encode_tgt([p[1] for p in pairs])
    tokenized = tmp_path / "tokenized"
    shutil.copytree(corpus["dirs"][True], tokenized)
    model = random_model(tok)
    torch.save(model_payload(model), tmp_path / "model.pt")
    result = CliRunner().invoke(main, ["export", "--format", "ctranslate2", "--tokenizer", str(tokenized), "--vmap",
                                       str(tmp_path / "model.pt"), str(tmp_path / "none")])
    assert result.exit_code == 1 and PAIRS_FILE in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "none").exists()
    pd.DataFrame({"src_ids": src_ids, "tgt_ids": tgt_ids}).to_parquet(tokenized / PAIRS_FILE)
    manifest = export(tmp_path / "model.pt", tokenized, tmp_path / "ct2", shortlist=(2, 5))
    assert (tmp_path / "ct2" / FILE).is_file() and not manifest["exact"]
    assert [d["finding"] for d in manifest["differences"]] == ["vocabulary_map"]
    assert manifest["vocabulary_map"]["per_source"] == 2 and manifest["vocabulary_map"]["always"] == 5
    export(tmp_path / "model.pt", tokenized, tmp_path / "plain")
    short = build(src_ids, tgt_ids, tok.src_vocab_size, tok.tgt_vocab_size, 2, 5)
    ids = src_ids[:20]
    restricted, plain = ct2_ids(tmp_path / "ct2", ids, 1), ct2_ids(tmp_path / "plain", ids, 1)
    assert all(set(out) <= short.candidates(s) | {UNK} for s, out in zip(ids, restricted))
    assert restricted != plain   # the random model's own choices leave the candidates: the map is what kept them in
    # params.yaml's deploy.vmap puts the shortlist into the section the stages read, and their exports hold it
    from types import SimpleNamespace

    from tcompress.deploy import deploy, section
    from tcompress.post_config import DeployConfig, EvaluateConfig

    def params(**deploy_settings):
        return SimpleNamespace(deploy=DeployConfig(backend="ctranslate2", **deploy_settings), evaluate=EvaluateConfig())

    on = section(params(vmap=True, vmap_per_source=2, vmap_frequent=5))
    assert on["vmap"] == [2, 5] and "vmap" not in section(params())   # off: the section is what it was
    sources, references = [p[0] for p in pairs[:10]], [p[1] for p in pairs[:10]]
    metrics = deploy(load_model(tmp_path / "model.pt"), tmp_path / "model.pt", tokenized, tmp_path / "stage", on,
                     sources, references, DecodeOptions(beam_size=1, batch_sentences=1), int8=False)
    assert metrics["deployed_differences"] == "vocabulary shortlist" and not metrics["deployed_exact"]
    assert (tmp_path / "stage/ct2" / FILE).is_file()


@needs_ct2
def test_threads_0_means_the_cpus_this_process_may_use_at_most_omp_num_threads(monkeypatch):
    from tcompress.translate_ct2 import cpu_settings

    cpus = len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_settings("int8")["intra_threads"] == cpus
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_settings("int8")["intra_threads"] == 1
    assert cpu_settings("int8", threads=3)["intra_threads"] == 3   # a number given wins
    monkeypatch.setenv("OMP_NUM_THREADS", str(cpus + 5))
    assert cpu_settings("float32")["intra_threads"] == cpus


def test_without_ctranslate2_the_commands_say_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)   # import ctranslate2 raises ImportError
    (tmp_path / "src.txt").write_text("a\n")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text("{}")
    for args in (["export", "--format", "ctranslate2", "--tokenizer", str(tmp_path), "m.pt", str(tmp_path / "o")],
                 ["translate", "--backend", "ctranslate2", "--model", str(tmp_path / "m"),
                  "--src", str(tmp_path / "src.txt")]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
            'Error: CTranslate2 is not installed; install the deploy extra: pip install -e ".[deploy]"'], result.stderr


@needs_ct2
@pytest.mark.slow
def test_tiny_pipelines_models_through_ctranslate2(tiny_pipeline, tmp_path):
    """The baseline and the 4-bit QAT cell (symmetric per-row codes) exported with the CLI: float32
    decodes to the pipeline's own greedy translations, int8 holds the cell's codes."""
    src, ref = read_split(tiny_pipeline / "data/prepared/test.parquet")
    (tmp_path / "src.txt").write_text("\n".join(src) + "\n")
    (tmp_path / "ref.txt").write_text("\n".join(ref) + "\n")
    tokenized = str(tiny_pipeline / "data/tokenized")

    def export(model_file, out, *extra):
        result = CliRunner().invoke(main, ["export", "--format", "ctranslate2", "--tokenizer", tokenized, *extra,
                                           str(tiny_pipeline / model_file), str(tmp_path / out)])
        assert result.exit_code == 0 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        return json.loads((tmp_path / out / "manifest.json").read_text())

    def translate(out):
        result = CliRunner().invoke(main, ["translate", "--backend", "ctranslate2", "--model", str(tmp_path / out),
                                           "--src", str(tmp_path / "src.txt"), "--ref", str(tmp_path / "ref.txt"),
                                           "--beam-size", "1", "--out", str(tmp_path / f"{out}.txt")])
        assert result.exit_code == 0, result.stderr
        return (tmp_path / f"{out}.txt").read_text(), json.loads(result.stderr[result.stderr.index("{"):])

    assert export("data/model/model.pt", "baseline")["exact"]
    hyps, facts = translate("baseline")
    assert hyps == (tiny_pipeline / "data/eval/baseline.greedy.txt").read_text()
    assert facts["bleu"] == json.loads((tiny_pipeline / "metrics/baseline.json").read_text())["greedy"]["bleu"]
    cell_file = "data/cells/qat-sym-4-full/model.safetensors"
    assert export(cell_file, "qat")["exact"]
    assert translate("qat")[0] == (tiny_pipeline / "data/cells/qat-sym-4-full/hyps.txt").read_text()
    cell, _ = load_model(tiny_pipeline / cell_file)
    tok = Tokenizer.load(tokenized)
    pairs = list(zip(src, ref))
    assert np.abs(log_probs(cell, tok, pairs) - ct2_log_probs(tmp_path / "qat", tok, pairs)).max() < 1e-4
    manifest = export(cell_file, "qat8", "--int8")
    assert [d["finding"] for d in manifest["differences"]] == ["int8_inputs"]
    assert_codes_verbatim(tiny_pipeline / cell_file, tmp_path / "qat8", layers=1)
    assert translate("qat8")[1]["compute_type"] == "int8_float32"


@needs_ct2
def test_input_scaled_linears_export_with_one_over_s_folded_into_their_columns(corpus, tmp_path):
    """AWQ's and SmoothQuant's form divides the input by s before its codes of W·diag(s): the float32
    export folds 1/s into the dequantized weight's columns, so CTranslate2 decodes as our model
    does, token for token; the manifest names the fold, and an int8 export quantizes the folded floats."""
    from tcompress.compress.linear_quant import QuantSpec, quantize_tensor
    from tcompress.compress.quantized import InputScaledModule

    tok = corpus["tok"][True]
    model = random_model(tok, layers=1)
    ids = tok.encode_src([p[0] for p in corpus["test"]])
    end_some_early(model, ids)
    spec = QuantSpec(8, "asym", per_channel=True)
    names = ("encoder.layers.0.feed_forward.w_1", "decoder.layers.0.self_attn.q_proj")
    for k, name in enumerate(names):
        parent, _, attr = name.rpartition(".")
        linear = model.get_submodule(name)
        s = torch.linspace(0.25, 4.0, linear.in_features).roll(3 * k)   # far from all ones
        t = quantize_tensor(linear.weight.detach() * s, spec)
        stored = QuantizedModule.from_codes(linear, spec, t["q"], t["scale"], t["zero_point"])
        setattr(model.get_submodule(parent), attr, InputScaledModule.wrap(stored, s))
    save_compressed(model, tmp_path / "cell.safetensors")
    cell, _ = load_model(tmp_path / "cell.safetensors")
    manifest = export(tmp_path / "cell.safetensors", corpus["dirs"][True], tmp_path / "fp32")
    found = {d["finding"]: d["modules"] for d in manifest["differences"]}
    assert found == {"input_scale_folded": [f"{name} (input_scaled)" for name in names]}
    for batch in (7, 1):
        assert ct2_ids(tmp_path / "fp32", ids, batch) == translate_ids(cell, ids, DecodeOptions(beam_size=1,
                                                                                               batch_sentences=batch))
    ours, theirs = log_probs(cell, tok, corpus["test"]), ct2_log_probs(tmp_path / "fp32", tok, corpus["test"])
    assert np.abs(ours - theirs).max() < 1e-4
    manifest = export(tmp_path / "cell.safetensors", corpus["dirs"][True], tmp_path / "int8", int8=True)
    found = {d["finding"]: d["modules"] for d in manifest["differences"] + manifest["same_numbers"]}
    assert set(names) <= set(found["float_requantized"]) and not set(names) & set(found.get("codes_verbatim", []))
