"""What a compression method is: one registered ``Method`` object, defined in one place.

A method file in this package (``agp.py``, ``qat.py``, …), or a method package's ``__init__``
(``fullyqt/``, whose other modules hold what that method alone uses), builds a ``Method`` and
passes it to ``register``. The object carries everything the pipeline needs, so the config loader, the grid,
the cell runner, the results and the aggregate stage loop over the registry and never name a
method:

- ``params``: a strict dataclass (fields made with ``tcompress.schema.setting``) for the method's
  section of params.yaml. A subclass of ``FinetuneParams`` marks a method that trains: its cells
  get the training data, a resume file and the baseline's training settings under the method's
  budget, and the grid adds its control cell (``<method>-control``: the same budget, uncompressed).
  Each default is the committed params.yaml's value (its ``synthetic`` entry where it is given per
  corpus; tests/test_defaults.py); a method whose budget differs gives a budget key its own default
  with ``budget(name, default)``.
- ``axes``: the grid axes; a cell is one value per axis, named ``<method>-<v1>-<v2>…`` in axis
  order (``ptq-sym-8-full``). The method's section holds each axis's values under ``axis.key``; a
  shared axis left ``null`` there takes the top-level key of that name (``bits``, ``modes``,
  ``groups``), so ``-S bits=4`` reaches every quantization method.
- ``catalog``: the axis values dvc.yaml has stages for unless params.yaml's ``catalog`` says
  otherwise.
- ``compress(model, cell, params, ctx) -> facts``: turns the baseline (in place) into the cell's
  compressed model; ``facts`` must hold ``compression_ratio``. ``ctx`` gives calibration batches
  and the one training loop (``ctx.finetune``), so no method owns a loop.
- ``check(params, budget)``: cross-key checks, run by the plan stage before any cell.
- ``row_axes``/``row_label``/``series``: how its cells appear in the tables and the plot.
- ``float_output``/``keeps_zeros``: whether a chain (``tcompress.chains``) may continue from its
  model (a pruned float model), and whether it may continue another's (it keeps exact zeros);
  ``continues_any``: it may continue any cell's model, quantized ones included.
- ``needs_teacher(values) -> bool``: whether a cell trains on the baseline's translations of the
  training sources (the ``teacher`` stage computes them when some selected cell does; the cell
  trains on them with ``ctx.finetune(model, hooks, teacher=True)``).
- ``calibrated``: its cells read the baseline's per-Linear input statistics (``ctx.calibration()``:
  Gram matrices, per-channel mean and max of |x|, a sample of input rows), which the ``calibrate``
  stage computes once, with params.yaml's ``calibration`` settings, when some selected cell does.
- ``sensitivity``: its cells read each Linear's validation-loss increase per bit width
  (``ctx.sensitivity()``), which the ``sensitivity`` stage computes once, with params.yaml's
  ``sensitivity`` settings, when some selected cell does.
- ``controlled``: False drops the control cell of a trained method whose grid holds its own
  comparison (distillation's references-only student).
- ``deploy_int8``: its artifact is a float model that ships quantized by CTranslate2 at export
  (int8 by CTranslate2's own rule, 127 / max|row|): with params.yaml's ``deploy`` section on, its
  cells are exported and decoded as the integer cells of ≤ 8 bits are (``tcompress.plan.deploys``;
  distillation's students, smaller float models of their own shapes).
- ``control_start(model, params, ctx) -> model``: where the control's budget starts, when that is not
  the baseline (lottery tickets: the baseline's initial weights, so the control is the dense run of
  the tickets' own recipe); ``control_reads``: the keys of its section it reads besides the budget.
  A control's plan holds the budget (``FinetuneParams``'s keys) and those keys only, so editing a
  pruning schedule reruns the pruned cells, not their control; and controls with equal plans are
  trained once (``tcompress.plan.share_controls``).

This module is torch-free: plan and resolve import the registry; a method's ``compress`` imports
the heavy machinery (``tcompress.compress``) when it runs.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from tcompress.schema import ConfigError, setting


@dataclass(frozen=True)
class Axis:
    name: str                 # the cell's field: "bits", "mode", "group", "schedule"
    key: str                  # the params key listing its values: "bits", "modes", "groups"
    kind: type                # int or str
    doc: str = ""
    check: Callable[[Any], None] | None = None   # raises ValueError with the reason
    shared: bool = False      # null in the method's section: the top-level key of the same name

    def validate(self, where: str, value: Any) -> Any:
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)) or \
                self.kind is str and not isinstance(value, str):
            raise ConfigError(f"{where}: expected {self.kind.__name__}, got {value!r}")
        if self.check is not None:
            try:
                self.check(value)
            except ValueError as err:
                raise ConfigError(f"{where}: {err}") from None
        return value


@dataclass(frozen=True)
class FinetuneParams:
    """The fine-tuning budget of a training-based method; the rest comes from ``train``."""
    epochs: int = setting(2, lo=1)
    train_sentences: int = setting(4000, lo=0, doc="a seeded random subset of the training split; 0 = all of it")
    lr: float = setting(2e-4, lo=0.0, lo_open=True, doc="peak learning rate (inverse-sqrt schedule)")
    warmup_steps: int = setting(50, lo=1)
    from_scratch: bool = setting(False, doc="train a fresh model instead of fine-tuning the baseline")
    keep: str = setting("last", choices=("last", "best"), doc="the model at the end of the budget (every "
                        "schedule finished), or the epoch with the best validation BLEU (a pruning cell may "
                        "then be less sparse than its schedule's end; its ratio is counted on what it keeps)")


def budget(name: str, default: Any) -> Any:
    """``FinetuneParams``'s field ``name`` with a method's own default (its range and doc kept), for a
    method whose budget differs from the shared one."""
    meta = next(f for f in fields(FinetuneParams) if f.name == name).metadata
    return field(default=default, metadata=meta)


CONTROL = "control"


@dataclass(frozen=True)
class Cell:
    """One grid cell: a method and one value per axis, in the method's axis order.

    A trained method also has one **control** cell (``qat-control``): the same fine-tuning budget,
    data subset, learning rate and seed, with no compression, so that a trained cell's ΔBLEU says
    what compression cost rather than what extra fine-tuning gained."""
    method: str
    values: tuple[tuple[str, Any], ...]
    control: bool = False

    @property
    def id(self) -> str:
        return f"{self.method}-{CONTROL}" if self.control else "-".join([self.method, *(str(v) for _, v in self.values)])

    def __getitem__(self, axis: str) -> Any:
        return dict(self.values)[axis]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass(frozen=True)
class Budget:
    """What cross-key checks may need to know about the data: optimizer steps per epoch of a
    trained method's subset (``steps_per_epoch(params)``)."""
    steps_per_epoch: Callable[[Any], int]


def _default_row_label(values: Mapping[str, Any]) -> str:
    return " / ".join(str(v) for v in values.values()) or "all"


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    params: type
    axes: tuple[Axis, ...]
    compress: Callable[..., dict]
    catalog: Mapping[str, tuple] = field(default_factory=dict)
    check: Callable[[Any, Budget], None] | None = None
    row_axes: tuple[str, ...] = ()
    row_label: Callable[[Mapping[str, Any]], str] = _default_row_label
    series: Callable[[Mapping[str, Any]], str] | None = None
    order: int = 100          # position in tables: the thesis's order, new methods after
    float_output: bool = False   # its artifact is a float model a chain may continue (pruning)
    keeps_zeros: bool = True     # it keeps a parent's exact zeros, so it may continue a chain
    continues_any: bool = False  # it may continue any cell's model, coded or not (node pruning reshapes, and
                                 # its compress returns the whole chain's ratio)
    control_start: Callable[..., Any] | None = None   # the control's starting model; None: the baseline
    control_reads: tuple[str, ...] = ()   # section keys control_start reads (the budget's are always read)
    needs_teacher: Callable[[Mapping[str, Any]], bool] | None = None   # a cell trains on the teacher's outputs
    calibrated: bool = False  # its cells read the calibrate stage's per-Linear statistics (ctx.calibration())
    sensitivity: bool = False  # its cells read the sensitivity stage's per-Linear losses (ctx.sensitivity())
    controlled: bool = True   # a trained method gets a control cell; False where its grid holds its own
                              # comparison (distillation: the same student trained on the references)
    deploy_int8: bool = False  # a float model that ships quantized by CTranslate2 at export (the deploy section)

    @property
    def trains(self) -> bool:
        return issubclass(self.params, FinetuneParams)

    @property
    def control_keys(self) -> frozenset[str]:
        """The section keys a control cell reads: the budget, and what ``control_start`` reads."""
        return frozenset(f.name for f in fields(FinetuneParams)) | set(self.control_reads)

    def uses_teacher(self, values: Mapping[str, Any]) -> bool:
        return self.needs_teacher is not None and bool(self.needs_teacher(values))

    def axis(self, name: str) -> Axis:
        return next(a for a in self.axes if a.name == name)

    def series_of(self, values: Mapping[str, Any]) -> str:
        return self.series(values) if self.series else self.name


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    if not method.name.isidentifier() or "-" in method.name:
        raise ValueError(f"method name {method.name!r} must be an identifier (it names a params section)")
    if method.name in _REGISTRY and _REGISTRY[method.name] is not method:
        raise ValueError(f"a method named {method.name!r} is already registered")
    keys = [a.key for a in method.axes]
    if len(set(keys)) != len(keys) or len({a.name for a in method.axes}) != len(keys):
        raise ValueError(f"method {method.name!r}: axis names and keys must be unique")
    _REGISTRY[method.name] = method
    return method


def load_all() -> None:
    """Import every module of this package (a method package's ``__init__``), so that every method has
    registered itself."""
    import tcompress.methods as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "base":
            importlib.import_module(f"{package.__name__}.{info.name}")


def registered() -> list[Method]:
    """Every registered method, in table order."""
    load_all()
    return sorted(_REGISTRY.values(), key=lambda m: (m.order, m.name))


def get(name: str) -> Method:
    load_all()
    if name not in _REGISTRY:
        known = ", ".join(m.name for m in registered())
        raise ConfigError(f"unknown method {name!r}; registered methods: {known}")
    return _REGISTRY[name]


# ------------------------------------------------------------------ axes several methods share

def one_of(choices: tuple[str, ...]) -> Callable[[str], None]:
    """An axis check: the value must be one of ``choices`` (``check.allowed`` says so in words, for
    the methods page)."""
    def check(value: str) -> None:
        if value not in choices:
            raise ValueError(f"{value!r} is not allowed; expected {check.allowed}")
    check.allowed = "one of " + ", ".join(choices)
    return check


def int_range(lo: int, hi: int | None = None, noun: str = "an int") -> Callable[[int], None]:
    """An axis check: ``lo <= value`` (and ``<= hi``); ``check.allowed`` says so in words."""
    expected = f"{noun} >= {lo}" if hi is None else f"{noun} from {lo} to {hi}"

    def check(value: int) -> None:
        if value < lo or hi is not None and value > hi:
            raise ValueError(f"{value} is out of range; expected {expected}")
    check.allowed = expected
    return check


_check_bits = int_range(2, 16)
_check_low_bits = int_range(1, 8)


def low_bits_axis(doc: str) -> Axis:
    """The ``bits`` axis of methods whose codes are 1 to 8 bits wide (weight sharing, QSGD)."""
    return Axis("bits", "bits", int, doc, _check_low_bits, shared=True)


def _check_mode(mode: str) -> None:
    from tcompress.compress import MODES  # linear_quant's, without importing torch

    if mode not in MODES:
        raise ValueError(f"{mode!r} is not allowed; expected one of {', '.join(MODES)}")


def _check_group(spec: str) -> None:
    from tcompress.layer_groups import parse_group

    parse_group(spec)


BITS = Axis("bits", "bits", int, "bit width of the integer codes", _check_bits, shared=True)
MODE = Axis("mode", "modes", str, "sym: zero point 0 | asym: unsigned range [min, max]", _check_mode, shared=True)
GROUP = Axis("group", "groups", str, "layer group: ff, att, emb, gen, their unions with '+', or full",
             _check_group, shared=True)


def _check_linear_group(spec: str) -> None:
    from tcompress.layer_groups import parse_group

    if set(parse_group(spec)) == {"emb"}:
        raise ValueError("emb holds no Linear; expected att, ff, gen, their unions with '+', or full")


# The group axis of the methods that quantize Linears only (the post-training methods that read
# calibration statistics).
LINEAR_GROUP = Axis("group", "groups", str, "layer group whose Linears are quantized: att, ff, gen, their unions "
                    "with '+', or full (every Linear; embeddings and LayerNorms stay float)",
                    _check_linear_group, shared=True)
QUANT_GROUPS = ("ff", "att", "emb", "gen", "ff+emb+gen", "full")     # the thesis's Tables 4.1 and 4.5
PRUNING_GROUPS = ("ff", "att", "emb", "gen", "ff+att", "full")       # its Table 4.3
