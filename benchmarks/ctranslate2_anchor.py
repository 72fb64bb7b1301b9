"""CTranslate2 as an outside anchor: our float baseline converted to CTranslate2, float32 and int8.

Usage (ctranslate2 is not a project dependency: run from an environment that has it and tcompress):
    python benchmarks/ctranslate2_anchor.py --checkpoint data/model/model.pt --tokenized data/tokenized \
        --test data/prepared/test.parquet --threads 2 --out benchmarks/results/ctranslate2_anchor.json

The checkpoint's weights are written into a hand-built ``TransformerSpec`` (pre-norm, ReLU FFN, final
LayerNorms, eps 1e-5, embeddings scaled by sqrt(d_model), our interleaved sinusoid table given
explicitly, the SentencePiece pieces as vocabulary) and saved three ways: ``float32``, ``int8`` and,
when its files differ from ``int8``'s, ``int8_float32``. The check: CTranslate2 float32 greedy output
must equal our float32 greedy output, sentence for sentence (column "= ours").

Settings, as in ``int8_speed.py``: greedy and beam 4, batch 128 over the whole test split (BLEU from
these) and batch 1 over its first ``--batch1-sentences``; every system within a setting back to back,
``intra_threads=--threads, inter_threads=1`` (torch: ``set_num_threads``). Batches are formed as ours
are (sorted by source length, chunks of the batch size), each with the longest per-sentence limit
1.5·|source|+10 of its chunk; greedy outputs are then cut to their own limit, which is exact.
Beam search differs by design: CTranslate2 divides a finished hypothesis' log-probability by
|hypothesis|^0.6 (EOS not counted) and stops a sentence once 4 hypotheses have finished, while ours
divides by ((5 + |hypothesis incl. EOS|) / 6)^0.6 and keeps finished beams in the beam until all end;
the API has no GNMT penalty, so beam rows use its own ``length_penalty=0.6``.
"""

from __future__ import annotations

import filecmp
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click
import ctranslate2
import numpy as np
import torch
from ctranslate2.converters.converter import Converter
from ctranslate2.specs import common_spec, transformer_spec

from tcompress.data.corpora import read_split
from tcompress.decode import DecodeOptions, translate_ids
from tcompress.evaluation import score
from tcompress.loader import load_model
from tcompress.model import BOS, EOS, UNK
from tcompress.tokenizer import Tokenizer

from int8_speed import cpu_flags  # the sibling benchmark's: both tables name the same CPU flags

LENGTH_PENALTY, MAX_LEN_A, MAX_LEN_B = 0.6, 1.5, 10


def numpy_of(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().copy()


def set_linear(spec, linears) -> None:
    """One CTranslate2 linear from one or more of ours, fused along the output rows (q|k|v, k|v)."""
    spec.weight = np.concatenate([numpy_of(m.weight) for m in linears])
    spec.bias = np.concatenate([numpy_of(m.bias) for m in linears])


def set_layer_norm(spec, norm) -> None:
    spec.gamma, spec.beta = numpy_of(norm.weight), numpy_of(norm.bias)


def set_attention(spec, attn, norm, self_attention: bool) -> None:
    if self_attention:
        set_linear(spec.linear[0], [attn.q_proj, attn.k_proj, attn.v_proj])
    else:
        set_linear(spec.linear[0], [attn.q_proj])
        set_linear(spec.linear[1], [attn.k_proj, attn.v_proj])
    set_linear(spec.linear[-1], [attn.out_proj])
    set_layer_norm(spec.layer_norm, norm)


def set_ffn(spec, ffn, norm) -> None:
    set_linear(spec.linear_0, [ffn.w_1])
    set_linear(spec.linear_1, [ffn.w_2])
    set_layer_norm(spec.layer_norm, norm)


def build_spec(model, tok: Tokenizer) -> transformer_spec.TransformerSpec:
    """Our EncoderDecoder, weight for weight, as a CTranslate2 TransformerSpec."""
    cfg = model.cfg
    spec = transformer_spec.TransformerSpec.from_config(cfg.n_layers, cfg.n_heads, pre_norm=True,
                                                        activation=common_spec.Activation.RELU)
    enc, dec = spec.encoder, spec.decoder
    enc.embeddings[0].weight = numpy_of(model.src_embed.lut.weight)
    dec.embeddings.weight = numpy_of(model.tgt_embed.lut.weight)
    enc.scale_embeddings = dec.scale_embeddings = True  # × sqrt(d_model), as Embeddings does
    # CTranslate2's built-in sinusoids are [sin | cos]; ours interleave them, so pass the table itself.
    enc.position_encodings.encodings = numpy_of(model.src_pos.pe)
    dec.position_encodings.encodings = numpy_of(model.tgt_pos.pe)
    for layer_spec, layer in zip(enc.layer, model.encoder.layers):
        set_attention(layer_spec.self_attention, layer.self_attn, layer.norm_1, self_attention=True)
        set_ffn(layer_spec.ffn, layer.feed_forward, layer.norm_2)
    for layer_spec, layer in zip(dec.layer, model.decoder.layers):
        set_attention(layer_spec.self_attention, layer.self_attn, layer.norm_1, self_attention=True)
        set_attention(layer_spec.attention, layer.src_attn, layer.norm_2, self_attention=False)
        set_ffn(layer_spec.ffn, layer.feed_forward, layer.norm_3)
    set_layer_norm(enc.layer_norm, model.encoder.norm)
    set_layer_norm(dec.layer_norm, model.decoder.norm)
    set_linear(dec.projection, [model.generator.proj])
    spec.register_source_vocabulary(vocabulary(tok.src))
    spec.register_target_vocabulary(vocabulary(tok.tgt))
    spec.config.layer_norm_epsilon = 1e-5  # torch's LayerNorm default (CTranslate2's is 1e-6)
    spec.config.unk_token, spec.config.bos_token = tok.tgt.id_to_piece(UNK), tok.tgt.id_to_piece(BOS)
    spec.config.eos_token = tok.tgt.id_to_piece(EOS)
    spec.config.decoder_start_token = tok.tgt.id_to_piece(BOS)  # decoding starts from BOS, as ours
    spec.config.add_source_bos = spec.config.add_source_eos = False  # encode_src already appends EOS
    return spec


def vocabulary(sp) -> list[str]:
    """SentencePiece pieces in id order: token i of the CTranslate2 vocabulary is our id i."""
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    if len(set(pieces)) != len(pieces) or any(any(c.isspace() for c in p) for p in pieces):
        raise ValueError("pieces are not unique whitespace-free tokens; cannot use them as a vocabulary")
    return pieces


class SpecConverter(Converter):
    def __init__(self, spec_factory):
        self.spec_factory = spec_factory

    def _load(self):
        return self.spec_factory()  # a fresh spec each time: optimize() quantizes it in place


def convert_all(model, tok: Tokenizer, model_dir: Path) -> dict[str, Path]:
    """float32, int8 and (when it is not the same files) int8_float32 model directories."""
    converter = SpecConverter(lambda: build_spec(model, tok))
    dirs = {q: Path(converter.convert(str(model_dir / q), quantization=q, force=True))
            for q in ("float32", "int8", "int8_float32")}
    if filecmp.cmp(dirs["int8"] / "model.bin", dirs["int8_float32"] / "model.bin", shallow=False):
        shutil.rmtree(dirs.pop("int8_float32"))
    return dirs


def limit(src: list[int]) -> int:
    return int(MAX_LEN_A * len(src) + MAX_LEN_B)  # tcompress.decode.length_limits, per sentence


def ct2_decode(translator, tok: Tokenizer, ids: list[list[int]], beam: int, batch: int) -> list[list[int]]:
    """Our batching (length-sorted chunks), CTranslate2's search; output ids without BOS/EOS."""
    to_id = {p: i for i, p in enumerate(vocabulary(tok.tgt))}
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[list[int]] = [[] for _ in ids]
    for start in range(0, len(order), batch):
        chunk = order[start: start + batch]
        results = translator.translate_batch(
            [[tok.src.id_to_piece(t) for t in ids[i]] for i in chunk], max_batch_size=batch, beam_size=beam,
            length_penalty=LENGTH_PENALTY if beam > 1 else 0.0, max_decoding_length=max(limit(ids[i]) for i in chunk),
            min_decoding_length=0, max_input_length=0)
        for i, result in zip(chunk, results):
            out[i] = [to_id[p] for p in result.hypotheses[0]][: limit(ids[i])]
    return out


def timed(fn, *args) -> tuple[list[list[int]], float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def make_systems(model, tok: Tokenizer, dirs: dict[str, Path], threads: int) -> tuple[dict, dict]:
    """name -> fn(ids, beam, batch) -> output ids, for ours and each CTranslate2 directory; and the
    compute type each CTranslate2 model actually runs in (on CPU, "int8" is int8_float32)."""
    def ours(ids, beam, batch):
        return translate_ids(model, ids, DecodeOptions(beam_size=beam, length_penalty=LENGTH_PENALTY,
                                                       batch_sentences=batch))
    systems, compute_types = {"ours-fp32": ours}, {}
    for quant, path in dirs.items():
        translator = ctranslate2.Translator(str(path), device="cpu", compute_type=quant,
                                            intra_threads=threads, inter_threads=1)
        systems[f"ct2-{quant}"] = (lambda t: lambda ids, beam, batch: ct2_decode(t, tok, ids, beam, batch))(translator)
        compute_types[f"ct2-{quant}"] = translator.compute_type
    return systems, compute_types


def agreement(a: list[list[int]], b: list[list[int]]) -> float:
    return round(sum(x == y for x, y in zip(a, b)) / max(len(a), 1), 4)


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--tokenized", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--test", "test_split", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", default=2, show_default=True)
@click.option("--batch1-sentences", default=200, show_default=True, help="sentences decoded one at a time")
@click.option("--sentences", default=0, help="limit the test split (0: all of it), for a smoke run")
@click.option("--model-dir", type=click.Path(file_okay=False), help="keep the converted models here (default: a temp dir)")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def main(checkpoint, tokenized, test_split, threads, batch1_sentences, sentences, model_dir, out):
    torch.set_num_threads(threads)
    model, _ = load_model(checkpoint)
    tok = Tokenizer.load(tokenized)
    sources, refs = read_split(test_split)
    if sentences:
        sources, refs = sources[:sentences], refs[:sentences]
    ids = tok.encode_src(sources)
    model_dir = Path(model_dir or tempfile.mkdtemp(prefix="ct2_anchor_"))
    dirs = convert_all(model, tok, model_dir)
    systems, compute_types = make_systems(model, tok, dirs, threads)
    load_before = os.getloadavg()  # other processes on the machine: timings are only as good as it is idle
    for fn in systems.values():  # warm-up: first-call allocations stay out of the timings
        fn(ids[:8], 1, 8)
    rows, outputs = [], {}
    for beam in (1, 4):
        for batch, subset in ((128, ids), (1, ids[:batch1_sentences])):
            for name, fn in systems.items():
                hyp_ids, seconds = timed(fn, subset, beam, batch)
                outputs[name, beam, batch] = hyp_ids
                row = {"system": name, "decoding": "greedy" if beam == 1 else f"beam{beam}", "batch": batch,
                       "sentences": len(subset), "sentences_per_second": round(len(subset) / seconds, 1),
                       "identical_to_ours": agreement(hyp_ids, outputs["ours-fp32", beam, batch])}
                if batch == 128:
                    row["bleu"] = score(tok.decode_tgt(hyp_ids), refs)["bleu"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    ours, theirs = outputs["ours-fp32", 1, 128], outputs["ct2-float32", 1, 128]
    mismatches = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    check = {"greedy_fp32_identical": agreement(theirs, ours), "sentences": len(ours), "mismatched": len(mismatches),
             "first_mismatch": None if not mismatches else {"index": mismatches[0], "ours": ours[mismatches[0]],
                                                            "ct2": theirs[mismatches[0]]}}
    result = {"command": " ".join(sys.argv), "ctranslate2": ctranslate2.__version__, "torch": torch.__version__,
              "threads": threads, "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(),
              "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
              "model_dirs": {q: str(p) for q, p in dirs.items()}, "compute_types": compute_types,
              "model_bin_mb": {q: round((p / "model.bin").stat().st_size / 1e6, 2) for q, p in dirs.items()},
              "int8_float32_same_files_as_int8": "int8_float32" not in dirs,
              "conversion_check": check, "length_penalty": LENGTH_PENALTY, "rows": rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    base = {(r["decoding"], r["batch"]): r["sentences_per_second"] for r in rows if r["system"] == "ours-fp32"}
    print(f"\nctranslate2 {ctranslate2.__version__}; cpu flags: {' '.join(result['cpu_flags'])}; {threads} threads; "
          f"load average before/after {load_before[0]:.1f}/{os.getloadavg()[0]:.1f}")
    print(f"conversion check (ct2 float32 greedy == ours fp32 greedy): {check['greedy_fp32_identical']:.2%} "
          f"of {len(ours)} sentences")
    print("| system | decoding | batch | sentences/s | × ours fp32 | = ours | BLEU |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['system']} | {r['decoding']} | {r['batch']} | {r['sentences_per_second']} | "
              f"{r['sentences_per_second'] / base[(r['decoding'], r['batch'])]:.2f} | "
              f"{r['identical_to_ours']:.1%} | {r.get('bleu', '–')} |")


if __name__ == "__main__":
    main()
