"""Compressed-model artifacts: the file a user ships, the stored forms it holds, and their bit counts.

A cell's artifact is a safetensors file (``tcompress.safetensors_file``): its tensors are the
model's state dict in the smallest lossless layout of each (``tcompress.compress.packing``: codes
bit-packed, pruned tensors as bitmask + nonzeros), its ``__metadata__`` the layouts, the float
model's recipe, what replaced which module and the cell's facts, as JSON. ``save_compressed``
writes it; ``tcompress.loader`` opens it, or a baseline's torch checkpoint.

A stored form (``QuantizedModule``, ``CodebookModule``, …) is a module that subclasses
``StoredForm`` with its kind name; defining the class registers it, and the class answers for
itself how it is recorded, rebuilt and counted, so a new form edits nothing here. A form lives
with what uses it: here when two or more methods share it, in its method's package otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from tcompress import safetensors_file
from tcompress.checkpoint import model_payload
from tcompress.compress.packing import encode_state
from tcompress.model import EncoderDecoder


FORMAT = "tcompress.packed/1"
# Every stored form by its kind, the key its artifact lists its modules under; filled by the forms'
# own class definitions (``StoredForm.__init_subclass__``).
STORED_FORMS: dict[str, type[StoredForm]] = {}


class StoredForm:
    """What the artifact needs of a module that replaces a float one: a record to rebuild an empty
    shell, and its bits by each of the three counts. Mixed in before ``nn.Module``::

        class CodebookModule(StoredForm, nn.Module, kind="codebook"): ...

    A class given no ``kind`` (a base shared by several forms) is not registered.
    """

    kind: ClassVar[str]
    _ANSWERS = ("describe", "shell", "parameter_bits", "stored_bits", "nonzero_bits")

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is None:
            if getattr(cls, "kind", None) in STORED_FORMS:   # it would be saved as its parent and load as one
                raise TypeError(f"{cls.__name__} subclasses the stored form {cls.kind!r}: give it a kind of its own")
            return
        missing = [name for name in StoredForm._ANSWERS
                   if next(k for k in cls.__mro__ if name in vars(k)) is StoredForm]
        if missing:
            raise TypeError(f"stored form {kind!r} ({cls.__name__}) does not define {', '.join(missing)}")
        if STORED_FORMS.get(kind, cls) is not cls:
            raise ValueError(f"stored form kind {kind!r} is already {STORED_FORMS[kind].__name__}'s")
        cls.kind = kind
        STORED_FORMS[kind] = cls

    def describe(self) -> dict:
        """The JSON the artifact records to rebuild this module's shell before loading its state."""
        raise NotImplementedError

    @classmethod
    def shell(cls, inner: nn.Module, info: dict) -> nn.Module:
        """An empty form around the float module ``inner``, shaped by ``describe()``'s record."""
        raise NotImplementedError

    def parameter_bits(self) -> int:
        """Its codes at their width by the thesis's formula (``parameter_bits``); its float
        parameters are counted by the caller."""
        raise NotImplementedError

    def stored_bits(self) -> int:
        """Its codes as stored, step sizes, zero points and codebooks included (``stored_bits``)."""
        raise NotImplementedError

    def nonzero_bits(self) -> int:
        """Its nonzero codes at their width (``nonzero_bits``)."""
        raise NotImplementedError


def save_compressed(model: EncoderDecoder, path: str | Path, **extra: Any) -> int:
    """Write ``model`` as a packed safetensors artifact; returns its bytes on disk."""
    compression: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        if isinstance(module, StoredForm):
            compression.setdefault(module.kind, {})[name] = module.describe()
    # Kinds in name order: the file's bytes do not depend on which form's module was imported first.
    payload = model_payload(model, compression=dict(sorted(compression.items())), **extra)
    layouts, stored = encode_state(payload.pop("model"))
    metadata = {"format": FORMAT, "layout": json.dumps(layouts, separators=(",", ":")),
                "tcompress": json.dumps(payload, separators=(",", ":"))}
    return safetensors_file.write(path, stored, metadata)


def stored_bits(model: nn.Module) -> int:
    """Bits the model's parameters need as stored: codes at their width, the rest (and every step
    size and zero point) at 32."""
    total = 0
    for module in model.modules():
        if isinstance(module, StoredForm):
            total += module.stored_bits()
        total += 32 * sum(p.numel() for p in module.parameters(recurse=False))
    return total


def parameter_bits(model: nn.Module) -> int:
    """Bits of the model's parameters: integer codes and codebook indices at their width, float
    parameters at 32; step sizes, zero points, codebooks and activation ranges not counted (the
    thesis's formula, which FullyQT's Table 5 ratios follow)."""
    total = 0
    for module in model.modules():
        if isinstance(module, StoredForm):
            total += module.parameter_bits()
        total += 32 * sum(p.numel() for p in module.parameters(recurse=False))
    return total


def nonzero_bits(model: nn.Module) -> int:
    """Bits of the model's nonzero parameters as stored: each nonzero at its code width, float ones at
    32; zeros, step sizes and codebooks free. A chain's formula ratio n_m·32 / this combines the
    thesis's two formulas: pruning's n_m / NNZ and quantization's bit widths."""
    total = 0
    for module in model.modules():
        if isinstance(module, StoredForm):
            total += module.nonzero_bits()
        total += 32 * sum(int(torch.count_nonzero(p)) for p in module.parameters(recurse=False))
    return total
