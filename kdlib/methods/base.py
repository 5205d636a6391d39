"""The Method base class: a small nn.Module that turns a batch into named loss terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Method(nn.Module):
    """A distillation method.

    Subclasses take their hyperparameters as constructor arguments (paper defaults,
    table cited), own any extra trainable parts (projectors, heads) as submodules,
    and implement ``forward(student, teacher, batch) -> dict`` of named,
    *already weighted* scalar loss terms. The training loop sums the terms, calls
    ``backward`` and steps; it sets ``self.epoch`` (0-based) and ``self.step`` first,
    so schedules such as a warm-up can read them.
    """

    epoch: int = 0
    step: int = 0
    epochs: int | None = None

    def forward(self, student, teacher, batch) -> dict:
        raise NotImplementedError

    def backward(self, loss: torch.Tensor, terms: dict) -> None:
        """Default: plain backpropagation of the summed loss. Gradient surgery overrides this."""
        loss.backward()

    def predict(self, student, x):
        """Logits used at evaluation time (a method with extra heads may override)."""
        return student(x)


class CE(Method):
    """Plain supervised training with cross-entropy: the no-teacher baseline."""

    def forward(self, student, teacher, batch):
        x, y = batch[0], batch[1]
        return {"ce": F.cross_entropy(student(x), y)}
