"""The one training loop of the book, and evaluation.

`train` is a plain function: every step is forward (the method returns named,
weighted loss terms), sum, backward, optimiser step, log each term. Data are
in-memory tensors (shuffled minibatches, no DataLoader workers) or a callable
that makes a batch per step (language models, on-policy data).
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .hooks import features
from .method import Method


def _make_optimizer(params, name, lr, momentum, weight_decay):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"train: unknown optimizer {name!r} (use 'sgd', 'adam' or 'adamw')")


def _lr_factor(progress, epoch, lr_schedule, lr_milestones, lr_gamma):
    """Multiplier of the base learning rate; progress is the fraction of training done."""
    if lr_milestones:  # CRD protocol: x0.1 at epochs 150, 180, 210
        return lr_gamma ** sum(epoch >= m for m in lr_milestones)
    if lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if lr_schedule in (None, "constant"):
        return 1.0
    raise ValueError(f"train: unknown lr_schedule {lr_schedule!r} (use None, 'constant' or 'cosine')")


def batches_per_epoch(n: int, batch_size: int, drop_last: bool) -> int:
    """Minibatches in one epoch of n samples (a last short batch is dropped only if a full one exists)."""
    return n // batch_size if drop_last and n >= batch_size else math.ceil(n / batch_size)


def _batches(data, batch_size, generator, device, drop_last):
    """Shuffled minibatches of a tuple of equally long tensors."""
    n = len(data[0])
    perm = torch.randperm(n, generator=generator).to(device)
    stop = batches_per_epoch(n, batch_size, drop_last) * batch_size
    for start in range(0, stop, batch_size):
        idx = perm[start : start + batch_size]
        yield tuple(t[idx] for t in data)


def train(
    student,
    method: Method,
    data,
    *,
    teacher=None,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    optimizer: str = "adam",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    lr_schedule: str | None = None,
    lr_milestones: list | None = None,
    lr_gamma: float = 0.1,
    seed: int = 0,
    augment=None,
    drop_last: bool = False,
    device=None,
    amp: bool = False,
    cache_teacher: bool = True,
    progress: bool = True,
    desc: str | None = None,
) -> dict:
    """Train `student` with `method` (and a frozen `teacher`); return the per-term history.

    data: a tuple of tensors ``(x, y, ...)`` trained for `epochs`, or a callable
        ``data(step, generator) -> batch`` trained for `steps`.
    augment: optional ``augment(x, generator) -> x`` applied to each batch's inputs.
    amp: bf16 autocast on the device (the paper profile on a GPU).
    cache_teacher: when the inputs never change (tensors, no augmentation, no amp) and the
        method is logits-only (`Method.logits_only`), the frozen teacher's logits on the
        training set are computed once and indexed per batch instead of a teacher forward per
        step: the same numbers (a row of a matmul does not depend on the rest of the batch;
        tested), a fraction of the cost.
    The optimiser's parameter groups are ``method.param_groups(student, lr)``; the schedule scales
    each group's own base lr.
    Returns ``{"loss": [...], <term>: [...], <logged>: [...], "lr": [...]}``: one mean per epoch, or
    per logging interval (about 100 points) when training for `steps`; <logged> are the values the
    method records with `Method.log` (a mean over the steps that logged them).
    """
    if (epochs is None) == (steps is None):
        raise ValueError("train: give exactly one of epochs= or steps=")
    by_epoch = epochs is not None
    if by_epoch and callable(data):
        raise ValueError("train: a callable data source needs steps=, not epochs=")
    device = torch.device(device) if device is not None else next(student.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout and anything else drawing from the global stream

    student.to(device).train()
    method.to(device).train()
    if teacher is not None:
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    if by_epoch:
        data = tuple(t.to(device) for t in data)
    cached = (cache_teacher and by_epoch and teacher is not None and augment is None and not amp
              and method.logits_only and method.needs_teacher)
    if cached:  # the batch carries its teacher logits as its last tensor
        data = (*data, teacher_logits(teacher, data[0]))
    # the method's groups (default: one, the student's parameters then the method's); each keeps
    # its own base lr, so a group that learns at a fraction of lr stays at that fraction
    opt = _make_optimizer(method.param_groups(student, lr), optimizer, lr, momentum, weight_decay)
    for group in opt.param_groups:
        group["base_lr"] = group["lr"]
    method.epochs = epochs
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp else nullcontext()

    n_per_epoch = batches_per_epoch(len(data[0]), batch_size, drop_last) if by_epoch else steps
    total = epochs * n_per_epoch if by_epoch else steps
    log_every = n_per_epoch if by_epoch else max(1, steps // 100)
    history: dict[str, list] = {"loss": [], "lr": []}
    sums: dict[str, torch.Tensor] = {}
    logged: dict[str, list] = {}  # name -> [sum, steps logged] of the values the method logs
    count, step = 0, 0
    bar = tqdm(total=total, desc=desc or type(method).__name__, disable=not progress, leave=False)
    for epoch in range(epochs or 1):
        batches = _batches(data, batch_size, generator, device, drop_last) if by_epoch else (
            data(s, generator) for s in range(steps)
        )
        for batch in batches:
            factor = _lr_factor(step / total, epoch, lr_schedule, lr_milestones, lr_gamma)
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * factor
            if augment is not None:
                batch = (augment(batch[0], generator), *batch[1:])
            method.epoch, method.step = epoch, step
            with autocast:
                if cached:
                    terms = method.terms_from_logits(student(batch[0]), batch[-1], batch[1])
                else:
                    terms = method(student, teacher, batch)
            loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            method.backward(loss, terms)
            opt.step()
            # keep the running sums on the device: no host sync per step
            for name, value in {"loss": loss, **terms}.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float()
            for name, value in method.pop_logged().items():  # `Method.log`: diagnostics, not terms
                if name in terms:
                    raise ValueError(f"train: {type(method).__name__} logs {name!r}, also a loss term's name")
                kept = logged.setdefault(name, [0.0, 0])
                kept[0], kept[1] = kept[0] + value, kept[1] + 1
            count, step = count + 1, step + 1
            bar.update()
            if count == log_every or step == total:
                for name, value in sums.items():
                    history.setdefault(name, []).append(float(value) / count)
                for name, (value, n) in logged.items():
                    history.setdefault(name, []).append(float(value) / n)
                history["lr"].append(lr * factor)
                sums, logged, count = {}, {}, 0
                if progress:
                    bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
    bar.close()
    student.eval()
    return history


def predict_logits(model, x, batch_size: int = 2048):
    """Logits of `model` on `x`, in eval mode and chunks (`hooks.features`); on the CPU as float32."""
    return features(model, x, (), batch_size)[0].float().cpu()


def teacher_logits(teacher, x, batch_size: int = 2048):
    """The frozen teacher's logits on all of `x`, once, in eval mode and the teacher's own dtype
    (`hooks.features`): the teacher cache, row for row what ``teacher(x[idx])`` returns."""
    teacher.eval()  # and it stays in eval mode: `train` keeps a frozen teacher there
    return features(teacher, x, (), batch_size)[0]


def expected_calibration_error(probs, target, n_bins: int = 15) -> float:
    """ECE (Guo et al. 2017): sum over confidence bins of |accuracy - confidence| * share of samples."""
    confidence, prediction = probs.max(-1)
    correct = (prediction == target).float()
    bins = torch.clamp((confidence * n_bins).long(), max=n_bins - 1)
    ece = torch.zeros(())
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.float().mean() * (correct[in_bin].mean() - confidence[in_bin].mean()).abs()
    return float(ece)


def metrics_from_logits(logits, target, teacher_logits=None) -> dict:
    """Accuracy %, NLL (nats), ECE % and, with a teacher, top-1 agreement % from logits."""
    probs = logits.softmax(-1)
    out = {
        "acc": 100.0 * float((logits.argmax(-1) == target).float().mean()),
        "nll": float(F.cross_entropy(logits, target)),
        "ece": 100.0 * expected_calibration_error(probs, target),
    }
    if teacher_logits is not None:
        out["agreement"] = 100.0 * float((logits.argmax(-1) == teacher_logits.argmax(-1)).float().mean())
    return out


def evaluate(model, data, teacher=None, batch_size: int = 2048) -> dict:
    """Accuracy %, NLL, ECE % and teacher-student agreement % of `model` on `data = (x, y)`."""
    x, y = data[0], data[1]
    logits = predict_logits(model, x, batch_size)
    teacher_logits = predict_logits(teacher, x, batch_size) if teacher is not None else None
    return metrics_from_logits(logits, y.cpu(), teacher_logits)
