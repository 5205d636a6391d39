"""The K seeds of one recipe trained as one batched computation (the cpu profile's students).

A chapter trains the same recipe for K seeds; for the book's small students one step of one seed
is a few small matmuls, so the time goes into Python and per-op overhead, not arithmetic.
`train_seeds` stacks the K students' parameters (`kdlib.stacked_models`: weights (K, out, in),
convolutions as im2col + batched matmul, attention on K * B sequences) and takes one step for all
seeds at once. Each seed keeps everything that makes it a seed: its own initialisation (exactly
``make_student(seed)``), its own training subset, its own batch order
(``torch.Generator().manual_seed(seed)``, drawn exactly as `train` draws it) and its own loss (the
method's pure ``terms_from_logits``, or ``terms_from_outputs`` for a method that hooks the
student's and teacher's ``features`` embedding, such as RKD, called on the (K, B, ...) stacks:
every loss reduces over the sample axis only, so each term is (K,); the per-seed losses summed,
so each seed's gradient is exactly its own loss's gradient). Adam, AdamW and SGD are elementwise,
so one optimiser over the stacked parameters steps each seed as its own optimiser would.

Result, per student family (tests/test_batched.py, tests/test_stacked_models.py):

* `MLP` with a logits-only method, or with RKD through ``terms_from_outputs`` (the frozen
  teacher's embeddings computed once per subset, like its logits): the same students and
  histories as one `train` per seed, bit for bit at one thread;
* `CNN1D` and `PatchTransformer` (logits-only methods, or RKD on a CNN1D): equal to float32
  round-off, not bit for bit (the same sums in another order), so the same test predictions
  after a short run, not identical weights; over a long run with Adam the round-off grows
  like any perturbation of training, and a seed's accuracy may differ by a test sample or so.

`make bench` prints each family's speed-up over one `train` per seed and its share of the machine's
GEMM peak (benchmarks/bench_train.py).

Anything else (a method with trainable parts, random draws or a custom backward, or hooking a
layer other than ``features``; dropout or BatchNorm; augmentation; other architectures) takes the
one-seed loop, per seed, with the same return format and `why_sequential` naming the reason:
`train` stays the reference.
"""

from __future__ import annotations

import copy

import torch
from tqdm.auto import tqdm

from .hooks import features
from .method import Method
from .stacked_models import StackedMLP, stack, why_not_stackable  # noqa: F401 (StackedMLP re-exported)
from .train import _lr_factor, _make_optimizer, batches_per_epoch, teacher_logits, train


def _teacher_outputs(teacher, x, layer):
    """The frozen teacher's logits and flattened embedding at `layer` on all of x, once (`hooks.features`)."""
    logits, outputs = features(teacher, x, [layer])
    return logits, outputs[layer].flatten(1)


def _check_stacked(method, terms, k_seeds):
    """One line naming the method and term whose value is not one number per seed."""
    for name, value in terms.items():
        if tuple(value.shape) != (k_seeds,):
            raise ValueError(f"{type(method).__name__}.terms_from_{'logits' if method.logits_only else 'outputs'}: term {name!r} has shape "
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
    if not (isinstance(method, Method) and (method.logits_only or method.outputs_only)):
        return (f"{type(method).__name__} is not logits-only (no terms_from_logits or terms_from_outputs, "
                "or its own forward/backward)")
    if any(True for _ in method.parameters()) or any(True for _ in method.buffers()):
        return f"{type(method).__name__} has trainable parts or buffers"
    if not method.logits_only and getattr(method, "layer", None) != "features":
        return f"{type(method).__name__} hooks the student's {getattr(method, 'layer', None)!r}, not 'features'"
    reason = why_not_stackable(students)
    if reason is not None:
        return reason
    if len({len(d[0]) for d in datas}) > 1:
        return "the training subsets differ in size"
    return None


def train_seeds(make_student, method, data_for_seed, seeds, *, teacher=None, epochs: int,
                batch_size: int = 64, lr: float = 1e-3, optimizer: str = "adam", momentum: float = 0.9,
                weight_decay: float = 0.0, lr_schedule: str | None = None, lr_milestones: list | None = None,
                lr_gamma: float = 0.1, augment=None, drop_last: bool = False, device=None, amp: bool = False,
                batched: bool = True, progress: bool = True, desc: str | None = None):
    """Train one student per seed; return ``(students, histories)``, lists in the order of `seeds`.

    Equal (bit for bit at one thread for MLPs and logits-only methods, to float32 round-off for the
    other batched families: see the module docstring) to::

        students = [make_student(s) for s in seeds]
        histories = [train(st, method, data_for_seed(s), teacher=teacher, seed=s, epochs=epochs, ...)
                     for st, s in zip(students, seeds)]

    make_student(seed) -> a freshly initialised model; it must seed its own init (as
        `kdlib.tasks.make_model` does), since all K students are built before training.
    method: a `Method` shared by the seeds (copied per seed on the one-seed path, so trainable
        parts are never shared), or ``make_method(seed) -> Method``.
    data_for_seed(seed) -> ``(x, y, ...)`` tensors: the seed's training set (its subset).
    batched=False forces the one-seed loop. The batched path is taken when `why_sequential`
    returns None: a logits-only method, or one with ``terms_from_outputs`` hooking ``features``,
    without parameters; MLP, CNN1D or PatchTransformer students without dropout; subsets of
    equal size; no augmentation, no amp. The other arguments are `train`'s.
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
    """`train`'s loop, step for step, for K stacked students (see the module docstring)."""
    device = torch.device(device) if device is not None else next(students[0].parameters()).device
    if method.needs_teacher and teacher is None:
        raise ValueError(f"train_seeds: {type(method).__name__} needs a teacher (teacher=None)")
    k_seeds = len(seeds)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    xs = torch.stack([d[0].flatten(1) for d in datas]).to(device)  # (K, N, D), as MLP.forward flattens
    ys = torch.stack([d[1] for d in datas]).to(device)  # (K, N)
    ts = tf = None
    outputs = not method.logits_only  # terms_from_outputs: the student's and teacher's embeddings too
    if method.needs_teacher:  # frozen, inputs fixed: its logits once per seed's subset, (K, N, C)
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        once = {}  # seeds sharing one training set (the same tensor) share its teacher outputs

        def outputs_on(x):  # datas keeps every x alive, so its id names it
            if id(x) not in once:
                on = x.to(device)
                once[id(x)] = (_teacher_outputs(teacher, on, method.teacher_layer) if outputs  # + embedding (N, Dt)
                               else (teacher_logits(teacher, on),))
            return once[id(x)]
        per_seed = [outputs_on(d[0]) for d in datas]
        ts = torch.stack([o[0] for o in per_seed])
        tf = torch.stack([o[1] for o in per_seed]) if outputs else None
    stacked = stack(students).to(device)
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
        tfe = None if tf is None else take(tf, perms)
        sums = 0.0  # (1 + terms, K): the loss and each term, summed over the epoch's steps
        for start in range(0, n_per_epoch * batch_size, batch_size):
            batch = slice(start, start + batch_size)  # each seed's own batch, as _batches draws it
            new_factor = _lr_factor(step / total, epoch, lr_schedule, lr_milestones, lr_gamma)
            if new_factor != factor:  # a constant rate is set once, not at every step
                factor = new_factor
                for group in opt.param_groups:
                    group["lr"] = lr * factor
            method.epoch, method.step = epoch, step
            t_logits = None if te is None else te[:, batch]
            # the method's own terms on the (K, B, C) stacks: each reduces over the samples, name -> (K,)
            if outputs:
                logits, features = stacked(xe[:, batch], features=True)
                terms = method.terms_from_outputs(logits, features, t_logits, None if tfe is None else tfe[:, batch],
                                                  ye[:, batch])
            else:
                terms = method.terms_from_logits(stacked(xe[:, batch]), t_logits, ye[:, batch])
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
