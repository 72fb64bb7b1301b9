"""Stored forms register themselves and count their own bits: a new form edits no central table.

A toy form defined here (a Linear's weight as its signs and one scale, one bit per weight) goes
through the same save, the same loader and the same bit counts as the project's own forms.
"""

import pytest
import torch
from torch import nn

from tcompress.checkpoint import CheckpointError
from tcompress.compress.artifact import (
    STORED_FORMS, StoredForm, nonzero_bits, parameter_bits, save_compressed, stored_bits,
)
from tcompress.compress.walker import replace_module
from tcompress.config import ModelConfig
from tcompress.loader import load_model, stored_forms
from tcompress.model import Vocab, make_model

KIND = "toy_sign"


@pytest.fixture
def sign_form():
    class SignLinear(StoredForm, nn.Module, kind=KIND):
        """A Linear's weight as sign codes (int8 ±1) times one float scale: 1 bit per weight."""

        def __init__(self, inner: nn.Linear):
            super().__init__()
            self.register_buffer("weight_sign", torch.ones(inner.weight.shape, dtype=torch.int8))
            self.register_buffer("weight_scale", torch.ones(()))
            weight = inner.weight
            del inner._parameters["weight"]   # as the project's forms do: a derived, unsaved buffer
            inner.register_buffer("weight", weight.detach().clone(), persistent=False)
            self.inner = inner
            self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh())

        @classmethod
        def from_float(cls, inner: nn.Linear) -> "SignLinear":
            w = inner.weight.detach()
            module = cls(inner)
            module.weight_sign.copy_(torch.where(w < 0, -1, 1))
            module.weight_scale.copy_(w.abs().mean())
            module.refresh()
            return module

        def refresh(self) -> None:
            self.inner.weight = self.weight_sign.float() * self.weight_scale

        def forward(self, x):
            return self.inner(x)

        def describe(self) -> dict:
            return {}

        @classmethod
        def shell(cls, inner, info):
            return cls(inner)

        def parameter_bits(self) -> int:
            return self.weight_sign.numel()

        def stored_bits(self) -> int:
            return self.weight_sign.numel() + 32

        def nonzero_bits(self) -> int:
            return self.weight_sign.numel()   # a sign code is never zero

    yield SignLinear
    STORED_FORMS.pop(KIND, None)


def tiny_model():
    torch.manual_seed(0)
    return make_model(ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0), Vocab(40, 40)).eval()


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randint(4, 40, (2, 6), generator=g), torch.randint(4, 40, (2, 5), generator=g)


def test_a_form_defined_anywhere_registers_itself_saves_loads_and_counts_its_bits(sign_form, tmp_path):
    assert stored_forms()[KIND] is sign_form and sign_form.kind == KIND
    model = tiny_model()
    floats = sum(p.numel() for p in model.parameters())
    linear = model.encoder.layers[0].feed_forward.w_1
    n = linear.weight.numel()
    replace_module(model, linear, sign_form.from_float(linear))

    # The project's counts ask the form for its codes and count the rest at 32 bits.
    assert parameter_bits(model) == 32 * (floats - n) + n
    assert stored_bits(model) == 32 * (floats - n) + n + 32
    assert nonzero_bits(model) == 32 * sum(int(torch.count_nonzero(p)) for p in model.parameters()) + n

    save_compressed(model, tmp_path / "m.safetensors")
    loaded, payload = load_model(tmp_path / "m.safetensors")
    assert payload["compression"] == {KIND: {"encoder.layers.0.feed_forward.w_1": {}}}
    assert type(loaded.encoder.layers[0].feed_forward.w_1) is sign_form
    assert torch.equal(loaded(*batch()), model(*batch()))
    assert stored_bits(loaded) == stored_bits(model) and parameter_bits(loaded) == parameter_bits(model)


def test_the_loader_knows_every_form_of_the_package_without_being_told():
    assert {"quantized", "codebook", "pq", "ffn_nodes", "fq_positional", "fq_attention", "fq_feedforward",
            "fq_layernorm"} <= set(stored_forms())


def test_a_file_with_a_form_this_version_lacks_names_the_kinds_it_reads(sign_form, tmp_path):
    model = tiny_model()
    linear = model.decoder.layers[0].feed_forward.w_2
    replace_module(model, linear, sign_form.from_float(linear))
    save_compressed(model, tmp_path / "m.safetensors")
    STORED_FORMS.pop(KIND)
    with pytest.raises(CheckpointError, match=f"unknown kind \\['{KIND}'\\].*quantized"):
        load_model(tmp_path / "m.safetensors")


def test_a_form_must_answer_for_itself_and_own_its_kind(sign_form):
    with pytest.raises(TypeError, match="does not define parameter_bits, stored_bits, nonzero_bits"):
        class Mute(StoredForm, nn.Module, kind="toy_mute"):
            def describe(self):
                return {}

            @classmethod
            def shell(cls, inner, info):
                return cls()
    with pytest.raises(ValueError, match="already SignLinear's"):
        class Twin(sign_form, kind=KIND):
            pass
    with pytest.raises(TypeError, match="give it a kind of its own"):
        class Child(sign_form):
            pass
    assert "toy_mute" not in STORED_FORMS and STORED_FORMS[KIND] is sign_form
