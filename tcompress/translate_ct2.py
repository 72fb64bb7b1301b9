"""Translating with a CTranslate2 export: our batching and length limits, CTranslate2's search.

An export folder (``tcompress export --format ctranslate2``) holds CTranslate2's model files, our
SentencePiece tokenizer (``tokenizer/``) and ``manifest.json``, which names the compute type the
weights were written for and what differs from the source model. Sentences are batched as
``tcompress.decode.translate_ids`` batches them (sorted by length, ``batch_sentences`` a batch) and
each output is cut to its own limit a·|source| + b, |source| counting the EOS the model appends;
a greedy prefix does not depend on a longer limit, so greedy output is ours token for token where
the logits' argmax is. Beam search is CTranslate2's own: its length penalty divides by
|hypothesis|^α where ours uses GNMT's ((5 + |hypothesis|) / 6)^α, and the batch's longest limit
applies to every hypothesis, so beam output can differ from ours.

CTranslate2 is the optional ``deploy`` extra; without it the functions here raise a ``UserError``
that says how to install it.

On the CPU, how CTranslate2 runs is chosen per machine when it is loaded (``cpu_settings``), from
/proc/cpuinfo and what the binary reports, never assuming an instruction set the CPU lacks:

- GEMM backend: Intel MKL on GenuineIntel CPUs, with its packed GEMM (weights packed once at load;
  ``CT2_PACKED_GEMM``, called ``CT2_USE_EXPERIMENTAL_PACKED_GEMM`` and off by default before
  CTranslate2 turned it on for MKL); oneDNN on other vendors (AMD EPYC), where MKL is not
  CTranslate2's choice either (``CT2_USE_MKL=0``). Both pick their own kernels per CPU (AVX2,
  AVX-512, VNNI, AMX); which one runs is read back from the binary (only MKL computes int16).
- CTranslate2's own kernels (softmax, layer norm, activation quantization): its automatic dispatch
  (AVX2 where present); AVX-512 there is experimental and opt-in, so ``CT2_FORCE_CPU_ISA`` is not set.
- compute type: ``int8_float32`` for an int8 export (``int8`` resolves to it on the CPU), ``float32``
  for a float one, or float32 where the binary has no int8 GEMM.
- threads: ``intra_threads`` = the CPUs this process may use, ``inter_threads`` = 1 (batches are
  sent one at a time).

An environment variable the user already set wins over these. Without VNNI or AMX (AVX2 only),
MKL's and oneDNN's u8·s8 int8 GEMM adds pairs of products in 16 bits, which can saturate: the
numbers then differ slightly from a VNNI CPU's (``int8_gemm`` in the settings says which).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcompress.decode import DecodeOptions
from tcompress.model import EOS
from tcompress.schema import UserError
from tcompress.tokenizer import Tokenizer

MANIFEST = "manifest.json"
TOKENIZER_DIR = "tokenizer"
EXPORT_KIND = "tcompress.ctranslate2/1"
INSTALL_HINT = 'CTranslate2 is not installed; install the deploy extra: pip install -e ".[deploy]"'


# The CPU flags that decide CTranslate2's path (and the int8 GEMM's numbers), as /proc/cpuinfo names them.
CPU_FLAGS = ("avx2", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "amx_int8")
PACKED_GEMM_VARIABLES = ("CT2_PACKED_GEMM", "CT2_USE_EXPERIMENTAL_PACKED_GEMM")   # the name since, and before


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU's vendor, model and the flags of ``CPU_FLAGS`` it has (from /proc/cpuinfo, or
    ``cpuinfo``'s text); no flags where it cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:   # the first processor's
            fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    return {"vendor": fields.get("vendor_id", platform.machine()), "model": fields.get("model name", platform.processor()),
            "flags": [f for f in CPU_FLAGS if f in flags]}


def cpu_env(cpu: dict[str, Any]) -> dict[str, str]:
    """The CTranslate2 variables this CPU gets (module docstring): packed GEMM for MKL on Intel (MKL
    itself is CTranslate2's choice there, and a binary built without it would refuse
    ``CT2_USE_MKL=1``), oneDNN elsewhere."""
    if cpu["vendor"] == "GenuineIntel":
        return {name: "1" for name in PACKED_GEMM_VARIABLES}
    return {"CT2_USE_MKL": "0"}


def int8_gemm(cpu: dict[str, Any]) -> str:
    """How the CPU multiplies int8: AMX tiles, VNNI dot products (32-bit sums), or AVX2's u8·s8 pairs
    summed in 16 bits (which can saturate)."""
    flags = set(cpu["flags"])
    if "amx_int8" in flags:
        return "amx"
    if flags & {"avx512_vnni", "avx_vnni"}:
        return "vnni"
    return "avx2-16bit-sums" if "avx2" in flags else "generic"


def require_ctranslate2():
    """The ``ctranslate2`` module, or a one-line ``UserError`` saying how to get it. Imported the
    first time with this CPU's variables (``cpu_env``) set where the user has not set them."""
    if "ctranslate2" not in sys.modules:
        for name, value in cpu_env(cpu_info()).items():
            os.environ.setdefault(name, value)
    try:
        import ctranslate2
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return ctranslate2


def cpu_settings(weights: str, compute_type: str = "auto", threads: int = 0) -> dict[str, Any]:
    """How CTranslate2 runs an export whose ``weights`` are "int8" or "float32" on this CPU: compute
    type, threads, the GEMM backend in effect and the CPU flags it was chosen from."""
    ctranslate2 = require_ctranslate2()
    supported = ctranslate2.get_supported_compute_types("cpu")
    if compute_type == "auto":
        compute_type = "int8_float32" if weights == "int8" and "int8_float32" in supported else "float32"
    elif compute_type not in supported:
        raise UserError(f"compute type {compute_type} is not supported by CTranslate2 on this CPU "
                        f"(supported: {', '.join(sorted(supported))}); use auto")
    cpu = cpu_info()
    if platform.machine() in ("aarch64", "arm64"):
        gemm = "Ruy"
    else:   # only MKL computes int16 in CTranslate2's x86 builds
        gemm = "MKL" if "int16" in supported else "oneDNN"
    packed = gemm == "MKL" and any(os.environ.get(n, "").lower() in ("1", "true") for n in PACKED_GEMM_VARIABLES)
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        available = min(available, int(os.environ["OMP_NUM_THREADS"]))   # as torch, oneDNN and MKL do
    force = os.environ.get("CT2_FORCE_CPU_ISA")
    isa = force or ("AVX2" if "avx2" in cpu["flags"] else "AVX or older")
    return {"compute_type": compute_type, "intra_threads": threads or available, "inter_threads": 1,
            "gemm_backend": gemm + (" (packed)" if packed else ""), "isa": isa, "int8_gemm": int8_gemm(cpu),
            "cpu_vendor": cpu["vendor"], "cpu_model": cpu["model"], "cpu_flags": " ".join(cpu["flags"]),
            "ctranslate2": ctranslate2.__version__}


def settings_line(settings: dict[str, Any]) -> str:
    """The one stderr line saying which path runs."""
    s = settings
    return (f"ctranslate2 {s['ctranslate2']}: {s['compute_type']} on {s['cpu_vendor']} "
            f"[{s['cpu_flags'] or 'no AVX2'}], GEMM {s['gemm_backend']}, int8 GEMM {s['int8_gemm']}, "
            f"kernels {s['isa']}, {s['intra_threads']} threads")


@dataclass
class Export:
    """An export folder opened for translation: its manifest, its tokenizer and CTranslate2's translator."""

    directory: Path
    manifest: dict[str, Any]
    tokenizer: Tokenizer
    translator: Any
    settings: dict[str, Any]   # the compute type and how it runs (``cpu_settings`` on the CPU)

    @property
    def compute_type(self) -> str:
        return self.settings["compute_type"]


def read_manifest(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise UserError(f"{directory}: not a CTranslate2 export (no {MANIFEST}); make one with "
                        "`tcompress export --format ctranslate2 MODEL OUT_DIR`")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_KIND:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise UserError(f"{path}: not a tcompress CTranslate2 manifest (format {found!r}; expected {EXPORT_KIND!r})")
    return manifest


def open_export(directory: str | Path, device: str = "cpu", compute_type: str = "auto", threads: int = 0,
                quiet: bool = False) -> Export:
    """The export in ``directory``, loaded on ``device`` ("cpu", "cuda" or "cuda:N"): on the CPU as
    ``cpu_settings`` chooses (one stderr line says which path, unless ``quiet``), on a GPU with the
    compute type its manifest names."""
    ctranslate2 = require_ctranslate2()
    directory = Path(directory)
    manifest = read_manifest(directory)
    try:
        tokenizer = Tokenizer.load(directory / TOKENIZER_DIR)
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise UserError(f"{directory / TOKENIZER_DIR}: the export's tokenizer cannot be read ({err})") from None
    kind, _, index = device.partition(":")
    if kind == "cpu":
        settings = cpu_settings(manifest.get("weights", "float32"), compute_type, threads)
        threading = {"intra_threads": settings["intra_threads"], "inter_threads": settings["inter_threads"]}
    else:
        settings = {"compute_type": manifest["compute_type"] if compute_type == "auto" else compute_type}
        threading = {"inter_threads": 1}
    try:
        translator = ctranslate2.Translator(str(directory), device=kind, device_index=int(index or 0),
                                            compute_type=settings["compute_type"], **threading)
    except (RuntimeError, ValueError) as err:
        raise UserError(f"{directory}: CTranslate2 cannot load the model on {device} as "
                        f"{settings['compute_type']} ({err})") from None
    if kind == "cpu" and not quiet:
        print(settings_line(settings), file=sys.stderr)
    return Export(directory, manifest, tokenizer, translator, settings)


def limit(src_ids: list[int], opts: DecodeOptions) -> int:
    """The output limit ``tcompress.decode.length_limits`` gives a source of these ids (EOS included)."""
    return int(opts.max_len_a * len(src_ids) + opts.max_len_b)


def translate_ids(export: Export, src_ids: list[list[int]], opts: DecodeOptions) -> list[list[int]]:
    """Output ids (without BOS/EOS) for every source (ids ending in EOS, as ``encode_src`` gives
    them), in input order."""
    src_sp, tgt_sp = export.tokenizer.src, export.tokenizer.tgt
    target_id = {tgt_sp.id_to_piece(i): i for i in range(tgt_sp.get_piece_size())}
    order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))   # similar lengths share a batch
    out: list[list[int]] = [[] for _ in src_ids]
    for start in range(0, len(order), opts.batch_sentences):
        chunk = order[start: start + opts.batch_sentences]
        # The model's config adds the source EOS itself (add_source_eos), as encode_src does.
        pieces = [[src_sp.id_to_piece(t) for t in _without_eos(src_ids[i])] for i in chunk]
        results = export.translator.translate_batch(
            pieces, max_batch_size=opts.batch_sentences, beam_size=opts.beam_size,
            length_penalty=opts.length_penalty if opts.beam_size > 1 else 0.0,
            max_decoding_length=max(limit(src_ids[i], opts) for i in chunk),
            min_decoding_length=0, max_input_length=0, use_vmap="vocabulary_map" in export.manifest)
        for i, result in zip(chunk, results):
            out[i] = [target_id[p] for p in result.hypotheses[0]][: limit(src_ids[i], opts)]
    return out


def _without_eos(ids: list[int]) -> list[int]:
    return ids[:-1] if ids and ids[-1] == EOS else ids


def translate(export: Export, sources: list[str], opts: DecodeOptions) -> tuple[list[str], float]:
    """Detokenized translations in input order and the sentences per second it took."""
    start = time.perf_counter()
    try:
        ids = translate_ids(export, export.tokenizer.encode_src(sources), opts)
    except (RuntimeError, ValueError) as err:   # e.g. a source longer than the model's position table
        raise UserError(f"CTranslate2 could not translate: {err}") from None
    hyps = export.tokenizer.decode_tgt(ids)
    return hyps, len(sources) / max(time.perf_counter() - start, 1e-9)
