"""The Transformer of Vaswani et al. in the shape of the annotated-transformer the thesis used.

One small class per paper concept. Module names are part of the contract: the layer groups
(``tcompress.layer_groups``) select modules by these names, so renaming a submodule changes which
weights a compression cell touches.

Layers are pre-norm (``x + dropout(sublayer(norm(x)))`` with a final LayerNorm), as in the annotated
transformer, because it trains stably at the higher learning rates a short CPU budget needs.
Decoder layers take an optional ``cache`` so decoding does one new position per step instead of
re-running the whole prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tcompress.config import ModelConfig

PAD, UNK, BOS, EOS = 0, 1, 2, 3


class Embeddings(nn.Module):
    """Token lookup scaled by sqrt(d_model), so it is on the scale of the positional encoding."""

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        self.lut = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.d_model = d_model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.lut(tokens) * math.sqrt(self.d_model)


class PositionalEncoding(nn.Module):
    """Fixed sinusoids; ``offset`` lets incremental decoding encode position t of a longer output."""

    def __init__(self, d_model: int, dropout: float, max_len: int):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if offset + x.size(1) > self.pe.size(0):
            raise ValueError(f"sequence of {offset + x.size(1)} positions exceeds model.max_positions={self.pe.size(0)}")
        return self.dropout(x + self.pe[offset: offset + x.size(1)])


class MultiHeadedAttention(nn.Module):
    """Scaled dot-product attention over ``n_heads`` heads with separate q/k/v/out projections."""

    def __init__(self, n_heads: int, d_model: int, dropout: float):
        super().__init__()
        self.n_heads, self.d_k = n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_k).transpose(1, 2)  # (B, T, D) -> (B, H, T, d_k)

    def project_kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._split(self.k_proj(x)), self._split(self.v_proj(x))

    def forward(self, query: torch.Tensor, key: torch.Tensor | None, value_src: torch.Tensor | None,
                mask: torch.Tensor | None, kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``mask`` is boolean, True where attention is allowed, broadcastable to (B, H, Tq, Tk).
        ``kv`` gives already projected keys/values (B, H, Tk, d_k) instead of ``key``."""
        q = self._split(self.q_proj(query))
        k, v = kv if kv is not None else (self._split(self.k_proj(key)), self._split(self.v_proj(value_src)))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.n_heads * self.d_k))  # (B, H, T, d_k) -> (B, T, D)


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = W2 · dropout(ReLU(W1 · x))."""

    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(F.relu(self.w_1(x))))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadedAttention(n_heads, d_model, dropout)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, dropout)
        self.norm_1, self.norm_2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        h = self.norm_1(x)
        x = x + self.dropout(self.self_attn(h, h, h, src_mask))
        return x + self.dropout(self.feed_forward(self.norm_2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadedAttention(n_heads, d_model, dropout)
        self.src_attn = MultiHeadedAttention(n_heads, d_model, dropout)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, dropout)
        self.norm_1, self.norm_2, self.norm_3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor,
                tgt_mask: torch.Tensor | None, cache: dict | None = None) -> torch.Tensor:
        h = self.norm_1(x)
        if cache is None:
            x = x + self.dropout(self.self_attn(h, h, h, tgt_mask))
            mem_kv = None
        else:
            # Incremental step: x holds only the newest position(s); earlier keys/values are reused.
            k, v = self.self_attn.project_kv(h)
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
            x = x + self.dropout(self.self_attn(h, None, None, tgt_mask, kv=(k, v)))
            if "mem_k" not in cache:
                cache["mem_k"], cache["mem_v"] = self.src_attn.project_kv(memory)
            mem_kv = (cache["mem_k"], cache["mem_v"])
        h = self.norm_2(x)
        x = x + self.dropout(self.src_attn(h, memory, memory, src_mask, kv=mem_kv))
        return x + self.dropout(self.feed_forward(self.norm_3(x)))


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout)
                                    for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, src_mask)
        return self.norm(x)


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout)
                                    for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x, memory, src_mask, tgt_mask, caches: list[dict] | None = None):
        for i, layer in enumerate(self.layers):
            x = layer(x, memory, src_mask, tgt_mask, None if caches is None else caches[i])
        return self.norm(x)


class Generator(nn.Module):
    """Projects decoder states to vocabulary logits (log-softmax is left to the loss and the search)."""

    def __init__(self, d_model: int, vocab_size: int):
        super().__init__()
        self.proj = nn.Linear(d_model, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


@dataclass(frozen=True)
class Vocab:
    src_size: int
    tgt_size: int


class EncoderDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab: Vocab):
        super().__init__()
        self.cfg, self.vocab = cfg, vocab
        self.src_embed = Embeddings(vocab.src_size, cfg.d_model)
        # A shared table is the same module under both names; named_modules() lists it once.
        self.tgt_embed = self.src_embed if cfg.share_embeddings else Embeddings(vocab.tgt_size, cfg.d_model)
        self.src_pos = PositionalEncoding(cfg.d_model, cfg.dropout, cfg.max_positions)
        self.tgt_pos = PositionalEncoding(cfg.d_model, cfg.dropout, cfg.max_positions)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.generator = Generator(cfg.d_model, vocab.tgt_size)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        src_mask = (src != PAD)[:, None, None, :]  # (B, S) -> (B, 1, 1, S)
        return self.encoder(self.src_pos(self.src_embed(src)), src_mask), src_mask

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        t = tgt_in.size(1)
        causal = torch.ones(t, t, dtype=torch.bool, device=tgt_in.device).tril()
        tgt_mask = causal[None, None] & (tgt_in != PAD)[:, None, None, :]  # (B, 1, T, T)
        # A fully masked row (padding query at position 0 never happens: BOS is first) would give NaN.
        return self.decoder(self.tgt_pos(self.tgt_embed(tgt_in)), memory, src_mask, tgt_mask)

    def decode_step(self, token: torch.Tensor, step: int, memory: torch.Tensor, src_mask: torch.Tensor,
                    caches: list[dict]) -> torch.Tensor:
        """Logits for the next token after ``token`` (B, 1) at position ``step``; fills ``caches``."""
        x = self.tgt_pos(self.tgt_embed(token), offset=step)
        return self.generator(self.decoder(x, memory, src_mask, None, caches))[:, -1]

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory, src_mask = self.encode(src)
        return self.generator(self.decode(tgt_in, memory, src_mask))


def make_model(cfg: ModelConfig, vocab: Vocab) -> EncoderDecoder:
    if cfg.share_embeddings and vocab.src_size != vocab.tgt_size:
        raise ValueError("share_embeddings needs one joint vocabulary")
    model = EncoderDecoder(cfg, vocab)
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields a shared tensor once
