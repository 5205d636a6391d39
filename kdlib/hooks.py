"""Capture intermediate features with forward hooks: models keep forward(x) -> logits."""

from __future__ import annotations

from contextlib import contextmanager

import torch
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


@torch.no_grad()
def features(model: nn.Module, x: torch.Tensor, layers=(), batch_size: int = 2048):
    """A frozen model run over all of `x` in chunks, in eval mode: ``(logits, {layer: output})``.

    The one home of "run a model over x in chunks, maybe capture a layer": the teacher cache
    (`kdlib.train.teacher_logits`), evaluation (`predict_logits`), embeddings for RKD, TCN and
    LELP, TRG's teacher tokens. Chunks go to the model's device; outputs stay there, in the
    model's dtype, concatenated over the chunks; each row is what ``model(x[idx])`` gives (a row
    of a matmul does not depend on the rest of the batch). The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits, outputs = [], {name: [] for name in layers}
    try:
        with capture(model, list(layers)) as captured:
            for i in range(0, len(x), batch_size):
                logits.append(model(x[i:i + batch_size].to(device)))
                for name in layers:
                    outputs[name].append(captured[name])
    finally:
        model.train(was_training)
    return torch.cat(logits), {name: torch.cat(chunks) for name, chunks in outputs.items()}


def stage_names(model: nn.Module) -> list[str]:
    """The names of a model's stage outputs, shallow to deep, for every family kdlib builds.

    MLP, CNN1D and the 8x8 CNN: the ReLUs of `features` (hidden layers / conv blocks);
    PatchTransformer: its embedding's and blocks' token outputs ``features.1 .. depth`` (N, P, D);
    CRD CIFAR models: ResNet / ShuffleNet ``layer1..3``, WRN ``block1..3``, VGG ``block0..4``,
    MobileNetV2 ``blocks.0..6``. Feature-distillation methods (FitNet, OFA's exit branches,
    layer matching) hook these names.
    """
    kind = type(model).__name__
    if kind == "PatchTransformer":
        return [f"features.{k}" for k in range(1, model.depth + 1)]
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return [f"features.{k}" for k, m in enumerate(features) if isinstance(m, nn.ReLU)]
    named = dict(model.named_children())
    for prefix in ("layer", "block"):
        names = sorted((n for n in named if n.startswith(prefix) and n[len(prefix):].isdigit()),
                       key=lambda n: int(n[len(prefix):]))
        if names:
            return names
    if isinstance(named.get("blocks"), nn.ModuleList):
        return [f"blocks.{k}" for k in range(len(named["blocks"]))]
    raise ValueError(f"stage_names: no known stages in {type(model).__name__}; pass the module names to FeatureHooks yourself")
