"""The fixed sections of ``params.yaml`` that the stages up to training read (data, cleaning,
tokenizer, model, train), and ``runtime``, as strict dataclasses (``tcompress.schema`` checks them).

The whole file (these sections, those of ``tcompress.post_config``, the grid keys and one section
per registered method) is assembled and cross-checked by ``tcompress.params``. The train stage's
dependencies are this module's bytes: a setting of a later stage belongs in ``post_config``, so that
adding one never retrains a baseline. Each default is the committed params.yaml's value, its
``synthetic`` entry where it is given per corpus (tests/test_defaults.py), so leaving a key out of
params.yaml changes nothing for the default run.

``runtime`` holds the settings that do not change results (device, threads, checkpoint frequency);
stages read it with ``load_section`` and no stage depends on it, so changing it reruns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from tcompress.schema import CORPORA, ConfigError, build, setting  # noqa: F401  (ConfigError: re-exported)

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class SyntheticConfig:
    train_size: int = setting(6000, lo=1)
    valid_size: int = setting(200, lo=1)
    test_size: int = setting(500, lo=1)
    seed: int = setting(1)


@dataclass(frozen=True)
class Multi30kConfig:
    local_dir: Optional[str] = setting(None, doc="read the six files from here instead of downloading")
    url: str = setting("https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw")
    src_lang: str = setting("en", choices=("en", "de"))
    tgt_lang: str = setting("de", choices=("en", "de"))


@dataclass(frozen=True)
class FilesConfig:
    train_source: Optional[str] = setting(None)
    train_target: Optional[str] = setting(None)
    valid_source: Optional[str] = setting(None)
    valid_target: Optional[str] = setting(None)
    test_source: Optional[str] = setting(None)
    test_target: Optional[str] = setting(None)


@dataclass(frozen=True)
class CleaningConfig:
    max_len_ratio: float = setting(3.0, lo=1.0)
    max_words: int = setting(100, lo=1)


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = setting(8000, lo=16)
    model_type: str = setting("unigram", choices=("unigram", "bpe", "char", "word"))
    joint: bool = setting(True, doc="one vocabulary for source and target")
    character_coverage: float = setting(1.0, lo=0.9, hi=1.0)


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = setting(128, lo=8)
    n_layers: int = setting(2, lo=1)
    n_heads: int = setting(4, lo=1)
    d_ff: int = setting(512, lo=8)
    dropout: float = setting(0.1, lo=0.0, hi=0.9)
    share_embeddings: bool = setting(True, doc="source and target embeddings share one table (joint vocabulary only)")
    max_positions: int = setting(512, lo=16)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = setting(7, lo=1)
    batch_tokens: int = setting(1000, lo=16, doc="sentences x longest side (padded tokens) per batch")
    lr: float = setting(2e-3, lo=0.0, lo_open=True, doc="peak learning rate, reached after warmup_steps")
    warmup_steps: int = setting(150, lo=1)
    beta1: float = setting(0.9, lo=0.0, hi=1.0)
    beta2: float = setting(0.98, lo=0.0, hi=1.0)
    adam_eps: float = setting(1e-9, lo=0.0, lo_open=True)
    weight_decay: float = setting(0.0, lo=0.0)
    label_smoothing: float = setting(0.1, lo=0.0, hi=0.99)
    clip_norm: float = setting(1.0, lo=0.0, doc="0 disables gradient clipping")
    precision: str = setting("auto", choices=PRECISIONS, doc="auto: bf16 autocast where the device computes "
                             "bf16 natively, fp32 elsewhere (tcompress.precision)")
    val_bleu_sentences: int = setting(0, lo=0, doc="validation sentences decoded for BLEU each epoch; 0 = all")


@dataclass(frozen=True)
class RuntimeConfig:
    """How to run, not what to compute: no stage depends on these."""
    device: str = setting("auto", choices=("auto", "cpu", "cuda"))
    threads: int = setting(0, lo=0, doc="torch CPU threads; 0 = torch's default")
    checkpoint_every: int = setting(200, lo=1, doc="optimizer steps between resumable checkpoints")


def load_section(name: str, cls: type, path: str | Path = "params.yaml") -> Any:
    """One section of params.yaml, checked (per-corpus values resolved for its ``data``)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    corpus = raw.get("data", "synthetic") if isinstance(raw.get("data"), str) else "synthetic"
    return build(cls, raw.get(name), name, corpus)
