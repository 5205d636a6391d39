"""Capture intermediate features with forward hooks: models keep forward(x) -> logits."""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn


class FeatureHooks:
    """Record the outputs of named submodules on every forward pass.

    >>> hooks = FeatureHooks(model, ["features"])
    >>> logits = model(x); emb = hooks["features"]   # (N, D)
    >>> hooks.remove()

    Names are those of `model.named_modules()`. Gradients flow through the captured
    tensors, so a feature loss can train the model.
    """

    def __init__(self, model: nn.Module, names):
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise KeyError(f"FeatureHooks: no module named {missing[0]!r} in {type(model).__name__}")
        self.outputs: dict = {}
        self._handles = [modules[n].register_forward_hook(self._saver(n)) for n in names]

    def _saver(self, name):
        def hook(module, inputs, output):
            self.outputs[name] = output

        return hook

    def __getitem__(self, name):
        return self.outputs[name]

    def remove(self):
        for h in self._handles:
            h.remove()
        self._handles = []


@contextmanager
def capture(model: nn.Module, names):
    """Context manager form: `with capture(model, ["features"]) as feats: model(x)`."""
    hooks = FeatureHooks(model, names)
    try:
        yield hooks
    finally:
        hooks.remove()
