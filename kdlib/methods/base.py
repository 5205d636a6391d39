"""The Method base class: a small nn.Module that turns a batch into named loss terms."""

from __future__ import annotations

import torch
from torch import nn

from ..losses import cross_entropy, stacked


class Method(nn.Module):
    """A distillation method.

    Subclasses take their hyperparameters as constructor arguments (paper defaults,
    table cited), own any extra trainable parts (projectors, heads) as submodules,
    and return a dict of named, *already weighted* scalar loss terms. The training
    loop sums the terms, calls ``backward`` and steps; it sets ``self.epoch`` (0-based)
    and ``self.step`` first, so schedules such as a warm-up can read them.

    A method whose loss depends only on the student's and the teacher's logits
    implements the pure ``terms_from_logits(student_logits, teacher_logits, target)``
    and keeps the default ``forward``. One definition then serves three paths: the
    plain loop, the loop with the teacher's logits computed once (`train`), and the
    seeds of a recipe trained as one batched computation (`kdlib.batched`), where it is
    vmapped over the seeds. Methods that need features, extra modules, random draws or
    a custom backward override ``forward`` (and/or ``backward``) instead.
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
        """Pure: (N, C) student logits, (N, C) teacher logits or None, (N,) labels -> weighted terms.

        May read hyperparameters and ``self.epoch`` (warm-ups), nothing else that changes:
        it is vmapped over the seeds of a batched run."""
        raise NotImplementedError

    def terms_from_stacked_logits(self, student_logits, teacher_logits, target) -> dict:
        """Optional, for speed: the same terms for K seeds at once, each a (K,) tensor.

        (K, B, C) student and teacher logits, (K, B) labels. Must equal ``terms_from_logits``
        of each seed bit for bit (use `kdlib.losses.stacked`); without it, `kdlib.batched`
        vmaps ``terms_from_logits``, which is general but several times slower."""
        raise NotImplementedError

    @property
    def has_stacked_form(self) -> bool:
        """True when the class that defines ``terms_from_logits`` also defines its stacked form
        (a subclass that changes the loss does not inherit a stale stacked form)."""
        owner = next(c for c in type(self).__mro__ if "terms_from_logits" in vars(c))
        return "terms_from_stacked_logits" in vars(owner)

    @property
    def logits_only(self) -> bool:
        """True when the loss is `terms_from_logits` of the logits alone (default forward and backward)."""
        cls = type(self)
        return (cls.terms_from_logits is not Method.terms_from_logits and cls.forward is Method.forward
                and cls.backward is Method.backward)

    def backward(self, loss: torch.Tensor, terms: dict) -> None:
        """Default: plain backpropagation of the summed loss. Gradient surgery overrides this."""
        loss.backward()

    def predict(self, student, x):
        """Logits used at evaluation time (a method with extra heads may override)."""
        return student(x)


class CE(Method):
    """Plain supervised training with cross-entropy: the no-teacher baseline."""

    needs_teacher = False

    def terms_from_logits(self, student_logits, teacher_logits, target):
        return {"ce": cross_entropy(student_logits, target)}

    def terms_from_stacked_logits(self, student_logits, teacher_logits, target):
        return {"ce": stacked.cross_entropy(student_logits, target)}
