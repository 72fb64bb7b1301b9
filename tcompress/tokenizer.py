"""SentencePiece vocabularies, trained on the training split only.

The special ids are fixed (pad 0, unk 1, bos 2, eos 3) to match ``tcompress.model``. Normalization is
``identity`` with byte fallback so that ``decode(encode(s))`` gives back ``s`` exactly (after the
whitespace normalization the prepare stage applies), even for characters never seen in training:
the evaluation scores detokenized text against raw references and must not lose characters.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from tcompress.config import TokenizerConfig
from tcompress.model import BOS, EOS, PAD, UNK

MANIFEST = "tokenizer.json"


def train_sentencepiece(sentences: list[str], cfg: TokenizerConfig) -> bytes:
    """A serialized SentencePiece model; deterministic for the same sentences and config."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=cfg.vocab_size,
        model_type=cfg.model_type,
        character_coverage=cfg.character_coverage,
        normalization_rule_name="identity",
        byte_fallback=True,
        # A small corpus may not support the requested size; a soft limit shrinks it instead of failing.
        hard_vocab_limit=False,
        pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        num_threads=1,  # thread scheduling can change unigram pruning; one thread keeps the vocabulary reproducible
        max_sentence_length=1 << 16,
        minloglevel=2,
    )
    return model.getvalue()


@dataclass
class Tokenizer:
    src: spm.SentencePieceProcessor
    tgt: spm.SentencePieceProcessor
    joint: bool

    @property
    def src_vocab_size(self) -> int:
        return self.src.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self.tgt.get_piece_size()

    def encode_src(self, lines: list[str]) -> list[list[int]]:
        return [ids + [EOS] for ids in self.src.encode(lines)]

    def encode_tgt(self, lines: list[str]) -> list[list[int]]:
        """Target ids framed as BOS … EOS; the training loop shifts them into decoder input and labels."""
        return [[BOS] + ids + [EOS] for ids in self.tgt.encode(lines)]

    def decode_tgt(self, ids: list[list[int]]) -> list[str]:
        def strip(seq: list[int]) -> list[int]:
            out = []
            for i in seq:
                if i == EOS:
                    break
                if i not in (PAD, BOS):
                    out.append(i)
            return out
        return self.tgt.decode([strip(seq) for seq in ids])

    @classmethod
    def load(cls, directory: str | Path) -> "Tokenizer":
        directory = Path(directory)
        manifest = json.loads((directory / MANIFEST).read_text())
        src = spm.SentencePieceProcessor(model_file=str(directory / manifest["src_model"]))
        tgt = spm.SentencePieceProcessor(model_file=str(directory / manifest["tgt_model"]))
        return cls(src, tgt, manifest["joint"])


def build_tokenizer(train_src: list[str], train_tgt: list[str], cfg: TokenizerConfig, out_dir: str | Path) -> Tokenizer:
    """Train the vocabulary (joint or one per side) and write it with a manifest into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.joint:
        (out_dir / "spm.joint.model").write_bytes(train_sentencepiece(train_src + train_tgt, cfg))
        names = {"src_model": "spm.joint.model", "tgt_model": "spm.joint.model"}
    else:
        (out_dir / "spm.src.model").write_bytes(train_sentencepiece(train_src, cfg))
        (out_dir / "spm.tgt.model").write_bytes(train_sentencepiece(train_tgt, cfg))
        names = {"src_model": "spm.src.model", "tgt_model": "spm.tgt.model"}
    manifest = {**names, "joint": cfg.joint}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    tok = Tokenizer.load(out_dir)
    manifest.update(src_vocab_size=tok.src_vocab_size, tgt_vocab_size=tok.tgt_vocab_size)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return tok
