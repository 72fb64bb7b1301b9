"""Knowledge distillation into a smaller student (Hinton et al. 2015; Kim & Rush 2016; seed 003 §3.3).

A cell trains a fresh student, smaller in ``d_model``, ``layers`` (each stack) and ``d_ff`` (grid
axes), with the baseline as its frozen teacher, through the one training loop. The ``kd`` axis says
what it learns from:

- ``word``: word-level KD, per target position (1 − α)·CE(reference) + α·T²·KL(q_T ‖ p_T), q_T and
  p_T the teacher's and the student's distributions at temperature T. With ``top_k`` > 0 (the
  default, 8 as in Tan et al. 2019) q_T is the teacher's k most likely tokens, renormalized: the
  teacher runs once over the training pairs before the first step (``TeacherTopK``) instead of at
  every step (what a step costs each way: ``benchmarks/kd_step.py``, one run's output in
  ``benchmarks/results/multi30k_seed003/distill_default/kd_step_amx.json``); ``top_k: 0`` keeps
  the whole distribution, recomputed at every step;
- ``seq``: sequence-level KD, cross-entropy on the teacher's beam translations of the training
  sources instead of the references (the ``teacher`` stage decodes them once, for every student,
  with this package's ``teacher``);
- ``none``: the same student trained on the references alone, on the same budget: the comparison
  that says what distillation adds. It stands in for the method's control, so there is no other.

The "compression" is the parameter ratio teacher / student; the file is the student's own. Speed:
every cell's test decode reports sentences/s, and ``benchmarks/distill_speed.py`` times teacher and
student in one run. With params.yaml's ``deploy`` section on, every student (``none`` included) is
also exported to CTranslate2, its float weights quantized to int8 there (``deploy_int8``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tcompress.methods.base import Axis, Budget, FinetuneParams, Method, budget, int_range, one_of, register
from tcompress.methods.distill.teacher import TeacherTopK
from tcompress.schema import ConfigError, setting

KDS = ("word", "seq", "none")


KD = Axis("kd", "kds", str, "word: the teacher's distributions | seq: its translations | none: references only",
          one_of(KDS))
D_MODEL = Axis("d_model", "d_models", int, "the student's model width", int_range(1))
LAYERS = Axis("layers", "layers", int, "the student's layers, in the encoder and in the decoder", int_range(1))
D_FF = Axis("d_ff", "d_ffs", int, "the student's feed-forward width", int_range(1))


@dataclass(frozen=True)
class DistillParams(FinetuneParams):
    kds: tuple[str, ...] = setting(KDS, doc="grid key: " + KD.doc)
    d_models: tuple[int, ...] = setting((64,), doc="grid key: " + D_MODEL.doc)
    layers: tuple[int, ...] = setting((2,), doc="grid key: " + LAYERS.doc)
    d_ffs: tuple[int, ...] = setting((256,), doc="grid key: " + D_FF.doc)
    n_heads: int = setting(4, lo=1, doc="the student's attention heads (must divide every d_model)")
    temperature: float = setting(1.0, lo=0.0, lo_open=True, doc="word KD: T of both softmaxes")
    alpha: float = setting(0.5, lo=0.0, hi=1.0, doc="word KD: weight of the teacher's term (1 − α: the references')")
    top_k: int = setting(8, lo=0, doc="word KD: the teacher's k most likely tokens per position, computed once "
                         "before training and renormalized; 0 = its whole distribution, at every step")
    # A student starts fresh: it trains longer, on all the data, at the baseline's peak rate.
    epochs: int = budget("epochs", 4)
    train_sentences: int = budget("train_sentences", 0)
    lr: float = budget("lr", 1e-3)
    warmup_steps: int = budget("warmup_steps", 100)


def check(params: DistillParams, budget: Budget) -> None:
    bad = [d for d in params.d_models if d % params.n_heads]
    if bad:
        raise ConfigError(f"distill.n_heads: {params.n_heads} must divide every distill.d_models value; it does not "
                          f"divide {', '.join(map(str, bad))}")
    if params.from_scratch:
        raise ConfigError("distill.from_scratch: a student always starts fresh; leave it false")


def _word_kd_hook(teacher, temperature: float, alpha: float, top_k: TeacherTopK | None = None):
    """The training-loop hook that mixes the teacher's distributions into the loss (imports torch):
    from ``top_k``'s cache when given, else from the teacher run on the batch."""
    import torch
    import torch.nn.functional as F

    from tcompress.model import PAD
    from tcompress.training import Hook

    class WordKD(Hook):
        def training_loss(self, src, tgt, logits, loss):
            keep = tgt[:, 1:] != PAD                       # (B, T): target positions, padding left out
            scaled = logits.float() / temperature if temperature != 1 else logits.float()   # (B, T, vocab)
            if top_k is None:
                with torch.no_grad(), torch.autocast(logits.device.type, dtype=torch.bfloat16,
                                                     enabled=logits.dtype == torch.bfloat16):
                    teacher_logits = teacher(src, tgt[:, :-1]).float()
                log_q = F.log_softmax(teacher_logits / temperature, dim=-1)
                log_p = F.log_softmax(scaled, dim=-1)
            else:   # q renormalized over the teacher's k most likely tokens; log p at those k only
                values, indices = top_k.lookup(src, tgt)                               # (tokens, k) each
                log_q = torch.zeros(*keep.shape, values.size(1), device=logits.device)
                index = torch.zeros(*keep.shape, values.size(1), dtype=torch.long, device=logits.device)
                log_q[keep] = F.log_softmax(values.to(logits.device) / temperature, dim=-1)
                index[keep] = indices.to(logits.device)
                log_p = scaled.gather(-1, index) - scaled.logsumexp(-1, keepdim=True)  # (B, T, k)
            kl = (log_q.exp() * (log_q - log_p)).sum(-1)                               # (B, T): KL(q ‖ p)
            return (1 - alpha) * loss + alpha * temperature ** 2 * kl[keep].sum()

    return WordKD()


def student_model(teacher, cell, params: DistillParams, seed: int):
    """A fresh student shaped by the cell's axes, the teacher's vocabulary and the rest of its config."""
    import dataclasses

    from tcompress.model import make_model
    from tcompress.training import seed_everything

    cfg = dataclasses.replace(teacher.cfg, d_model=cell["d_model"], n_layers=cell["layers"], d_ff=cell["d_ff"],
                              n_heads=params.n_heads)
    seed_everything(seed)
    return make_model(cfg, teacher.vocab)


def _teacher_top_k(teacher, params: DistillParams, ctx) -> tuple[TeacherTopK, float]:
    import time

    from tcompress.precision import resolve_precision

    if params.top_k > teacher.vocab.tgt_size:
        raise ConfigError(f"distill.top_k: {params.top_k} is more than the {teacher.vocab.tgt_size} target "
                          "tokens; 0 keeps the whole distribution")
    train, _ = ctx.training_data()
    bf16 = resolve_precision(ctx.entry["train"]["precision"], ctx.device, quiet=True) == "bf16"
    start = time.perf_counter()
    cache = TeacherTopK(teacher, train, params.top_k, ctx.entry["train"]["batch_tokens"], ctx.device, bf16,
                        progress=True)
    return cache, round(time.perf_counter() - start, 1)


def compress(model, cell, params: DistillParams, ctx) -> dict:
    from tcompress.model import count_parameters

    teacher = model.eval().requires_grad_(False)
    student = student_model(teacher, cell, params, ctx.seed).to(ctx.device)
    hooks, facts = [], {}
    if cell["kd"] == "word":
        cache = None
        if params.top_k:   # recomputed after an interruption too: the same teacher, data and order
            cache, facts["teacher_top_k_seconds"] = _teacher_top_k(teacher, params, ctx)
        hooks.append(_word_kd_hook(teacher, params.temperature, params.alpha, cache))
    facts |= ctx.finetune(student, hooks, teacher=cell["kd"] == "seq")
    n_teacher, n_student = count_parameters(teacher), count_parameters(student)
    return {**facts, "model": student, "n_model": n_teacher, "n_student": n_student, "n_compressed": n_teacher,
            "compression_ratio": round(n_teacher / n_student, 4)}


def _row_label(values) -> str:
    how = {"word": "word-level KD", "seq": "sequence-level KD", "none": "references only"}[values["kd"]]
    return f"d{values['d_model']}, {values['layers']}+{values['layers']} layers, ff {values['d_ff']}: {how}"


METHOD = register(Method(
    name="distill", title="Knowledge distillation into a smaller student", params=DistillParams,
    axes=(KD, D_MODEL, LAYERS, D_FF), check=check,
    catalog={"kds": KDS, "d_models": (128, 256), "layers": (2, 3), "d_ffs": (512,)},
    compress=compress, row_axes=("d_model", "layers", "d_ff", "kd"), row_label=_row_label,
    series=lambda v: f"distill/{v['kd']}", order=83, controlled=False, deploy_int8=True,
    needs_teacher=lambda v: v["kd"] == "seq",
))
