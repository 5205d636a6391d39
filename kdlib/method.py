"""The Method base class and CE: a small nn.Module that turns a batch into named loss terms.

This module sits below `kdlib.methods` (one file per paper) and `kdlib.train` (the loop), so
both import it and neither imports the other's package.
"""

from __future__ import annotations

import torch
from torch import nn

from .cohort import Cohort
from .losses import cross_entropy


class Method(nn.Module):
    """A distillation method.

    Subclasses take their hyperparameters as constructor arguments (paper defaults,
    table cited), own any extra trainable parts (projectors, heads) as submodules,
    and return a dict of named, *already weighted* scalar loss terms. The training
    loop sums the terms, calls ``backward`` and steps; it sets ``self.epoch`` (0-based)
    and ``self.step`` first, so schedules such as a warm-up can read them.

    A method whose loss depends only on the student's and the teacher's logits
    implements the pure ``terms_from_logits(student_logits, teacher_logits, target)``
    and keeps the default ``forward``. One definition then serves every path: the plain
    loop, the loop with the teacher's logits computed once (`train`), and the K seeds of a
    recipe trained as one computation (`kdlib.batched`), which calls the *same* function
    on (K, B, C) stacks. For that, a term reduces over the sample axis only (``mean(-1)``,
    and batch statistics over axis -2, as every loss in `kdlib.losses` does), so (B, C)
    inputs give scalars and (K, B, C) inputs one value per seed (tests/test_batched.py checks
    every logits-only method of the book). Methods that need features, extra modules, random
    draws or a custom backward override ``forward`` (and/or ``backward``) and train one seed
    at a time.

    Two hooks of the loop: ``param_groups`` gives the optimiser its parameter groups (a part that
    learns at its own rate gets its own group), and ``self.log(name, value)`` records a value per
    step that is not a loss (an entropy, a norm), which `train` returns beside the terms.

    A method that also needs one embedding of each model (a relation method: RKD), captured by a
    forward hook on the student's module ``self.layer`` and the teacher's ``self.teacher_layer``,
    implements the pure ``terms_from_outputs`` and calls it from its ``forward``; `kdlib.batched`
    then calls the same function on K seeds' stacks (`outputs_only`).
    """

    epoch: int = 0
    step: int = 0
    epochs: int | None = None
    needs_teacher: bool = True  # False: terms_from_logits gets teacher_logits=None

    def forward(self, student, teacher, batch) -> dict:
        """Default for logits-only methods: the student's and frozen teacher's logits -> terms."""
        if type(self).terms_from_logits is Method.terms_from_logits:
            raise NotImplementedError(f"{type(self).__name__}: implement forward or terms_from_logits")
        x, y = batch[0], batch[1]
        student_logits = student(x)
        teacher_logits = None
        if self.needs_teacher:
            if teacher is None:
                raise ValueError(f"{type(self).__name__} needs a teacher (teacher=None)")
            with torch.no_grad():
                teacher_logits = teacher(x)
        return self.terms_from_logits(student_logits, teacher_logits, y)

    def terms_from_logits(self, student_logits, teacher_logits, target) -> dict:
        """Pure: (..., N, C) student logits, teacher logits or None, (..., N) labels -> weighted terms.

        May read hyperparameters and ``self.epoch`` (warm-ups), nothing else that changes.
        Each term is a mean over the N samples: a scalar for (N, C), (K,) for K stacked seeds."""
        raise NotImplementedError

    def terms_from_outputs(self, student_logits, student_features, teacher_logits, teacher_features,
                           target) -> dict:
        """Pure: logits, the flattened embeddings captured at ``self.layer`` (student, (..., N, D)) and
        ``self.teacher_layer`` (frozen teacher, (..., N, Dt)), labels -> weighted terms.

        The shapes and the reduction are `terms_from_logits`'s: (N, ...) inputs give scalars,
        K stacked seeds' (K, N, ...) inputs one value per seed, (K,)."""
        raise NotImplementedError

    @property
    def outputs_only(self) -> bool:
        """True when the loss is `terms_from_outputs` of the logits and the hooked embeddings alone
        (no trainable parts are checked here; the default backward)."""
        cls = type(self)
        return cls.terms_from_outputs is not Method.terms_from_outputs and cls.backward is Method.backward

    @property
    def logits_only(self) -> bool:
        """True when the loss is `terms_from_logits` of the logits alone (default forward and backward)."""
        cls = type(self)
        return (cls.terms_from_logits is not Method.terms_from_logits and cls.forward is Method.forward
                and cls.backward is Method.backward)

    def backward(self, loss: torch.Tensor, terms: dict) -> None:
        """Default: plain backpropagation of the summed loss. Gradient surgery overrides this."""
        loss.backward()

    def param_groups(self, student, base_lr: float) -> list[dict]:
        """The optimiser's parameter groups, each ``{"params": [...], "lr": ...}``.

        Default: one group at base_lr, the student's parameters then the method's. A `Cohort` student
        whose networks have lr scales other than 1 adds one group per scale (its networks'
        parameters at base_lr * scale). A method whose own parts learn at their own rate overrides it.
        The training loop keeps each group's ratio to base_lr through its learning-rate schedule."""
        scale = student.lr_scale_by_parameter() if isinstance(student, Cohort) else {}
        groups: dict[float, list] = {}
        for p in [*student.parameters(), *self.parameters()]:
            groups.setdefault(scale.get(id(p), 1.0), []).append(p)
        return [{"params": params, "lr": base_lr * s} for s, params in groups.items()]

    def log(self, name: str, value) -> None:
        """Record `value` (a float or a 0-d tensor) for this step under `name`.

        `train` collects it after the step and appends its mean over the steps of each epoch (or
        logging interval) to ``history[name]``, beside the loss terms. A tensor is detached and kept
        on its device (no host sync per step). Outside `train` only the last value is kept."""
        if name in ("loss", "lr"):
            raise ValueError(f"{type(self).__name__}.log: {name!r} is the loop's own history key")
        value = value.detach().float() if torch.is_tensor(value) else torch.tensor(float(value))
        self.__dict__.setdefault("_logged", {})[name] = value

    def pop_logged(self) -> dict:
        """The values logged since the last call, {name: 0-d tensor}; empties the record (for the loop)."""
        return self.__dict__.pop("_logged", {})

    def predict(self, student, x):
        """Logits used at evaluation time (a method with extra heads may override)."""
        return student(x)


class CE(Method):
    """Plain supervised training with cross-entropy: the no-teacher baseline."""

    needs_teacher = False

    def terms_from_logits(self, student_logits, teacher_logits, target):
        return {"ce": cross_entropy(student_logits, target)}
