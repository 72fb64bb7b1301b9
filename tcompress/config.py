"""The fixed sections of ``params.yaml`` as strict dataclasses (``tcompress.schema`` checks them).

The whole file (these sections, the grid keys and one section per registered method) is assembled
and cross-checked by ``tcompress.params``; this module stays free of the method registry, so the
stages that only need a section (train needs ``model`` and ``train``) import little. Each default
is the committed params.yaml's value, its ``synthetic`` entry where it is given per corpus
(tests/test_defaults.py), so leaving a key out of params.yaml changes nothing for the default run.

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
class EvaluateConfig:
    beam_size: int = setting(4, lo=1)
    length_penalty: float = setting(0.6, lo=0.0)
    batch_sentences: int = setting(128, lo=1)
    max_len_a: float = setting(1.5, lo=0.0, doc="output length limit = a * source length + b")
    max_len_b: int = setting(10, lo=0)
    cell_beam_size: int = setting(1, lo=1, doc="decoding of compressed cells: 1 = greedy (the thesis's), "
                                           "or evaluate.beam_size")


@dataclass(frozen=True)
class TeacherConfig:
    """The baseline's translations of the training sources (sequence-level distillation's targets):
    computed once, by the ``teacher`` stage, only when a selected cell asks for them."""
    beam_size: int = setting(4, lo=1, doc="Kim & Rush: the teacher's top beam hypothesis")
    length_penalty: float = setting(0.6, lo=0.0)
    batch_sentences: int = setting(64, lo=1)
    max_len_a: float = setting(1.5, lo=0.0, doc="output length limit = a * source length + b")
    max_len_b: int = setting(10, lo=0)


CALIBRATION_FILE = "stats.safetensors"   # the calibrate stage's statistics, in its output folder


@dataclass(frozen=True)
class CalibrationConfig:
    """The baseline's per-Linear input statistics on calibration batches of the training split, for
    the post-training methods that read them (GPTQ, AWQ, SmoothQuant, AdaRound): computed once, by
    the ``calibrate`` stage, only when a selected cell asks for them."""
    batches: int = setting(8, lo=1, doc="training batches of a seeded shuffle run through the baseline")
    batch_tokens: int = setting(3000, lo=16)


SENSITIVITY_FILE = "sensitivity.json"   # the sensitivity stage's per-Linear losses, in its output folder


@dataclass(frozen=True)
class SensitivityConfig:
    """Each Linear's sensitivity to its bit width: the baseline's validation loss with that Linear
    alone rounded (GPTQ, from the calibration statistics) at each width, the rest float. Computed
    once, by the ``sensitivity`` stage, only when a selected cell asks for it (``mixed``)."""
    bits: tuple[int, ...] = setting((8, 4, 3, 2), doc="the widths measured, widest first: a mixed cell's choices")
    mode: str = setting("asym", choices=("sym", "asym"), doc="codes' mode (one step and zero point per output row)")
    sentences: int = setting(0, lo=0, doc="validation sentences the loss is taken over; 0 = all of them")


DEPLOY_BACKENDS = ("none", "ctranslate2")
DEPLOY_COMPUTE_TYPES = ("auto", "int8_float32", "int8", "float32")


@dataclass(frozen=True)
class DeployConfig:
    """Each integer cell of 8 bits or fewer (and the float32 baseline, for the comparison) exported
    after its evaluation and decoded by the exported model: its BLEU, speed and bytes as a user who
    ships it gets them. Off by default; a dependency only of the cells it exports (their plan files
    hold it) and of the baseline's evaluation."""
    backend: str = setting("none", choices=DEPLOY_BACKENDS, doc="none: no export | ctranslate2: "
                           "`tcompress export --format ctranslate2 --int8`, decoded on the CPU")
    compute_type: str = setting("auto", choices=DEPLOY_COMPUTE_TYPES, doc="the cells' int8 exports: auto: chosen "
                                "per CPU at load (tcompress.translate_ct2.cpu_settings); the baseline runs float32")
    threads: int = setting(0, lo=0, doc="CTranslate2's intra_threads; 0 = the CPUs this process may use")
    beam_size: Optional[int] = setting(None, lo=1, doc="null: the cells' decoding (evaluate.cell_beam_size)")


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
