"""FullyQT (Prato et al., seed 001 §3): the inputs of every matrix multiplication quantized.

The model's modules are wrapped in place, one wrapper per paper concept, each computing what the
module computed with quantization points (``ActQuant``) where §3.2 puts them:

- ``FQPositional``: the positional encodings (as weights) and the sum of input embeddings and
  positional encodings (encoder and decoder);
- ``FQAttention``: the projected Q, K, V (the scaled dot-product's inputs), the softmax numerator,
  its denominator (summed from the *unquantized* numerator, then both quantized), the softmax output
  and the scaled dot-product attention's output;
- ``FQFeedForward``: the ReLU output (x_min fixed at 0) and the feed-forward output;
- ``FQLayerNorm``: the numerator x − μ, the denominator √(σ² + ε) (its gradient is never zeroed),
  their quotient and the output; γ is quantized as a weight.

Weights (Linear, Embedding, LayerNorm γ; not biases: they join the int32 accumulator) are quantized
from their own min/max per output row ("bucketing", §3.3) by ``FakeQuantModule`` and exported to
``QuantizedModule`` codes. One deviation: weight codes use an integer zero point (Jacob et al.'s
nudged range), so the int8 path can run them; activations use the paper's affine map with a float
x_min (eq. 1–3). Activation ranges are an EMA of min/max (momentum 0.9) over the non-padding positions
(§3.4), per feature for the activations §3.3 buckets, and frozen after training: the artifact holds
them as buffers. ``naive`` is the paper's "default approach" (Table 2): no bucketing, padding
counted, no ReLU floor, the LayerNorm denominator's gradient clamped like any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tcompress.compress.artifact import StoredForm
from tcompress.compress.linear_quant import QuantSpec, fake_quantize, quantize_tensor
from tcompress.compress.qat import FakeQuantModule
from tcompress.compress.walker import replace_module, unwrapped
from tcompress.model import PAD, Embeddings, MultiHeadedAttention, PositionalEncoding, PositionwiseFeedForward

# The quantized activations of §3.2, in forward order; "weights" and "pos" are the parameters.
ACTIVATIONS = ("emb_pos", "qkv", "softmax_num", "softmax_den", "softmax_out", "att_out", "relu_out", "ff_out",
               "ln_num", "ln_den", "ln_quot", "ln_out")
POINTS = ("weights", "pos", *ACTIVATIONS)
BUCKETED = frozenset({"emb_pos", "qkv", "att_out", "ff_out", "ln_num", "ln_quot", "ln_out"})  # §3.3's list


@dataclass(frozen=True)
class FullyQTSpec:
    bits: int = 8
    points: frozenset = frozenset(POINTS)
    bucketing: bool = True      # per-row weights and per-feature ranges for BUCKETED activations
    naive: bool = False         # the "default approach": no bucketing or zero handling, every gradient clamped
    momentum: float = 0.9

    def as_dict(self) -> dict:
        return {"bits": self.bits, "points": sorted(self.points), "bucketing": self.bucketing,
                "naive": self.naive, "momentum": self.momentum}

    @classmethod
    def from_dict(cls, d: dict) -> "FullyQTSpec":
        return cls(d["bits"], frozenset(d["points"]), d["bucketing"], d["naive"], d["momentum"])


class PadMasks:
    """Which positions are real tokens, per stream: (B, T) booleans, set as the embeddings run."""

    def __init__(self):
        self.last = self.src = self.tgt = None


class _RangeQuantize(torch.autograd.Function):
    """Eq. (3): round((clamp(x) − x_min)/s)·s + x_min, in float32, with the straight-through gradient:
    zero where the clamp cut x, or (``keep_grad``, the LayerNorm denominator) never zeroed. One
    function instead of an autograd graph of elementwise ops: fewer passes over the activation."""

    @staticmethod
    def forward(ctx, x, lo, hi, step, keep_grad):
        q = torch.clamp(x.float(), lo, hi)
        q.sub_(lo).div_(step).round_().mul_(step).add_(lo)
        ctx.keep_grad = keep_grad
        if not keep_grad:
            ctx.save_for_backward(x, lo, hi)
        return q.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        if ctx.keep_grad:
            return grad, None, None, None, None
        x, lo, hi = ctx.saved_tensors
        return grad.masked_fill((x < lo) | (x > hi), 0.0), None, None, None, None


class ActQuant(nn.Module):
    """One quantized activation: EMA range over valid positions, eq. (3) with STE."""

    def __init__(self, point: str, spec: FullyQTSpec, features: int):
        super().__init__()
        self.point, self.levels, self.momentum = point, 2 ** spec.bits - 1, spec.momentum
        self.bucketed = spec.bucketing and not spec.naive and point in BUCKETED
        self.relu_floor = point == "relu_out" and not spec.naive
        self.keep_grad = point == "ln_den" and not spec.naive
        self.exclude_padding = not spec.naive
        shape = (features,) if self.bucketed else ()
        self.register_buffer("lo", torch.zeros(shape))
        self.register_buffer("hi", torch.zeros(shape))
        self.register_buffer("seen", torch.zeros((), dtype=torch.bool))
        self.used = True          # False: a point the spec leaves out (it never quantizes)
        self.enabled = True       # off before the start step (qat.DelayedStart, as for the weights)
        self.calibrating = False  # PTQ: track ranges outside training mode
        self.trace: list | None = None   # tests: a list to record (name, shape) of each quantization

    @torch.no_grad()
    def observe(self, x: torch.Tensor, valid: torch.Tensor | None) -> None:
        x = x.detach().float()
        width = x.shape[-1]
        if valid is not None and self.exclude_padding:
            if valid.shape[-1] == 1:   # whole rows are padding: keep the real rows only (one copy)
                rows = valid.expand(*x.shape[:-1], 1).reshape(-1).nonzero().squeeze(1)
                x = x.reshape(-1, width).index_select(0, rows)
            else:                      # a (…, Tq, Tk) mask: padding out of min and max by masked fills
                invalid = ~valid
                lo, hi = x.masked_fill(invalid, float("inf")), x.masked_fill(invalid, float("-inf"))
                self._update(lo.reshape(-1, width).amin(0) if self.bucketed else lo.amin(),
                             hi.reshape(-1, width).amax(0) if self.bucketed else hi.amax())
                return
        if x.numel() == 0:
            return
        lo, hi = torch.aminmax(x.reshape(-1, width), dim=0) if self.bucketed else torch.aminmax(x)
        self._update(lo, hi)

    def _update(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        if not bool(torch.isfinite(lo).all()):        # no real position in this batch
            return
        if self.relu_floor:
            lo = torch.zeros_like(lo)
        m = self.momentum if bool(self.seen) else 0.0
        self.lo.copy_(m * self.lo + (1 - m) * lo)
        self.hi.copy_(m * self.hi + (1 - m) * hi)
        self.seen.fill_(True)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        # In float32 whatever the autocast dtype: bf16's 8-bit mantissa would misround the codes.
        step = ((self.hi - self.lo) / self.levels).clamp(min=torch.finfo(torch.float32).tiny)
        return _RangeQuantize.apply(x, self.lo, self.hi, step, self.keep_grad)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if not (self.used and self.enabled):
            return x
        if self.training or self.calibrating:
            self.observe(x, valid)
        if not bool(self.seen):
            return x
        if self.trace is not None:
            self.trace.append(tuple(x.shape))
        return self.quantize(x)

    def extra_repr(self) -> str:
        return f"{self.point}, bucketed={self.bucketed}, relu_floor={self.relu_floor}, keep_grad={self.keep_grad}"


def _points(spec: FullyQTSpec, d: int, names: tuple[str, ...]) -> nn.ModuleDict:
    """An ActQuant per name (``qkv_q`` is point ``qkv``); a point the spec leaves out stays inactive."""
    out = nn.ModuleDict()
    for name in names:
        point = name.rsplit("_", 1)[0] if name.startswith("qkv_") else name
        out[name] = ActQuant(point, spec, d)
        out[name].used = point in spec.points
    return out


def _expand(valid: torch.Tensor | None) -> torch.Tensor | None:
    return None if valid is None else valid[..., None]            # (B, T) -> (B, T, 1)


def _match(valid: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """The stream's token mask when it is this tensor's (B, T) (not in beam search's reshaped batches)."""
    return valid if valid is not None and valid.shape == x.shape[:2] else None


class _FQModule(StoredForm, nn.Module):
    """What the artifact needs of a wrapper: a record to rebuild an empty one, and its bit count."""

    def describe(self) -> dict:
        return {"spec": self.spec.as_dict(), **self.streams}

    @classmethod
    def shell(cls, inner: nn.Module, info: dict) -> "_FQModule":
        streams = {k: v for k, v in info.items() if k != "spec"}
        return cls(inner, FullyQTSpec.from_dict(info["spec"]), PadMasks(), **streams)

    def parameter_bits(self) -> int:
        return 0   # activation ranges are not parameters; the wrapped modules count theirs

    def stored_bits(self) -> int:
        """The frozen ranges: two floats per range."""
        return sum(32 * (q.lo.numel() + q.hi.numel()) for q in self.points.values() if q.used)

    def nonzero_bits(self) -> int:
        return 0


class FQPositional(_FQModule, kind="fq_positional"):
    def __init__(self, inner: PositionalEncoding, spec: FullyQTSpec, masks: PadMasks, stream: str):
        super().__init__()
        self.inner, self.spec, self.masks, self.streams = inner, spec, masks, {"stream": stream}
        d = inner.pe.shape[1]
        self.points = _points(spec, d, ("emb_pos",))
        pe = inner.pe
        if "pos" in spec.points:   # fixed sinusoids, quantized once like a weight (per position row)
            t = quantize_tensor(pe, QuantSpec(spec.bits, "asym", spec.bucketing and not spec.naive))
            pe = fake_quantize(pe, t["scale"], t["zero_point"], QuantSpec(spec.bits, "asym"))
        self.register_buffer("pe_q", pe, persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if offset + x.size(1) > self.pe_q.size(0):
            raise ValueError(f"sequence of {offset + x.size(1)} positions exceeds model.max_positions={self.pe_q.size(0)}")
        valid = _match(self.masks.last, x)
        setattr(self.masks, self.streams["stream"], valid)
        pe = self.pe_q if self.points["emb_pos"].enabled else self.inner.pe    # float before the start step
        s = self.points["emb_pos"](x + pe[offset: offset + x.size(1)], _expand(valid))
        return self.inner.dropout(s)                    # quantization before dropout (§3.4)


class FQAttention(_FQModule, kind="fq_attention"):
    def __init__(self, inner: MultiHeadedAttention, spec: FullyQTSpec, masks: PadMasks, q_stream: str,
                 kv_stream: str):
        super().__init__()
        self.inner, self.spec, self.masks = inner, spec, masks
        self.streams = {"q_stream": q_stream, "kv_stream": kv_stream}
        d = inner.n_heads * inner.d_k
        self.points = _points(spec, d, ("qkv_q", "qkv_k", "qkv_v", "softmax_num", "softmax_den", "softmax_out",
                                        "att_out"))

    def _valid(self, stream: str, x: torch.Tensor) -> torch.Tensor | None:
        return _match(getattr(self.masks, self.streams[stream]), x)

    def project_kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._key(x), self._value(x)

    def _key(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner._split(self.points["qkv_k"](self.inner.k_proj(x), _expand(self._valid("kv_stream", x))))

    def _value(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner._split(self.points["qkv_v"](self.inner.v_proj(x), _expand(self._valid("kv_stream", x))))

    def forward(self, query, key, value_src, mask, kv=None):
        q_valid = self._valid("q_stream", query)
        q = self.inner._split(self.points["qkv_q"](self.inner.q_proj(query), _expand(q_valid)))
        k, v = kv if kv is not None else (self._key(key), self._value(value_src))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.inner.d_k)             # (B, H, Tq, Tk)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        num = torch.exp(scores - scores.amax(-1, keepdim=True))
        den = num.sum(-1, keepdim=True)                                           # from the unquantized numerator
        rows = None if q_valid is None else q_valid[:, None, :, None]            # (B, 1, Tq, 1)
        cells = mask if rows is None else (rows if mask is None else rows & mask)
        num = self.points["softmax_num"](num, cells)
        p = self.points["softmax_out"](num / self.points["softmax_den"](den, rows), cells)
        if mask is not None:   # a masked key's 0 may not be on the range's grid: keep it out (§3.4)
            p = p.masked_fill(~mask, 0.0)
        p = F.dropout(p, self.inner.dropout, self.training)
        out = p @ v                                                               # (B, H, Tq, d_k)
        b, _, t, _ = out.shape
        out = out.transpose(1, 2).reshape(b, t, -1)                               # -> (B, Tq, D)
        return self.inner.out_proj(self.points["att_out"](out, _expand(q_valid)))


class FQFeedForward(_FQModule, kind="fq_feedforward"):
    def __init__(self, inner: PositionwiseFeedForward, spec: FullyQTSpec, masks: PadMasks, stream: str):
        super().__init__()
        self.inner, self.spec, self.masks, self.streams = inner, spec, masks, {"stream": stream}
        self.points = _points(spec, unwrapped(inner.w_2, nn.Linear).out_features, ("relu_out", "ff_out"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        valid = _expand(_match(getattr(self.masks, self.streams["stream"]), x))
        h = self.points["relu_out"](F.relu(self.inner.w_1(x)), valid)
        return self.points["ff_out"](self.inner.w_2(self.inner.dropout(h)), valid)


class FQLayerNorm(_FQModule, kind="fq_layernorm"):
    def __init__(self, inner: nn.Module, spec: FullyQTSpec, masks: PadMasks, stream: str):
        super().__init__()
        self.inner, self.spec, self.masks, self.streams = inner, spec, masks, {"stream": stream}
        self.points = _points(spec, unwrapped(inner, nn.LayerNorm).normalized_shape[0], ("ln_num", "ln_den", "ln_quot", "ln_out"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        valid = _expand(_match(getattr(self.masks, self.streams["stream"]), x))
        centered = x - x.mean(-1, keepdim=True)
        num = self.points["ln_num"](centered, valid)
        den = self.points["ln_den"](torch.sqrt(centered.pow(2).mean(-1, keepdim=True) + unwrapped(self.inner, nn.LayerNorm).eps),
                                    valid)
        quot = self.points["ln_quot"](num / den, valid)
        gamma, beta = _ln_params(self.inner)
        return self.points["ln_out"](quot * gamma + beta, valid)


def _ln_params(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """γ and β as the forward uses them: fake-quantized in training, dequantized once exported."""
    ln = unwrapped(module, nn.LayerNorm)
    gamma = module._weights()["weight"] if isinstance(module, FakeQuantModule) and module.enabled else ln.weight
    return gamma, ln.bias


def _stream(name: str) -> str:
    return "tgt" if name.startswith(("decoder", "tgt_")) else "src"


def fully_quantize(model: nn.Module, spec: FullyQTSpec) -> tuple[list[ActQuant], list[FakeQuantModule]]:
    """Wrap ``model`` in place; returns its activation quantizers and weight wrappers."""
    masks = PadMasks()
    weights = []
    if "weights" in spec.points:
        per_row = spec.bucketing and not spec.naive
        for _, module in list(model.named_modules()):   # a shared module is listed once
            if isinstance(module, (nn.Linear, nn.Embedding, nn.LayerNorm)):
                w_spec = QuantSpec(spec.bits, "asym", per_row and not isinstance(module, nn.LayerNorm))
                wrapper = FakeQuantModule(module, w_spec, (), spec.momentum, params=("weight",))
                replace_module(model, module, wrapper)
                weights.append(wrapper)
    wrapped = {id(w.inner) for w in weights}
    for name, module in list(model.named_modules()):
        if id(module) in wrapped:     # a LayerNorm inside its weight wrapper: the wrapper is wrapped
            continue
        if isinstance(module, PositionalEncoding):
            wrapper = FQPositional(module, spec, masks, _stream(name))
        elif isinstance(module, MultiHeadedAttention):
            wrapper = FQAttention(module, spec, masks, _stream(name), "src" if name.endswith("src_attn") else _stream(name))
        elif isinstance(module, PositionwiseFeedForward):
            wrapper = FQFeedForward(module, spec, masks, _stream(name))
        elif isinstance(module, nn.LayerNorm) or isinstance(module, FakeQuantModule) and \
                isinstance(module.inner, nn.LayerNorm):
            wrapper = FQLayerNorm(module, spec, masks, _stream(name))
        else:
            continue
        replace_module(model, module, wrapper)
    for module in model.modules():   # the token mask of the embeddings the next positional module uses
        if isinstance(module, Embeddings):
            module.register_forward_pre_hook(lambda _m, args: setattr(masks, "last", args[0] != PAD))
    return [m for m in model.modules() if isinstance(m, ActQuant)], weights


def set_active(quantizers: list[ActQuant], weights: list[FakeQuantModule], on: bool) -> None:
    """Quantization on or off by hand (training switches it with ``qat.DelayedStart``)."""
    for module in (*quantizers, *weights):
        module.enabled = on


def freeze(model: nn.Module) -> int:
    """End of training: weights to integer codes; activation ranges stay as tracked. Raises when a
    quantized point never saw data (a start step beyond the budget)."""
    from tcompress.compress.qat import export_quantized

    unseen = [q.point for q in model.modules() if isinstance(q, ActQuant) and q.used and not bool(q.seen)]
    if unseen:
        raise ValueError(f"FullyQT: {len(unseen)} quantization points never saw data ({sorted(set(unseen))}); "
                         "is start_step beyond the training budget?")
    for q in model.modules():
        if isinstance(q, ActQuant):
            q.calibrating, q.enabled = False, True
    return export_quantized(model)
