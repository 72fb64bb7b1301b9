"""The fixed sections of ``params.yaml`` that only the stages after training read (evaluate, teacher,
calibration, sensitivity, deploy), as strict dataclasses (``tcompress.schema`` checks them).

Apart from ``tcompress.config`` because the train stage hashes that module: a setting here reruns
the stages that read it, never a baseline's training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcompress.schema import setting


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
    embeddings: bool = setting(True, doc="the embedding tables too (rounded to nearest per row): a mixed cell "
                                         "then chooses their widths as well")


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
    vmap: bool = setting(False, doc="a vocabulary shortlist in every export (`tcompress export --vmap`): faster "
                         "at small batches, and the output can differ")
    vmap_per_source: int = setting(100, lo=0, doc="the shortlist's candidates per source piece")
    vmap_frequent: int = setting(1000, lo=0, doc="the shortlist's most frequent target pieces, always candidates")
