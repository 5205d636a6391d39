"""The K seeds of one recipe trained as one batched computation (the cpu profile's MLP students).

A chapter trains the same recipe for K seeds; for the digits MLPs one step of one seed is
a few tiny matmuls, so the time goes into Python and per-op overhead, not arithmetic.
`train_seeds` stacks the K students' parameters (weights (K, out, in)) and takes one step
for all seeds at once. Each seed keeps everything that makes it a seed: its own
initialisation (exactly ``make_student(seed)``), its own training subset, its own batch
order (``torch.Generator().manual_seed(seed)``, drawn exactly as `train` draws it) and its
own loss (the method's pure ``terms_from_logits``, called on the (K, B, C) stacks: every loss
reduces over the sample axis only, so each term is (K,); the per-seed losses summed, so each
seed's gradient is exactly its own loss's gradient). Adam, AdamW
and SGD are elementwise, so one optimiser over the stacked parameters steps each seed as
its own optimiser would. Result: the same students and histories as one `train` per seed,
bit for bit at one thread (tests/test_batched.py); `make bench` prints the speed-up over
one `train` per seed (benchmarks/bench_train.py).

Anything else (a method that needs features, extra modules, random draws or a custom
backward; dropout or BatchNorm; augmentation; a CNN) takes the one-seed loop, per seed,
with the same return format: `train` stays the reference.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from tqdm.auto import tqdm

from .method import Method
from .models.small import MLP
from .train import _lr_factor, _make_optimizer, batches_per_epoch, teacher_logits, train


class _StackedLinear(torch.autograd.Function):
    """K linear layers at once, y_k = x_k W_k^T + b_k, slice for slice as F.linear computes it.

    x (K, B, in), weight (K, out, in), bias (K, out) -> (K, B, out). On the CPU F.linear is
    addmm(b, x, W^T), whose backward forms grad_W = grad^T x (in W's orientation) and
    grad_x = grad W. Autograd through baddbmm would form grad_W as (x^T grad)^T, which rounds
    differently in the last bit; so the backward is written out here, and each seed's
    gradient equals the one-seed loop's bit for bit (tested).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        return grad_x, torch.bmm(grad.transpose(1, 2), x), grad.sum(1)


class StackedMLP(nn.Module):
    """K `MLP`s of one shape as stacked parameters: layer i has weight (K, out, in) and bias (K, out)."""

    def __init__(self, students):
        super().__init__()
        layers = [_linears(s) for s in students]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].weight.detach() for ls in layers])) for i in range(len(layers[0])))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].bias.detach() for ls in layers])) for i in range(len(layers[0])))

    def forward(self, x):
        """(K, B, in_dim) -> (K, B, num_classes): Linear, ReLU, ..., Linear, as `MLP.forward`."""
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = _StackedLinear.apply(torch.relu(x) if i else x, weight, bias)
        return x

    @torch.no_grad()
    def copy_to(self, students):
        """Write seed k's trained parameters into students[k] (ordinary `MLP`s)."""
        for k, student in enumerate(students):
            for layer, weight, bias in zip(_linears(student), self.weights, self.biases):
                layer.weight.copy_(weight[k])
                layer.bias.copy_(bias[k])


def _linears(student):
    return [m for m in student.modules() if isinstance(m, nn.Linear)]


def _check_stacked(method, terms, k_seeds):
    """One line naming the method and term whose value is not one number per seed."""
    for name, value in terms.items():
        if tuple(value.shape) != (k_seeds,):
            raise ValueError(f"{type(method).__name__}.terms_from_logits: term {name!r} has shape "
                             f"{tuple(value.shape)} on {k_seeds} stacked seeds, expected ({k_seeds},): "
                             "reduce over the sample axis only (mean(-1)), as kdlib.losses does")


def why_sequential(students, method, datas, augment=None, amp: bool = False) -> str | None:
    """Why these seeds cannot be trained as one batched computation, or None if they can."""
    if len(students) < 2:
        return "one seed (the batched step's fixed cost only pays from two seeds on)"
    if augment is not None:
        return "augmentation (inputs change every epoch)"
    if amp:
        return "amp"
    if not (isinstance(method, Method) and method.logits_only):
        return f"{type(method).__name__} is not logits-only (no terms_from_logits, or its own forward/backward)"
    if any(True for _ in method.parameters()) or any(True for _ in method.buffers()):
        return f"{type(method).__name__} has trainable parts or buffers"
    for student in students:
        if type(student) is not MLP:
            return f"{type(student).__name__} is not a kdlib MLP"
        if any(not isinstance(m, (MLP, nn.Sequential, nn.Linear, nn.ReLU)) for m in student.modules()):
            return "the MLP has layers other than Linear and ReLU (dropout)"
    shapes = {tuple(tuple(p.shape) for p in s.parameters()) for s in students}
    if len(shapes) > 1:
        return "the students differ in shape"
    if len({len(d[0]) for d in datas}) > 1:
        return "the training subsets differ in size"
    return None


def train_seeds(make_student, method, data_for_seed, seeds, *, teacher=None, epochs: int,
                batch_size: int = 64, lr: float = 1e-3, optimizer: str = "adam", momentum: float = 0.9,
                weight_decay: float = 0.0, lr_schedule: str | None = None, lr_milestones: list | None = None,
                lr_gamma: float = 0.1, augment=None, drop_last: bool = False, device=None, amp: bool = False,
                batched: bool = True, progress: bool = True, desc: str | None = None):
    """Train one student per seed; return ``(students, histories)``, lists in the order of `seeds`.

    Equal, bit for bit at one thread, to::

        students = [make_student(s) for s in seeds]
        histories = [train(st, method, data_for_seed(s), teacher=teacher, seed=s, epochs=epochs, ...)
                     for st, s in zip(students, seeds)]

    make_student(seed) -> a freshly initialised model; it must seed its own init (as
        `kdlib.tasks.make_model` does), since all K students are built before training.
    method: a `Method` shared by the seeds (copied per seed on the one-seed path, so trainable
        parts are never shared), or ``make_method(seed) -> Method``.
    data_for_seed(seed) -> ``(x, y, ...)`` tensors: the seed's training set (its subset).
    batched=False forces the one-seed loop. The batched path is taken when `why_sequential`
    returns None: logits-only method without parameters, MLP students without dropout,
    subsets of equal size, no augmentation, no amp. The other arguments are `train`'s.
    """
    seeds = list(seeds)
    students = [make_student(s) for s in seeds]
    datas = [tuple(data_for_seed(s)) for s in seeds]
    methods = [method(s) for s in seeds] if not isinstance(method, Method) else None
    reason = why_sequential(students, methods[0] if methods else method, datas, augment, amp)
    recipe = dict(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, momentum=momentum,
                  weight_decay=weight_decay, lr_schedule=lr_schedule, lr_milestones=lr_milestones,
                  lr_gamma=lr_gamma, drop_last=drop_last, device=device, progress=progress)
    if not batched or reason is not None:
        histories = []
        for k, (student, seed, data) in enumerate(zip(students, seeds, datas)):
            m = methods[k] if methods else copy.deepcopy(method)
            histories.append(train(student, m, data, teacher=teacher, seed=seed, augment=augment, amp=amp,
                                   desc=desc or f"{type(m).__name__} seed {seed}", **recipe))
        return students, histories
    return students, _train_stacked(students, methods[0] if methods else method, datas, seeds,
                                    teacher=teacher, desc=desc, **recipe)


def _train_stacked(students, method, datas, seeds, *, teacher, epochs, batch_size, lr, optimizer, momentum,
                   weight_decay, lr_schedule, lr_milestones, lr_gamma, drop_last, device, progress, desc):
    """`train`'s loop, step for step, for K stacked MLPs (see the module docstring)."""
    device = torch.device(device) if device is not None else next(students[0].parameters()).device
    if method.needs_teacher and teacher is None:
        raise ValueError(f"train_seeds: {type(method).__name__} needs a teacher (teacher=None)")
    k_seeds = len(seeds)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    xs = torch.stack([d[0].flatten(1) for d in datas]).to(device)  # (K, N, D), as MLP.forward flattens
    ys = torch.stack([d[1] for d in datas]).to(device)  # (K, N)
    ts = None
    if method.needs_teacher:  # frozen, inputs fixed: its logits once per seed's subset, (K, N, C)
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        ts = torch.stack([teacher_logits(teacher, d[0].to(device)) for d in datas])
    stacked = StackedMLP(students).to(device)
    method.to(device).train()
    method.epochs = epochs
    opt = _make_optimizer(list(stacked.parameters()), optimizer, lr, momentum, weight_decay)

    n = xs.shape[1]
    n_per_epoch = batches_per_epoch(n, batch_size, drop_last)
    total = epochs * n_per_epoch
    offsets = torch.arange(k_seeds, device=device)[:, None] * n  # seed k's rows start at k * n

    def take(t, idx):  # rows idx (K, M) of each seed's (N, ...) slice of t (K, N, ...) -> (K, M, ...)
        return t.flatten(0, 1).index_select(0, idx.flatten()).view(*idx.shape, *t.shape[2:])
    histories = [{"loss": [], "lr": []} for _ in seeds]
    bar = tqdm(total=total, desc=desc or f"{type(method).__name__} x{k_seeds} seeds", disable=not progress,
               leave=False)
    step, factor = 0, None
    for epoch in range(epochs):
        # each seed's epoch in its own shuffled order, gathered once; a step then slices its batch
        perms = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device) + offsets
        xe, ye = take(xs, perms), take(ys, perms)  # (K, N, D), (K, N)
        te = None if ts is None else take(ts, perms)
        sums = 0.0  # (1 + terms, K): the loss and each term, summed over the epoch's steps
        for start in range(0, n_per_epoch * batch_size, batch_size):
            batch = slice(start, start + batch_size)  # each seed's own batch, as _batches draws it
            new_factor = _lr_factor(step / total, epoch, lr_schedule, lr_milestones, lr_gamma)
            if new_factor != factor:  # a constant rate is set once, not at every step
                factor = new_factor
                for group in opt.param_groups:
                    group["lr"] = lr * factor
            method.epoch, method.step = epoch, step
            logits = stacked(xe[:, batch])
            # the method's own terms on the (K, B, C) stacks: each reduces over the samples, name -> (K,)
            terms = method.terms_from_logits(logits, None if te is None else te[:, batch], ye[:, batch])
            if step == 0:
                _check_stacked(method, terms, k_seeds)
            loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()  # d(sum)/d(loss_k) = 1: seed k's gradient is its own loss's
            opt.step()
            sums = sums + torch.stack([loss, *terms.values()]).detach().float()
            step += 1
            bar.update()
        for name, value in zip(["loss", *terms], sums.tolist()):  # one mean per epoch, as `train` logs it
            for history, v in zip(histories, value):
                history.setdefault(name, []).append(v / n_per_epoch)
        for history in histories:
            history["lr"].append(lr * factor)
        if progress:
            bar.set_postfix(loss=f"{sum(h['loss'][-1] for h in histories) / k_seeds:.4f}")
    bar.close()
    stacked.copy_to(students)
    for student in students:
        student.eval()
    return histories
