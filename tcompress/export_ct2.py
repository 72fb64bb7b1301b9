"""A baseline or a cell's artifact as a CTranslate2 model: its float weights, or its own integer codes.

Our ``EncoderDecoder`` maps onto CTranslate2's ``TransformerSpec`` as it is: pre-norm layers and a
final LayerNorm in each stack (torch's ε, 1e-5), a ReLU feed-forward, embeddings × sqrt(d_model)
(``scale_embeddings``) plus our own sinusoid table, given as a table because ours interleaves sin
and cos where CTranslate2's built-in one concatenates them; the encoder reads positions from 0 and
the decoder position t at step t, as ours do. Self-attention's q, k and v become one fused linear,
cross-attention's k and v another; a shared embedding table is written once (CTranslate2 aliases
equal variables); the generator is the decoder's projection. The vocabularies are the SentencePiece
pieces in id order, so CTranslate2's token i is our id i; decoding starts from BOS and the model's
config appends EOS to the source, as ``Tokenizer.encode_src`` does.

Two ways to write the weights:

- ``float32``: every weight as the float values the model computes with (a cell's codes times their
  steps, a codebook's entries). Computed in float32: the model's own function, float rounding aside.
- ``int8``: each Linear's and embedding's weight as int8 codes with ``weight_scale``, CTranslate2's
  per-row multiplier (it divides by it). Rows of a cell's integer codes that fit int8 once their zero
  point is subtracted (symmetric codes of ≤ 8 bits, asymmetric ones of ≤ 7) are the codes verbatim
  with ``weight_scale`` = 1/step; other rows, and weights that are float in the cell, get
  CTranslate2's own rule (127 / max|row|), which it would apply on loading anyway. Saved with
  ``quantization=None`` and run as ``int8_float32``, so the codes are what CTranslate2 multiplies.

What cannot be carried over (activation ranges, wrappers that compute more than their weights, int8
rows that are not the cell's codes, sparsity) is listed module by module in the export's
``manifest.json``; ``summary`` says it in one line. On request an export also holds a vocabulary
shortlist (``tcompress.vocabulary_map``), which its decoding then uses: faster at small batches, and
listed among the differences, since it can change the output.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tcompress import safetensors_file, vocabulary_map
from tcompress.compress.artifact import StoredForm
from tcompress.compress.linear_quant import dequantize
from tcompress.compress.quantized import InputScaledModule, QuantizedModule
from tcompress.compress.walker import unwrapped
from tcompress.model import BOS, EOS, PAD, UNK, EncoderDecoder, MultiHeadedAttention, PositionalEncoding
from tcompress.schema import UserError
from tcompress.tokenizer import MANIFEST as TOKENIZER_MANIFEST
from tcompress.tokenizer import Tokenizer
from tcompress.translate_ct2 import EXPORT_KIND, MANIFEST, TOKENIZER_DIR, require_ctranslate2

WEIGHTS = {"float32": "float32", "int8": "int8_float32"}   # how the weights are written -> compute type
INT8_MAX = 127


# What the manifest can say about an export: key -> (differs from the source, short label, statement).
FINDINGS: dict[str, tuple[bool, str, str]] = {
    "codes_verbatim": (False, "codes verbatim", "the source's integer codes as int8 (zero point subtracted) with "
                       "weight_scale = 1 / step: CTranslate2 multiplies these codes"),
    "codes_as_float": (False, "codes as float32", "integer codes written as the float32 values they stand for "
                       "(codes × step)"),
    "codebook_as_float": (False, "codebooks as float", "weights held as indices into a codebook (the stored form "
                          "named with the module) written as the float values they stand for"),
    "own_shape": (False, "own shapes", "a stored form that changes the module's shape (named with the module): "
                  "written at that shape"),
    "sparse_dense": (False, "sparse stored dense", "a weight the source stores sparse (bitmask + nonzeros): "
                     "CTranslate2 holds and multiplies its zeros, so they save neither bytes nor time"),
    "rows_requantized": (True, "codes re-quantized", "codes that do not fit int8 once their zero point is "
                         "subtracted (more than 8 bits, or 8-bit asymmetric): those rows (counted with the module) "
                         "re-quantized from their float values by CTranslate2's rule, 127 / max|row|"),
    "float_requantized": (True, "float weights quantized", "weights that are float in the source, quantized to int8 "
                          "by CTranslate2's rule (127 / max|row|), as CTranslate2 itself does on loading"),
    "activation_ranges": (True, "activation ranges dropped", "activations the source quantizes with fixed ranges "
                          "(the sites named with the module) are not: CTranslate2 computes them in float, or "
                          "quantizes Linear inputs per row at run time in an int8 export"),
    "input_scale_folded": (True, "input scales folded", "a Linear that divides its input by a vector s before its "
                           "codes (AWQ, SmoothQuant; the form named with the module): 1/s folded into the "
                           "dequantized weight's columns, Ŵ[:, j] / s_j, written as float (CTranslate2 quantizes "
                           "it by its own rule in an int8 export), so its codes are not carried over"),
    "wrapper_dropped": (True, "quantized activations dropped", "a stored form that wraps a whole module and "
                        "computes more than its weights (quantized activations; the form named with the module): "
                        "CTranslate2 runs the plain module on its weights"),
    "int8_inputs": (True, "int8 inputs per row", "every Linear's input is quantized to int8 per row at run time by "
                    "CTranslate2 (scale 127 / max|row|), where the source multiplies float inputs"),
    "vocabulary_map": (True, "vocabulary shortlist", "each decoding step scores only the candidates of the batch's "
                       "source pieces and the most frequent target pieces (vmap.txt, tcompress.vocabulary_map): "
                       "a piece outside them is never output"),
}


class Findings:
    """What the manifest says about the export (``FINDINGS``), each with the modules it concerns."""

    def __init__(self) -> None:
        self.modules: dict[str, list[str]] = {}

    def add(self, key: str, module: str) -> None:
        modules = self.modules.setdefault(key, [])
        if module not in modules:
            modules.append(module)

    @property
    def exact(self) -> bool:
        return not any(FINDINGS[key][0] for key in self.modules)

    def as_lists(self) -> dict[str, list[dict[str, Any]]]:
        entries = {True: [], False: []}
        for key in FINDINGS:   # in the table's order, whatever order they were found in
            if key in self.modules:
                differs, label, what = FINDINGS[key]
                entries[differs].append({"finding": key, "label": label, "what": what, "modules": self.modules[key]})
        return {"differences": entries[True], "same_numbers": entries[False]}


def array(t: torch.Tensor) -> np.ndarray:
    """A float32 copy of ``t`` for the spec (CTranslate2 keeps references to what it is given)."""
    return t.detach().float().cpu().numpy().copy()


def ct2_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CTranslate2's own int8 rule (``ctranslate2.specs.model_spec``): per row, scale 127 / max|row|."""
    amax = np.abs(w).max(axis=1)
    amax[amax == 0] = INT8_MAX
    amax = np.maximum(amax, np.float32(INT8_MAX) / np.finfo(np.float32).max)
    scale = (np.float32(INT8_MAX) / amax).astype(np.float32)
    return np.rint(w * scale[:, None]).astype(np.int8), scale


def quantized_form(module: nn.Module) -> QuantizedModule | None:
    """The ``QuantizedModule`` among ``module``'s wrappers, if any."""
    while isinstance(module, nn.Module):
        if isinstance(module, QuantizedModule):
            return module
        module = getattr(module, "inner", None)
    return None


def codes_as_int8(qm: QuantizedModule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int8 codes, CTranslate2 scales and, per row, whether the row holds the cell's own codes."""
    q = qm.weight_q.to(torch.int64)
    rows = q.shape[0]
    step = qm.weight_scale.float().expand(rows) if qm.weight_scale.dim() == 0 else qm.weight_scale.float()
    zero = qm.weight_zero_point.expand(rows) if qm.weight_zero_point.dim() == 0 else qm.weight_zero_point
    centred = (q - zero[:, None]).reshape(rows, -1)                      # the codes as x ≈ (q − z)·s
    verbatim = (centred.abs() <= INT8_MAX).all(dim=1)
    own, own_scale = ct2_int8(dequantize(qm.weight_q, qm.weight_scale, qm.weight_zero_point).reshape(rows, -1).numpy())
    codes = np.where(verbatim[:, None].numpy(), centred.numpy(), own).astype(np.int8)
    scale = np.where(verbatim.numpy(), (1.0 / step).numpy(), own_scale).astype(np.float32)
    return codes.reshape(q.shape), scale, verbatim.numpy()


class SpecWriter:
    """Fills a ``TransformerSpec`` from our model, weight by weight, noting what each weight became."""

    def __init__(self, model: EncoderDecoder, int8: bool, findings: Findings):
        self.model, self.int8, self.findings = model, int8, findings
        self.noted: set[int] = set()

    def at(self, name: str) -> nn.Module:
        """The module at ``name`` in our plain model's naming, through any wrapper on the way."""
        module: nn.Module = self.model
        for part in name.split("."):
            while not hasattr(module, part) and isinstance(getattr(module, "inner", None), nn.Module):
                module = module.inner
            module = getattr(module, part)
        return module

    def note(self, key: str, name: str, detail: str = "") -> None:
        """One finding per module: a shared table is noted under its first name only."""
        if id(self.at(name)) not in self.noted:
            self.noted.add(id(self.at(name)))
            self.findings.add(key, f"{name} ({detail})" if detail else name)

    def weight(self, spec, names: list[str], cls: type) -> None:
        """``spec.weight`` (and ``weight_scale``) from the modules ``names``, fused along rows."""
        if not self.int8:
            spec.weight = np.concatenate([self._float(n, cls) for n in names])
            for name in names:
                if quantized_form(self.at(name)) is not None and not isinstance(self.at(name), InputScaledModule):
                    self.note("codes_as_float", name)
            return
        parts = [self._int8(name, cls) for name in names]
        spec.weight = np.concatenate([codes for codes, _ in parts])
        spec.weight_scale = np.concatenate([scale for _, scale in parts])

    def _float(self, name: str, cls: type) -> np.ndarray:
        module = self.at(name)
        if isinstance(module, InputScaledModule):   # y = Ŵ (x / s) = (Ŵ diag(1/s)) x
            return array(unwrapped(module, cls).weight / module.input_scale)
        return array(unwrapped(module, cls).weight)

    def _int8(self, name: str, cls: type) -> tuple[np.ndarray, np.ndarray]:
        qm = quantized_form(self.at(name))
        if isinstance(self.at(name), InputScaledModule):   # its codes are of W·diag(s): fold, then CT2's rule
            self.note("float_requantized", name)
            return ct2_int8(self._float(name, cls))
        if qm is None or "weight" not in qm.param_names:
            self.note("float_requantized", name)
            return ct2_int8(self._float(name, cls))
        codes, scale, verbatim = codes_as_int8(qm)
        if verbatim.all():
            self.note("codes_verbatim", name)
        else:
            self.note("rows_requantized", name, f"{int((~verbatim).sum())} of {len(verbatim)} rows, "
                                                f"{qm.spec.bits}-bit {qm.spec.mode}")
        return codes, scale

    def linear(self, spec, names: list[str]) -> None:
        self.weight(spec, names, nn.Linear)
        spec.bias = np.concatenate([array(unwrapped(self.at(n), nn.Linear).bias) for n in names])

    def layer_norm(self, spec, name: str) -> None:
        norm = unwrapped(self.at(name), nn.LayerNorm)
        spec.gamma, spec.beta = array(norm.weight), array(norm.bias)

    def attention(self, spec, name: str, norm: str, fused: list[list[str]]) -> None:
        for i, group in enumerate(fused):
            self.linear(spec.linear[i], [f"{name}.{p}" for p in group])
        self.linear(spec.linear[-1], [f"{name}.out_proj"])
        self.layer_norm(spec.layer_norm, norm)

    def feed_forward(self, spec, name: str, norm: str) -> None:
        self.linear(spec.linear_0, [f"{name}.w_1"])
        self.linear(spec.linear_1, [f"{name}.w_2"])
        self.layer_norm(spec.layer_norm, norm)


def build_spec(model: EncoderDecoder, tok: Tokenizer, int8: bool, findings: Findings):
    """Our model, weight for weight, as a CTranslate2 ``TransformerSpec`` (validated, not yet saved)."""
    require_ctranslate2()
    from ctranslate2.specs import common_spec, transformer_spec

    cfg = model.cfg
    spec = transformer_spec.TransformerSpec.from_config(cfg.n_layers, cfg.n_heads, pre_norm=True,
                                                        activation=common_spec.Activation.RELU)
    w = SpecWriter(model, int8, findings)
    enc, dec = spec.encoder, spec.decoder
    w.weight(enc.embeddings[0], ["src_embed.lut"], nn.Embedding)
    w.weight(dec.embeddings, ["tgt_embed.lut"], nn.Embedding)
    enc.scale_embeddings = dec.scale_embeddings = True
    # Our table itself: it interleaves sin and cos, where CTranslate2's built-in one concatenates them.
    enc.position_encodings.encodings = array(unwrapped(w.at("src_pos"), PositionalEncoding).pe)
    dec.position_encodings.encodings = array(unwrapped(w.at("tgt_pos"), PositionalEncoding).pe)
    for i, layer_spec in enumerate(enc.layer):
        at = f"encoder.layers.{i}"
        w.attention(layer_spec.self_attention, f"{at}.self_attn", f"{at}.norm_1", [["q_proj", "k_proj", "v_proj"]])
        w.feed_forward(layer_spec.ffn, f"{at}.feed_forward", f"{at}.norm_2")
    for i, layer_spec in enumerate(dec.layer):
        at = f"decoder.layers.{i}"
        w.attention(layer_spec.self_attention, f"{at}.self_attn", f"{at}.norm_1", [["q_proj", "k_proj", "v_proj"]])
        w.attention(layer_spec.attention, f"{at}.src_attn", f"{at}.norm_2", [["q_proj"], ["k_proj", "v_proj"]])
        w.feed_forward(layer_spec.ffn, f"{at}.feed_forward", f"{at}.norm_3")
    w.layer_norm(enc.layer_norm, "encoder.norm")
    w.layer_norm(dec.layer_norm, "decoder.norm")
    w.linear(dec.projection, ["generator.proj"])
    spec.register_source_vocabulary(vocabulary(tok.src, "source"))
    spec.register_target_vocabulary(vocabulary(tok.tgt, "target"))
    eps = {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)}
    if len(eps) != 1:
        raise UserError(f"the model's LayerNorms use several epsilons {sorted(eps)}; CTranslate2 takes one")
    spec.config.layer_norm_epsilon = eps.pop()
    spec.config.unk_token, spec.config.bos_token = tok.tgt.id_to_piece(UNK), tok.tgt.id_to_piece(BOS)
    spec.config.eos_token, spec.config.decoder_start_token = tok.tgt.id_to_piece(EOS), tok.tgt.id_to_piece(BOS)
    spec.config.add_source_bos, spec.config.add_source_eos = False, True
    spec.validate()
    return spec


def vocabulary(sp, side: str) -> list[str]:
    """SentencePiece pieces in id order, checked to be usable as CTranslate2 tokens with our special ids."""
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    if len(set(pieces)) != len(pieces) or any(not p or any(c.isspace() for c in p) for p in pieces):
        raise UserError(f"the {side} tokenizer's pieces are not unique whitespace-free tokens; "
                        "CTranslate2 cannot use them as its vocabulary")
    ids = {"pad": sp.pad_id(), "unk": sp.unk_id(), "bos": sp.bos_id(), "eos": sp.eos_id()}
    expected = {"pad": PAD, "unk": UNK, "bos": BOS, "eos": EOS}
    if ids != expected:
        raise UserError(f"the {side} tokenizer's special ids are {ids}; the model was trained with {expected}")
    return pieces


def model_wide_findings(model: EncoderDecoder, path: Path, int8: bool, findings: Findings) -> None:
    """What the stored forms and the file's layout say beyond the weights themselves."""
    for name, module in model.named_modules():
        if not isinstance(module, StoredForm):
            continue
        name = plain_name(name)
        inner = getattr(module, "inner", None)
        if isinstance(module, InputScaledModule):
            findings.add("input_scale_folded", f"{name} ({module.kind})")
        elif isinstance(module, QuantizedModule):
            if module.sites:
                findings.add("activation_ranges", f"{name} ({'+'.join(module.sites)})")
        elif isinstance(inner, (nn.Linear, nn.Embedding, nn.LayerNorm)):
            findings.add("codebook_as_float", f"{name} ({module.kind})")
        elif isinstance(inner, nn.Module):
            findings.add("wrapper_dropped", f"{name} ({module.kind})")
        else:
            findings.add("own_shape", f"{name} ({module.kind})")
    for module in sparse_modules(path):
        findings.add("sparse_dense", module)
    if int8:
        findings.add("int8_inputs", "*")


def plain_name(name: str) -> str:
    """A module's name in the plain model: wrappers keep what they wrap as ``inner``."""
    return ".".join(part for part in name.split(".") if part != "inner")


def sparse_modules(path: Path) -> list[str]:
    """Modules whose weight the packed artifact stores as bitmask + nonzeros (a pruned weight; none
    in a torch checkpoint). Biases are left out: an all-zero bias is stored that way too."""
    if zipfile.is_zipfile(path):   # a torch checkpoint
        return []
    header, _ = safetensors_file.read_header(path)
    layouts = json.loads(header.get("__metadata__", {}).get("layout", "{}"))
    weights = ("weight", "weight_q", "weight_codes")
    return sorted({plain_name(key.rpartition(".")[0]) for key, layout in layouts.items()
                   if layout.get("kind") == "masked" and key.rpartition(".")[2] in weights})


def export(loaded: tuple[EncoderDecoder, dict[str, Any]], model_file: str | Path, tokenizer_dir: str | Path,
           out_dir: str | Path, int8: bool = False, force: bool = False,
           shortlist: tuple[int, int] | None = None) -> dict[str, Any]:
    """Write the model ``loaded`` from ``model_file`` (``tcompress.loader.load_model``'s pair, or
    ``tcompress.baseline.load_baseline``'s) as a CTranslate2 model in ``out_dir`` (whole or not at
    all); returns the manifest. The caller loads, so that the baseline's export does not depend on
    the methods' code. ``shortlist`` = (per source piece, always): a vocabulary map built from the
    training pairs in ``tokenizer_dir`` (``tcompress.vocabulary_map``), which the export then decodes with."""
    ctranslate2 = require_ctranslate2()
    model_file, tokenizer_dir, out_dir = Path(model_file), Path(tokenizer_dir), Path(out_dir)
    if out_dir.exists() and not force:
        raise UserError(f"{out_dir} exists; pass --force to replace it")
    model, payload = loaded
    try:
        tok = Tokenizer.load(tokenizer_dir)
        names = json.loads((tokenizer_dir / TOKENIZER_MANIFEST).read_text())
        tokenizer_files = sorted({TOKENIZER_MANIFEST, names["src_model"], names["tgt_model"]})
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise UserError(f"{tokenizer_dir}: not a tokenizer folder ({type(err).__name__}: {err})") from None
    sizes = (tok.src_vocab_size, tok.tgt_vocab_size)
    if sizes != (model.vocab.src_size, model.vocab.tgt_size):
        raise UserError(f"{tokenizer_dir}: vocabularies of {sizes[0]}/{sizes[1]} pieces, but the model's are "
                        f"{model.vocab.src_size}/{model.vocab.tgt_size}: not the tokenizer it was trained with")
    findings = Findings()
    with torch.no_grad():
        spec = build_spec(model, tok, int8, findings)
    model_wide_findings(model, model_file, int8, findings)
    vmap = None
    if shortlist is not None:
        pairs = tokenizer_dir / vocabulary_map.PAIRS_FILE
        if not pairs.is_file():
            raise UserError(f"{pairs}: no such file; a vocabulary shortlist is built from the training pairs "
                            f"that the tokenize stage writes there")
        vmap = vocabulary_map.from_tokenized(tokenizer_dir, *sizes, *shortlist)
        findings.add("vocabulary_map", "generator")
    spec.optimize(quantization=None)   # aliases equal variables; None keeps our codes as they are
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        spec.save(str(tmp))
        if vmap is not None:
            vocabulary_map.write(vmap, tmp / vocabulary_map.FILE, tok.src.id_to_piece, tok.tgt.id_to_piece)
        (tmp / TOKENIZER_DIR).mkdir()
        for name in tokenizer_files:
            shutil.copy(tokenizer_dir / name, tmp / TOKENIZER_DIR / name)
        manifest = {
            "format": EXPORT_KIND,
            "source": {"path": str(model_file), "sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
                       **({"cell": payload["cell"].get("cell")} if isinstance(payload.get("cell"), dict) else {})},
            "weights": "int8" if int8 else "float32",
            "compute_type": WEIGHTS["int8" if int8 else "float32"],
            "ctranslate2": ctranslate2.__version__,
            "exact": findings.exact,
            **findings.as_lists(),
            "model": {**{k: getattr(model.cfg, k) for k in ("d_model", "n_layers", "n_heads", "d_ff", "max_positions",
                                                             "share_embeddings")},
                      "src_vocab": model.vocab.src_size, "tgt_vocab": model.vocab.tgt_size},
            "special_tokens": {name: {"id": i, "piece": tok.tgt.id_to_piece(i)}
                               for name, i in (("pad", PAD), ("unk", UNK), ("bos", BOS), ("eos", EOS))},
            **({} if vmap is None else {"vocabulary_map": {
                "file": vocabulary_map.FILE, "per_source": shortlist[0], "frequent": shortlist[1],
                "source_pieces": len(vmap.per_source), "always": len(vmap.frequent),
                "pairs_sha256": hashlib.sha256((tokenizer_dir / vocabulary_map.PAIRS_FILE).read_bytes()).hexdigest()}}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.replace(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return manifest


def summary(manifest: dict[str, Any], out_dir: str | Path) -> str:
    """One line: where the export went, how its weights are held, and what differs from the source."""
    head = f"{out_dir}: CTranslate2 model, {manifest['weights']} weights (compute type {manifest['compute_type']})"
    if manifest["exact"]:
        return f"{head}; computes what the source computes, float rounding aside"
    what = ", ".join(f"{d['label']} ({'all' if d['modules'] == ['*'] else len(d['modules'])})"
                     for d in manifest["differences"])
    return f"{head}; differs from the source: {what} (see {Path(out_dir) / MANIFEST})"
