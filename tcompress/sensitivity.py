"""Each Linear's (and embedding table's) sensitivity to its bit width, measured once per baseline by
the ``sensitivity`` stage for the mixed-precision search (``tcompress.methods.mixed``). It lives
outside the methods' package and the shared mechanisms, which the loader imports whole, so that the
stage depends on no method's code and only a mixed cell depends on this file.

For every Linear of the model and every width b of ``sensitivity.bits``, the Linear alone is
rounded with GPTQ (``tcompress.compress.gptq``: one step and zero point per output row, its Hessian
from the ``calibrate`` stage's Gram matrix) while every other module stays float, and the
baseline's validation loss is taken again:

    Δ(l, b) = L(model with Linear l at b bits) − L(float model),

and with ``sensitivity.embeddings`` the same for each embedding table (a shared source/target table
once), rounded to nearest with one step and zero point per row (a looked-up row is not a product
with calibrated inputs, so there is no Hessian to round against): the thesis's PTQ of the
embedding group, whose table is a fifth of the Multi30k model and which a file ratio of 8× cannot
leave float.

L being the mean cross-entropy in nats per target token of the validation split (or its first
``sensitivity.sentences`` sentences), teacher-forced, without label smoothing, padding left out.

Loss rather than BLEU: one forward pass per (Linear, width) instead of a decode, and a smooth
number where a single Linear's rounding moves BLEU on a small subset by less than its noise. BLEU
is what the mixed search's candidates are judged by (``search``). GPTQ rather than round-to-nearest:
a mixed cell stores each Linear as GPTQ rounds it at its width, so the loss measured is the loss
of the codes it would store.

The result is one JSON file (``SENSITIVITY_FILE``): the settings, the float loss, and per Linear
(``linears``) and per embedding table (``embeddings``) its weight's size and Δ per width.

On Multi30k the measurement takes a quarter of an hour on one CPU thread, so each module's result is
kept, as soon as it is measured, in a resume folder outside DVC's outputs: an interrupted stage
continues with the next module. The folder is keyed on the baseline, the calibration statistics and
the settings (``identity``); a stale one is discarded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from tcompress.batching import pad
from tcompress.compress.gptq import gptq_quantize
from tcompress.compress.linear_quant import QuantSpec, dequantize, quantize_tensor
from tcompress.compress.walker import group_linears, group_modules
from tcompress.data.corpora import read_ids
from tcompress.model import PAD
from tcompress.resume_folder import MARKER, open_folder, write_part

FORMAT = "tcompress.sensitivity/2"
BATCH_SENTENCES = 64   # how the loss is batched; the sum does not depend on it beyond float rounding


def validation_batches(tokenized: str | Path, sentences: int, device: torch.device | str = "cpu"
                       ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The validation split's first ``sentences`` pairs (0: all), as (src, tgt_in, tgt_out) batches."""
    src, tgt = read_ids(tokenized, "valid")
    n = sentences or len(src)
    return [(pad(src[i:i + BATCH_SENTENCES]).to(device), pad([t[:-1] for t in tgt[i:i + BATCH_SENTENCES]]).to(device),
             pad([t[1:] for t in tgt[i:i + BATCH_SENTENCES]]).to(device)) for i in range(0, min(n, len(src)), BATCH_SENTENCES)]


@torch.no_grad()
def validation_loss(model: nn.Module, batches) -> float:
    """Mean cross-entropy in nats per real target token over ``batches``, in eval mode."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for src, tgt_in, tgt_out in batches:
            logits = model(src, tgt_in).float()
            total += float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                                                       ignore_index=PAD, reduction="sum"))
            count += int((tgt_out != PAD).sum())
    finally:
        model.train(was_training)
    return total / count


def gptq_codes(linear: nn.Linear, stats, spec: QuantSpec):
    """GPTQ's (codes, scale, zero_point) of ``linear``'s weight from its calibration statistics, with
    the ``gptq`` method's default blocking and damping."""
    return gptq_quantize(linear.weight, 2 * stats.gram / stats.count, spec)


def embedding_codes(embedding: nn.Embedding, spec: QuantSpec):
    """Round-to-nearest (codes, scale, zero_point) of an embedding table, one step per row."""
    t = quantize_tensor(embedding.weight.detach().float(), spec)
    return t["q"], t["scale"], t["zero_point"]


def embedding_tables(model: nn.Module) -> dict[str, nn.Embedding]:
    """The model's embedding tables by name (layer group ``emb``; a shared table once)."""
    return dict(group_modules(model, "emb"))


def _resumed(resume: Path | None, identity: dict | None) -> dict:
    """What an interrupted measurement with this ``identity`` left in ``resume``; the folder is then
    ready for this one's results (``tcompress.resume_folder``)."""
    if resume is None:
        return {}
    open_folder(resume, identity)
    return {p.stem: json.loads(p.read_text()) for p in resume.glob("*.json") if p.name != MARKER}


def _keep(resume: Path | None, key: str, value) -> None:
    if resume is not None:
        write_part(resume / f"{key}.json", value)


@torch.no_grad()
def measure(model: nn.Module, stats: dict, batches, widths: tuple[int, ...], mode: str,
            embeddings: bool = False, resume: Path | None = None, identity: dict | None = None) -> dict:
    """Δ(l, b) for every Linear l of ``model`` and width b (see the module docstring), and with
    ``embeddings`` for every embedding table, with the float loss and each weight's size; the model
    is left as it was. With ``resume``, each result is kept there under ``identity`` as it is
    measured, and a run after an interruption measures only what is missing."""
    done = _resumed(resume, identity)
    if "base_loss" not in done:
        done["base_loss"] = validation_loss(model, batches)
        _keep(resume, "base_loss", done["base_loss"])
    base = done["base_loss"]

    def deltas_of(module: nn.Module, codes_at) -> dict:
        original = module.weight.detach().clone()
        deltas = {}
        for bits in widths:   # each width's codes from the float weight
            codes, scale, zero_point = codes_at(QuantSpec(bits, mode, per_channel=True))
            module.weight.copy_(dequantize(codes, scale, zero_point).reshape(original.shape))
            try:
                deltas[str(bits)] = validation_loss(model, batches) - base
            finally:
                module.weight.copy_(original)   # the model as it was, an interruption included
        return {"numel": original.numel(), "delta": deltas}

    todo = [("linears", name, linear, lambda spec, l=linear, n=name: gptq_codes(l, stats[n], spec))
            for name, linear in group_linears(model, "full").items()]
    todo += [("embeddings", name, table, lambda spec, t=table: embedding_codes(t, spec))
             for name, table in (embedding_tables(model).items() if embeddings else ())]
    result: dict = {"base_loss": base, "linears": {}, "embeddings": {}}
    bar = tqdm(todo, desc="sensitivity", unit="module", mininterval=2.0)
    for kind, name, module, codes_at in bar:
        key = f"{kind}--{name}"
        if key not in done:
            bar.set_postfix_str(name)
            done[key] = deltas_of(module, codes_at)
            _keep(resume, key, done[key])
        result[kind][name] = done[key]
    return result


def check_widths(widths: tuple[int, ...]) -> None:
    if list(widths) != sorted(set(widths), reverse=True) or not 2 <= widths[-1] <= widths[0] <= 8:
        raise ValueError(f"sensitivity.bits: {list(widths)} must be distinct widths from 8 down to 2, widest first")


def save(result: dict, path: str | Path, settings: dict) -> None:
    Path(path).write_text(json.dumps({"format": FORMAT, "enabled": True, **settings, **result}, indent=1,
                                     sort_keys=True) + "\n")


def load(path: str | Path) -> dict:
    """The measurement ``save`` wrote (see ``parsed``)."""
    return parsed(json.loads(Path(path).read_text()), str(path))


def parsed(data: dict, where: str = "sensitivities") -> dict:
    """The JSON ``save`` wrote, as ``bits`` (widest first), ``mode``, ``base_loss`` and per Linear and
    per embedding table ``numel`` and ``delta`` (width -> Δ loss, keyed by int)."""
    if data.get("format") != FORMAT:
        raise ValueError(f"{where}: not a sensitivity file of this version (format {data.get('format')!r}, "
                         f"expected {FORMAT!r}): run `dvc repro` to measure it again")
    data["bits"] = tuple(data["bits"])
    for entry in [*data["linears"].values(), *data["embeddings"].values()]:
        entry["delta"] = {int(b): d for b, d in entry["delta"].items()}
    return data
