"""Packed artifacts: bit packing, lossless layouts, the safetensors file, and what loads from it."""

import json
import math
import random

import pytest
import torch

from tcompress import safetensors_file
from tcompress.checkpoint import CheckpointError
from tcompress.compress.artifact import save_compressed
from tcompress.compress.linear_quant import QuantSpec
from tcompress.compress.packing import decode, encode, pack_bits, packed_bytes, unpack_bits
from tcompress.config import ModelConfig
from tcompress.loader import load_model
from tcompress.methods.ptq.post_training import PTQConfig, post_training_quantize
from tcompress.model import Vocab, make_model


@pytest.mark.parametrize("bits", list(range(1, 17)))
def test_unpack_of_pack_is_exact_for_every_width_and_odd_sizes(bits):
    rng = random.Random(bits)
    for n in (0, 1, 7, 8, 9, 63, 1001):
        values = torch.tensor([rng.randrange(2 ** bits) for _ in range(n)], dtype=torch.int64)
        packed = pack_bits(values, bits)
        assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(n * bits / 8) == packed_bytes(n, bits)
        assert torch.equal(unpack_bits(packed, bits, n), values)


def test_pack_layout_is_lsb_first():
    # 3-bit codes 1, 2, 3 -> the bit stream 100 010 110 (each LSB first), filled into bytes from
    # their least significant bit: 0b11010001, then the ninth bit (0) alone in a second byte.
    assert pack_bits(torch.tensor([1, 2, 3]), 3).tolist() == [0b11010001, 0]
    assert pack_bits(torch.tensor([5, 7, 0]), 3).tolist() == [0b00111101, 0]
    with pytest.raises(ValueError, match="values must lie in"):
        pack_bits(torch.tensor([8]), 3)


def _roundtrip(t):
    layout, stored = encode("t", t)
    json.dumps(layout)  # the layout goes into the file's JSON header
    out = decode("t", layout, stored)
    assert out.dtype == t.dtype and out.shape == t.shape
    as_bytes = (lambda x: x) if t.dtype == torch.bool else (lambda x: x.reshape(-1).view(torch.uint8))
    assert torch.equal(as_bytes(out), as_bytes(t))  # bit patterns: -0.0 and NaN included
    return layout, sum(s.numel() * s.element_size() for s in stored.values())


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("mode", ["sym", "asym"])
def test_quantized_codes_take_their_bits(bits, mode):
    spec = QuantSpec(bits, mode)
    codes = torch.randint(spec.qmin, spec.qmax + 1, (33, 17)).to(spec.storage_dtype)
    layout, size = _roundtrip(codes)
    width = (int(codes.max()) - int(codes.min())).bit_length()
    assert width <= bits and size == math.ceil(codes.numel() * width / 8)
    assert layout["kind"] == ("dense" if width == 8 else "bits")  # 8-bit codes are their own bytes


def test_each_tensor_takes_its_smallest_layout():
    dense = torch.randn(64, 64)
    assert _roundtrip(dense) == ({"dtype": "float32", "shape": [64, 64], "kind": "dense"}, 64 * 64 * 4)
    zeros = torch.zeros(16, dtype=torch.int64)  # symmetric zero points: no bytes at all
    assert _roundtrip(zeros)[0]["kind"] == "constant" and _roundtrip(zeros)[1] == 0
    pruned = dense.clone()
    pruned[torch.rand(64, 64) < 0.7] = 0.0
    layout, size = _roundtrip(pruned)
    nnz = int((pruned != 0).sum())
    assert layout["kind"] == "masked" and size == 64 * 64 // 8 + 4 * nnz < 0.4 * 64 * 64 * 4
    barely = dense.clone()
    barely[0, :10] = 0.0  # 10 zeros of 4,096: a bitmask (512 bytes) costs more than it saves
    assert _roundtrip(barely)[0]["kind"] == "dense"


def test_negative_zero_and_special_floats_survive():
    t = torch.tensor([0.0, -0.0, float("inf"), float("nan"), 1e-45, 0.0, 0.0, 0.0] * 8)
    _roundtrip(t)
    _roundtrip(torch.randn(5, 3).to(torch.bfloat16))
    _roundtrip(torch.tensor([True, False, True] * 11))


def test_pruned_quantized_codes_store_mask_and_packed_nonzeros():
    codes = torch.randint(-7, 8, (64, 64), dtype=torch.int8)
    codes[torch.rand(64, 64) < 0.7] = 0
    layout, size = _roundtrip(codes)
    nnz = int((codes != 0).sum())
    assert layout["kind"] == "masked" and layout["values"]["kind"] == "bits"
    assert size == 64 * 64 // 8 + math.ceil(nnz * layout["values"]["bits"] / 8)


def _model():
    torch.manual_seed(0)
    return make_model(ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64), Vocab(101, 101))


@pytest.mark.parametrize("bits,mode", [(8, "sym"), (4, "asym"), (3, "sym"), (2, "asym")])
def test_packed_artifact_loads_the_same_model(tmp_path, bits, mode):
    model = _model()
    post_training_quantize(model, PTQConfig(bits, mode, per_channel=True, activations="none"), "full")
    size = save_compressed(model, tmp_path / "m.safetensors", cell={"cell": "x"})
    assert size == (tmp_path / "m.safetensors").stat().st_size
    loaded, payload = load_model(tmp_path / "m.safetensors")
    assert payload["cell"] == {"cell": "x"}
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
    src = torch.randint(4, 101, (2, 9))
    tgt = torch.randint(4, 101, (2, 5))
    with torch.no_grad():
        assert torch.equal(model.eval()(src, tgt), loaded(src, tgt))


@pytest.mark.parametrize("bits", [4, 8])
def test_artifact_bytes_are_the_codes_bits_plus_float32_scales(tmp_path, bits):
    torch.manual_seed(0)
    model = make_model(ModelConfig(d_model=128, n_layers=1, n_heads=4, d_ff=512), Vocab(2000, 2000))
    with torch.no_grad():  # as after training: no all-zero bias left from initialisation
        for p in model.parameters():
            p.normal_(0, 0.1)
    fp32 = save_compressed(model, tmp_path / "fp32.safetensors")
    n = sum(p.numel() for p in model.parameters())  # the shared embedding table counts once
    _, data_start = safetensors_file.read_header(tmp_path / "fp32.safetensors")
    assert fp32 - data_start == 4 * n
    post_training_quantize(model, PTQConfig(bits, "sym", per_channel=True, activations="none"), "full")
    q = save_compressed(model, tmp_path / "q.safetensors")
    _, data_start = safetensors_file.read_header(tmp_path / "q.safetensors")
    codes = {k: v for k, v in model.state_dict().items() if k.endswith("_q")}
    scales = {k: v for k, v in model.state_dict().items() if k.endswith("_scale")}
    shared = 2  # tgt_embed's codes and scale are src_embed's (one table)
    expected = sum(math.ceil(v.numel() * bits / 8) for k, v in codes.items() if not k.startswith("tgt_embed")) \
        + 4 * sum(v.numel() for k, v in scales.items() if not k.startswith("tgt_embed"))
    assert len([k for k in {**codes, **scales} if k.startswith("tgt_embed")]) == shared
    assert q - data_start == expected  # symmetric zero points are constants: no bytes
    assert fp32 / q > {4: 7.0, 8: 3.7}[bits]


def test_safetensors_library_opens_our_file(tmp_path):
    safetensors = pytest.importorskip("safetensors", reason="pip install safetensors (a test extra)")

    model = _model()
    post_training_quantize(model, PTQConfig(4, "sym", activations="none"), "ff")
    save_compressed(model, tmp_path / "m.safetensors")
    ours, meta = safetensors_file.read(tmp_path / "m.safetensors")
    with safetensors.safe_open(str(tmp_path / "m.safetensors"), "pt") as f:
        assert f.metadata() == meta and set(f.keys()) == set(ours)
        for k in f.keys():
            assert torch.equal(f.get_tensor(k), ours[k])
    layouts = json.loads(meta["layout"])
    assert any(v["kind"] == "bits" and v["bits"] <= 4 for v in layouts.values())


def test_a_view_is_saved_as_its_own_elements(tmp_path):
    base = torch.arange(1_000_000, dtype=torch.float32)
    size = safetensors_file.write(tmp_path / "v.safetensors", {"v": base[:10]}, {})
    assert size < 200
    assert torch.equal(safetensors_file.read(tmp_path / "v.safetensors")[0]["v"], base[:10])


@pytest.mark.parametrize("content,message", [
    (b"", "shorter than its 8-byte header"),
    (b"\xff" * 64, "does not fit the file"),
    ((5).to_bytes(8, "little") + b"{nope", "header is not JSON"),
])
def test_damaged_files_fail_in_one_line(tmp_path, content, message):
    (tmp_path / "bad.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(tmp_path / "bad.safetensors")
    assert "\n" not in str(err.value)


def test_foreign_safetensors_and_truncated_artifacts_are_refused(tmp_path):
    safetensors_file.write(tmp_path / "other.safetensors", {"w": torch.ones(3)}, {"format": "pt"})
    with pytest.raises(CheckpointError, match="not a tcompress artifact"):
        load_model(tmp_path / "other.safetensors")
    save_compressed(_model(), tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="byte range"):
        load_model(tmp_path / "cut.safetensors")


def test_float32_values_that_are_exactly_half_precision_take_two_bytes():
    rounded = torch.randn(40, 40).half().float()
    layout, size = _roundtrip(rounded)
    assert layout == {"dtype": "float32", "shape": [40, 40], "kind": "dense", "stored": "float16"} and size == 2 * 1600
    brain = (torch.randn(40, 40) * 1e6).bfloat16().float() # out of float16's range, exact in bfloat16
    assert _roundtrip(brain)[0]["stored"] == "bfloat16"
    nearly = rounded.clone()
    nearly[3, 3] = torch.nextafter(nearly[3, 3], torch.tensor(9.0))  # one value off the half grid
    assert _roundtrip(nearly)[0] == {"dtype": "float32", "shape": [40, 40], "kind": "dense"}
