"""Strict loading of ``params.yaml`` into dataclasses.

Every stage validates the whole file before it touches anything, so a typo fails at once, with the
key's dotted name and what is allowed, instead of silently training the default (nanotron's rule).
Ranges and choices live next to each field in ``metadata`` so the message and the check cannot drift.

Any scalar may instead be a mapping keyed by corpus name (``epochs: {synthetic: 12, multi30k: 20}``):
the value for the selected ``data`` is used, so ``dvc exp run -S data=multi30k`` switches the
corpus-dependent budget along with the corpus, and no key has two places that could disagree.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml


class ConfigError(ValueError):
    """A bad value in params.yaml; ``str(err)`` is the one line shown to the user."""


def _f(default: Any, *, lo: float | None = None, hi: float | None = None,
       choices: tuple | None = None, lo_open: bool = False, doc: str = "") -> Any:
    meta = {"lo": lo, "hi": hi, "choices": choices, "lo_open": lo_open, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SyntheticConfig:
    train_size: int = _f(12000, lo=1)
    valid_size: int = _f(400, lo=1)
    test_size: int = _f(500, lo=1)
    seed: int = _f(1)


@dataclass(frozen=True)
class Multi30kConfig:
    local_dir: Optional[str] = _f(None, doc="read the six files from here instead of downloading")
    url: str = _f("https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw")
    src_lang: str = _f("en", choices=("en", "de"))
    tgt_lang: str = _f("de", choices=("en", "de"))


@dataclass(frozen=True)
class FilesConfig:
    train_source: Optional[str] = _f(None)
    train_target: Optional[str] = _f(None)
    valid_source: Optional[str] = _f(None)
    valid_target: Optional[str] = _f(None)
    test_source: Optional[str] = _f(None)
    test_target: Optional[str] = _f(None)


@dataclass(frozen=True)
class CleaningConfig:
    max_len_ratio: float = _f(3.0, lo=1.0)
    max_words: int = _f(100, lo=1)


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = _f(8000, lo=16)
    model_type: str = _f("unigram", choices=("unigram", "bpe", "char", "word"))
    joint: bool = _f(True, doc="one vocabulary for source and target")
    character_coverage: float = _f(1.0, lo=0.9, hi=1.0)


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = _f(256, lo=8)
    n_layers: int = _f(3, lo=1)
    n_heads: int = _f(4, lo=1)
    d_ff: int = _f(1024, lo=8)
    dropout: float = _f(0.1, lo=0.0, hi=0.9)
    share_embeddings: bool = _f(True, doc="source and target embeddings share one table (joint vocabulary only)")
    max_positions: int = _f(512, lo=16)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = _f(15, lo=1)
    batch_tokens: int = _f(3000, lo=16, doc="sentences x longest side (padded tokens) per batch")
    lr: float = _f(1e-3, lo=0.0, lo_open=True, doc="peak learning rate, reached after warmup_steps")
    warmup_steps: int = _f(800, lo=1)
    beta1: float = _f(0.9, lo=0.0, hi=1.0)
    beta2: float = _f(0.98, lo=0.0, hi=1.0)
    adam_eps: float = _f(1e-9, lo=0.0, lo_open=True)
    weight_decay: float = _f(0.0, lo=0.0)
    label_smoothing: float = _f(0.1, lo=0.0, hi=0.99)
    clip_norm: float = _f(1.0, lo=0.0, doc="0 disables gradient clipping")
    precision: str = _f("bf16", choices=("fp32", "bf16"), doc="bf16 autocast for matmuls")
    checkpoint_every: int = _f(200, lo=1, doc="steps between resumable checkpoints")
    val_bleu_sentences: int = _f(0, lo=0, doc="validation sentences decoded for BLEU each epoch; 0 = all")
    threads: int = _f(0, lo=0, doc="torch CPU threads; 0 = torch's default")
    device: str = _f("auto", choices=("auto", "cpu", "cuda"))


@dataclass(frozen=True)
class EvaluateConfig:
    beam_size: int = _f(4, lo=1)
    length_penalty: float = _f(0.6, lo=0.0)
    batch_sentences: int = _f(128, lo=1)
    max_len_a: float = _f(1.5, lo=0.0, doc="output length limit = a * source length + b")
    max_len_b: int = _f(10, lo=0)
    cell_beam_size: int = _f(1, lo=1, doc="decoding of compressed cells: 1 = greedy (the thesis's), "
                                           "or evaluate.beam_size")


QUANT_MODES = ("sym", "asym")
METHODS = ("ptq", "qat", "agp", "imp")
CLIP_MODES = ("none", "percentile", "std")
ACTIVATIONS = ("none", "inputs", "both")
THESIS_SCHEDULES = ("10-70-1", "45-70-3", "90-100-1")  # initial % - final % - frequency (seed 000 §4.3)


@dataclass(frozen=True)
class CatalogConfig:
    """The values dvc.yaml makes one stage for (its ``matrix``); the grid keys pick among them."""
    bits: tuple[int, ...] = _f((16, 8, 4, 3), lo=2, hi=16)
    modes: tuple[str, ...] = _f(QUANT_MODES, choices=QUANT_MODES)
    groups: tuple[str, ...] = _f(("ff", "att", "emb", "gen", "ff+emb+gen", "full"))
    schedules: tuple[str, ...] = _f(THESIS_SCHEDULES, doc="AGP schedules, 'initial%-final%-frequency'")
    pruning_groups: tuple[str, ...] = _f(("ff", "att", "emb", "gen", "ff+att", "full"))


@dataclass(frozen=True)
class FinetuneParams:
    """The fine-tuning budget of a training-based method; the rest comes from ``train``."""
    epochs: int = _f(1, lo=1)
    train_sentences: int = _f(0, lo=0, doc="a seeded random subset of the training split; 0 = all of it")
    lr: float = _f(2e-4, lo=0.0, lo_open=True, doc="peak learning rate (inverse-sqrt schedule)")
    warmup_steps: int = _f(50, lo=1)
    from_scratch: bool = _f(False, doc="train a fresh model instead of fine-tuning the baseline")


@dataclass(frozen=True)
class QATParams(FinetuneParams):
    bits: Optional[tuple[int, ...]] = _f(None, lo=2, hi=16, doc="null: the top-level bits")
    modes: Optional[tuple[str, ...]] = _f(None, choices=QUANT_MODES, doc="null: the top-level modes")
    groups: Optional[tuple[str, ...]] = _f(None, doc="null: the top-level groups")
    per_channel: bool = _f(False)
    activations: str = _f("none", choices=ACTIVATIONS, doc="quantized float activations of each module: "
                          "none, inputs (what an integer kernel consumes), or both (inputs and outputs)")
    ema_momentum: float = _f(0.9, lo=0.0, hi=1.0, doc="activation ranges: exponential moving average")
    start_step: int = _f(0, lo=0, doc="delayed start: float forward (ranges tracked) before this step")


@dataclass(frozen=True)
class AGPParams(FinetuneParams):
    schedules: tuple[str, ...] = _f(THESIS_SCHEDULES, doc="grid key: 'initial%-final%-frequency'")
    groups: tuple[str, ...] = _f(("ff", "att", "emb", "gen", "ff+att", "full"), doc="grid key")
    unit: str = _f("steps", choices=("steps", "epochs"), doc="unit of start, end and the frequency")
    start: int = _f(0, lo=0)
    end: int = _f(60, lo=1)


@dataclass(frozen=True)
class IMPParams(FinetuneParams):
    groups: tuple[str, ...] = _f(("full",), doc="grid key")
    fraction: float = _f(0.2, lo=0.0, hi=1.0, lo_open=True, doc="of the remaining weights, per round")
    threshold: Optional[float] = _f(None, lo=0.0, doc="prune |w| below this instead of a fraction")
    rounds: int = _f(3, lo=1)
    steps_per_round: int = _f(60, lo=1)


@dataclass(frozen=True)
class PTQParams:
    calibration_batches: int = _f(8, lo=1, doc="training batches whose activations set the ranges")
    calibration_batch_tokens: int = _f(3000, lo=16)
    per_channel: bool = _f(False, doc="one weight range per output channel instead of per tensor")
    activations: str = _f("both", choices=ACTIVATIONS, doc="quantized float activations of each module: "
                          "none, inputs, or both (inputs and outputs, as Distiller's PTQ)")
    clip: str = _f("none", choices=CLIP_MODES, doc="activation range: min/max, percentiles or mean ± n·std")
    clip_percentile: float = _f(99.99, lo=50.0, hi=100.0)
    clip_std: float = _f(3.0, lo=0.0, lo_open=True)


@dataclass(frozen=True)
class Params:
    data: str = _f("synthetic", choices=("synthetic", "multi30k", "files"))
    seed: int = _f(1234)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    multi30k: Multi30kConfig = field(default_factory=Multi30kConfig)
    files: FilesConfig = field(default_factory=FilesConfig)
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    methods: tuple[str, ...] = _f(METHODS, choices=METHODS)
    bits: tuple[int, ...] = _f((8, 4), lo=2, hi=16)
    modes: tuple[str, ...] = _f(QUANT_MODES, choices=QUANT_MODES)
    groups: tuple[str, ...] = _f(("att", "ff+emb+gen", "full"))
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    ptq: PTQParams = field(default_factory=PTQParams)
    qat: QATParams = field(default_factory=QATParams)
    agp: AGPParams = field(default_factory=AGPParams)
    imp: IMPParams = field(default_factory=IMPParams)


_PARAM_FIELDS = {f.name: f for f in dataclasses.fields(Params)}


def _describe(tp: Any, meta: dict) -> str:
    if meta.get("choices"):
        return "one of " + ", ".join(map(str, meta["choices"]))
    name = getattr(tp, "__name__", str(tp))
    parts = [name]
    if meta.get("lo") is not None:
        parts.append((">" if meta.get("lo_open") else ">=") + f" {meta['lo']}")
    if meta.get("hi") is not None:
        parts.append(f"<= {meta['hi']}")
    return " ".join(parts)


CORPORA = ("synthetic", "multi30k", "files")


def _coerce(key: str, value: Any, tp: Any, meta: dict, corpus: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, corpus)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(CORPORA))
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}: unknown corpus; a per-corpus value is keyed by "
                              f"{', '.join(CORPORA)}")
        checked = {c: _coerce(f"{key}.{c}", v, tp, meta, corpus) for c, v in value.items()}
        if corpus not in checked:
            raise ConfigError(f"{key}.{corpus}: missing; {key} is given per corpus and data is {corpus!r}")
        return checked[corpus]
    origin = typing.get_origin(tp)
    if origin is tuple:
        # A grid key: one value or a list of them (`-S bits=4` or `-S 'bits=[8,4]'`).
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ConfigError(f"{key}: needs at least one value")
        items = tuple(_coerce(key, v, typing.get_args(tp)[0], meta, corpus) for v in values)
        if len(set(items)) != len(items):
            raise ConfigError(f"{key}: {value!r} lists a value twice")
        return items
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(key, value, args[0], meta, corpus)
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    )
    if not ok:
        raise ConfigError(f"{key}: expected {_describe(tp, meta)}, got {value!r}")
    value = float(value) if tp is float else value
    choices, lo, hi = meta.get("choices"), meta.get("lo"), meta.get("hi")
    if choices and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not allowed; expected {_describe(tp, meta)}")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        raise ConfigError(f"{key}: {value!r} is out of range; expected {_describe(tp, meta)}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}: {value!r} is out of range; expected {_describe(tp, meta)}")
    return value


def _build(cls: type, raw: Any, prefix: str = "", corpus: str = "synthetic") -> Any:
    where = prefix or "params"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise ConfigError(f"{key}: unknown key; allowed keys here: {', '.join(fields)}")
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(key, value, hints[name], dict(fields[name].metadata), corpus)
    return cls(**kwargs)


def _check_consistency(p: Params) -> None:
    if p.model.d_model % p.model.n_heads:
        raise ConfigError(f"model.n_heads: {p.model.n_heads} must divide model.d_model ({p.model.d_model})")
    if p.multi30k.src_lang == p.multi30k.tgt_lang:
        raise ConfigError("multi30k.tgt_lang: must differ from multi30k.src_lang")
    if p.data == "files":
        missing = [f.name for f in dataclasses.fields(p.files) if getattr(p.files, f.name) is None]
        if missing:
            raise ConfigError(f"files.{missing[0]}: required when data is 'files' (a path to a text file)")
    if p.model.share_embeddings and not p.tokenizer.joint:
        raise ConfigError("model.share_embeddings: true needs tokenizer.joint: true (one vocabulary)")
    if p.evaluate.cell_beam_size not in (1, p.evaluate.beam_size):
        raise ConfigError(f"evaluate.cell_beam_size: {p.evaluate.cell_beam_size} must be 1 or evaluate.beam_size "
                          f"({p.evaluate.beam_size}), so every cell has a baseline decoded the same way")
    _check_grid(p)


def parse_schedule(spec: str) -> tuple[float, float, int]:
    """``"10-70-1"`` -> (0.10, 0.70, 1): initial and final sparsity, pruning frequency."""
    parts = spec.split("-")
    try:
        initial, final, frequency = (int(x) for x in parts)
    except ValueError:
        raise ValueError(f"{spec!r} is not 'initial%-final%-frequency', e.g. 10-70-1") from None
    if not 0 <= initial <= final <= 100 or frequency < 1:
        raise ValueError(f"{spec!r}: need 0 <= initial <= final <= 100 and frequency >= 1")
    return initial / 100, final / 100, frequency


def _grid_lists(p: Params) -> list[tuple[str, tuple, str]]:
    """(key, values, catalog key) of every grid key, method overrides resolved."""
    return [("bits", p.bits, "bits"), ("modes", p.modes, "modes"), ("groups", p.groups, "groups"),
            ("qat.bits", p.qat.bits or (), "bits"), ("qat.modes", p.qat.modes or (), "modes"),
            ("qat.groups", p.qat.groups or (), "groups"), ("agp.schedules", p.agp.schedules, "schedules"),
            ("agp.groups", p.agp.groups, "pruning_groups"), ("imp.groups", p.imp.groups, "pruning_groups")]


def _check_grid(p: Params) -> None:
    from tcompress.layer_groups import parse_group  # torch-free stages never get here

    for key, values, cat in [(f"catalog.{c}", getattr(p.catalog, c), c) for c in ("groups", "pruning_groups")] + \
            [g for g in _grid_lists(p) if g[2] in ("groups", "pruning_groups")]:
        for spec in values:
            try:
                parse_group(spec)
            except ValueError as err:
                raise ConfigError(f"{key}: {err}") from None
    for key, values in [("catalog.schedules", p.catalog.schedules), ("agp.schedules", p.agp.schedules)]:
        for spec in values:
            try:
                parse_schedule(spec)
            except ValueError as err:
                raise ConfigError(f"{key}: {err}") from None
    for key, values, cat in _grid_lists(p):
        allowed = getattr(p.catalog, cat)
        for value in values:
            if value not in allowed:
                raise ConfigError(f"{key}: {value!r} is not in catalog.{cat} ({', '.join(map(str, allowed))}); "
                                  f"dvc.yaml has one stage per catalog value, so add it to catalog.{cat} first")


def params_from_dict(raw: dict) -> Params:
    if not isinstance(raw, dict):
        raise ConfigError(f"params: expected a mapping, got {raw!r}")
    if isinstance(raw.get("data"), dict):
        raise ConfigError(f"data: expected one of {', '.join(CORPORA)}, got {raw['data']!r}")
    corpus = _coerce("data", raw.get("data", "synthetic"), str, dict(_PARAM_FIELDS["data"].metadata), "synthetic")
    params = _build(Params, raw, "", corpus)
    _check_consistency(params)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    return params_from_dict(raw or {})


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)
