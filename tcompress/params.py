"""The whole ``params.yaml``: fixed sections, grid keys, the catalog and one section per method.

Every value is checked before any stage computes (the resolve stage loads this first), so a typo
fails at once with the key's dotted name and what is allowed. The methods' sections and catalog
come from the registry (``tcompress.methods``): this module names no method.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from tcompress.config import (CleaningConfig, FilesConfig, ModelConfig, Multi30kConfig, RuntimeConfig,
                              SyntheticConfig, TokenizerConfig, TrainConfig)
from tcompress.post_config import CalibrationConfig, DeployConfig, EvaluateConfig, SensitivityConfig, TeacherConfig
from tcompress import methods as registry
from tcompress.grid import selected_cells
from tcompress.schema import CORPORA, ConfigError, build, check_scalar, coerce, field_meta, setting


@dataclass(frozen=True)
class Params:
    data: str = setting("synthetic", choices=CORPORA)
    seeds: tuple[int, ...] = setting((1234,), doc="training seeds: one baseline per seed, every selected cell per "
                                     "seed; the first one's outputs are the pipeline's usual paths")
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    multi30k: Multi30kConfig = field(default_factory=Multi30kConfig)
    files: FilesConfig = field(default_factory=FilesConfig)
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    sensitivity: SensitivityConfig = field(default_factory=SensitivityConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    methods: tuple[str, ...] = setting((), doc="the methods whose cells run")
    # The shared grid keys: a method axis marked `shared` takes these when its own key is null.
    bits: tuple[int, ...] = setting((8, 4))
    modes: tuple[str, ...] = setting(("sym", "asym"))
    groups: tuple[str, ...] = setting(("att", "full"))
    chains: tuple[str, ...] = field(default=())   # the chains that run (may be none): read by _chains
    # Filled from the registry: each method's section, and the catalog dvc.yaml has stages for.
    sections: Mapping[str, Any] = field(default_factory=dict, init=True)
    catalog: Mapping[str, Mapping[str, tuple]] = field(default_factory=dict, init=True)
    chain_catalog: tuple[str, ...] = field(default=(), init=True)   # catalog.chains
    seed_catalog: tuple[int, ...] = field(default=(), init=True)     # catalog.seeds

    def method_params(self, name: str) -> Any:
        return self.sections[name]

    @property
    def seed(self) -> int:
        """The first seed's: the baseline at ``data/model`` and the cells at ``data/cells``."""
        return self.seeds[0]

    @property
    def extra_seeds(self) -> tuple[int, ...]:
        """The other selected seeds, each with its own baseline and cells under ``data/seeds/<seed>/``."""
        return self.seeds[1:]


CORPUS_DIR = Path("data/corpus")  # a `files` corpus lives here; dvc.yaml's prepare stage depends on it
FIXED = tuple(f.name for f in dataclasses.fields(Params)
              if f.name not in ("sections", "catalog", "chain_catalog", "seed_catalog"))
CHAINS_KEY = "chains"   # catalog.chains: the chains dvc.yaml has stages for
SEEDS_KEY = "seeds"     # catalog.seeds: the seeds besides the first that dvc.yaml has stages for
SHARED_GRID_KEYS = ("bits", "modes", "groups")


def _check_shared_keys(params: Params, methods: list) -> None:
    for key in SHARED_GRID_KEYS:
        axis = next((a for m in methods for a in m.axes if a.shared and a.key == key), None)
        if axis is not None:
            for value in getattr(params, key):
                axis.validate(key, value)


def _build_catalog(raw: Any, methods: list) -> dict[str, dict[str, tuple]]:
    """``catalog: {method: {axis key: [values]}}``; a method or axis left out keeps its file's default.
    (``catalog.chains`` is read by ``_chain_catalog``.)"""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"catalog: expected a mapping of method to axis values, got {raw!r}")
    raw = {k: v for k, v in raw.items() if k not in (CHAINS_KEY, SEEDS_KEY)}
    by_name = {m.name: m for m in methods}
    unknown = sorted(set(raw) - set(by_name))
    if unknown:
        raise ConfigError(f"catalog.{unknown[0]}: unknown method; registered methods: {', '.join(by_name)}")
    catalog = {}
    for m in methods:
        own = raw.get(m.name) or {}
        if not isinstance(own, dict):
            raise ConfigError(f"catalog.{m.name}: expected a mapping of axis to values, got {own!r}")
        keys = [a.key for a in m.axes]
        extra = sorted(set(own) - set(keys))
        if extra:
            raise ConfigError(f"catalog.{m.name}.{extra[0]}: unknown axis; {m.name} has {', '.join(keys)}")
        catalog[m.name] = {}
        for axis in m.axes:
            values = own.get(axis.key, m.catalog.get(axis.key))
            if values is None:
                raise ConfigError(f"catalog.{m.name}.{axis.key}: missing and {m.name} has no default catalog")
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            catalog[m.name][axis.key] = tuple(axis.validate(f"catalog.{m.name}.{axis.key}", v) for v in values)
    return catalog


def _chains(value: Any, key: str) -> tuple[str, ...]:
    """A list of chain specs, possibly empty (unlike a grid key)."""
    value = [] if value is None else value
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ConfigError(f"{key}: expected a list of chains such as 'agp:10-70-1-full > kmeans:4', got {value!r}")
    return tuple(value)


def _chain_catalog(raw: Any) -> tuple[str, ...]:
    return _chains((raw or {}).get(CHAINS_KEY) if isinstance(raw, dict) else None, "catalog.chains")


def _seed_catalog(raw: Any, corpus: str) -> tuple[int, ...]:
    """``catalog.seeds``: the seeds dvc.yaml has a baseline and cell stages for besides the first;
    none by default, so one seed costs DVC no stage of its own."""
    value = (raw or {}).get(SEEDS_KEY) if isinstance(raw, dict) else None
    if value is None or value == []:
        return ()
    return coerce(f"catalog.{SEEDS_KEY}", value, tuple[int, ...], {}, corpus)


def _check_seeds(p: Params) -> None:
    for seed in p.extra_seeds:
        if seed not in p.seed_catalog:
            raise ConfigError(f"seeds: {seed} is not in catalog.seeds ({', '.join(map(str, p.seed_catalog)) or 'empty'}); "
                              "dvc.yaml has a baseline and cell stages per catalog seed besides the first: add it to "
                              "catalog.seeds in params.yaml and run `tcompress catalog`")


def _check_consistency(p: Params) -> None:
    if p.model.d_model % p.model.n_heads:
        raise ConfigError(f"model.n_heads: {p.model.n_heads} must divide model.d_model ({p.model.d_model})")
    if p.multi30k.src_lang == p.multi30k.tgt_lang:
        raise ConfigError("multi30k.tgt_lang: must differ from multi30k.src_lang")
    if p.data == "files":
        missing = [f.name for f in dataclasses.fields(p.files) if getattr(p.files, f.name) is None]
        if missing:
            raise ConfigError(f"files.{missing[0]}: required when data is 'files' (a path to a text file)")
        for f in dataclasses.fields(p.files):
            path = Path(getattr(p.files, f.name))
            if path.is_absolute() or path.parts[:2] != CORPUS_DIR.parts or ".." in path.parts:
                raise ConfigError(f"files.{f.name}: {path} is outside {CORPUS_DIR}/; copy your corpus there (the "
                                  "prepare stage depends on that folder, so DVC tracks the files' contents)")
    if p.model.share_embeddings and not p.tokenizer.joint:
        raise ConfigError("model.share_embeddings: true needs tokenizer.joint: true (one vocabulary)")
    if p.evaluate.cell_beam_size not in (1, p.evaluate.beam_size):
        raise ConfigError(f"evaluate.cell_beam_size: {p.evaluate.cell_beam_size} must be 1 or evaluate.beam_size "
                          f"({p.evaluate.beam_size}), so every cell has a baseline decoded the same way")


def params_from_dict(raw: dict) -> Params:
    if not isinstance(raw, dict):
        raise ConfigError(f"params: expected a mapping, got {raw!r}")
    if isinstance(raw.get("data"), dict):
        raise ConfigError(f"data: expected one of {', '.join(CORPORA)}, got {raw['data']!r}")
    corpus = check_scalar("data", raw.get("data", "synthetic"), str, field_meta(Params, "data"))
    methods = registry.registered()
    names = [m.name for m in methods]
    unknown = sorted(set(raw) - set(FIXED) - {"catalog"} - set(names))
    if "seed" in unknown:
        raise ConfigError("seed: the key is `seeds` now, one value or a list (`seeds: [1234]`); the first seed's "
                          "baseline and cells keep the usual paths")
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key; allowed keys: {', '.join(FIXED)}, catalog, "
                          f"and one section per method ({', '.join(names)})")
    fixed = {k: v for k, v in raw.items() if k in FIXED}
    selected = fixed.pop("methods", list(names))
    chains = _chains(fixed.pop("chains", None), "chains")
    params = build(Params, fixed, "", corpus)
    selected = coerce("methods", selected, tuple[str, ...], {"choices": tuple(names)}, corpus)
    sections = {m.name: build(m.params, raw.get(m.name), m.name, corpus) for m in methods}
    catalog = _build_catalog(raw.get("catalog"), methods)
    params = dataclasses.replace(params, methods=selected, chains=chains, sections=sections, catalog=catalog,
                                 chain_catalog=_chain_catalog(raw.get("catalog")),
                                 seed_catalog=_seed_catalog(raw.get("catalog"), corpus))
    _check_shared_keys(params, methods)
    _check_consistency(params)
    _check_seeds(params)
    selected_cells(params)  # every grid value valid and in the catalog, every chain too
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
