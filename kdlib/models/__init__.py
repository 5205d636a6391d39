"""Models: small ones for the cpu profile, the CRD CIFAR zoo for the paper profile.

Every model's forward(x) returns logits only; intermediate features are reached
with forward hooks (kdlib.hooks), never by changing a model's return value.
"""

from __future__ import annotations

from .cifar import CIFAR_MODELS
from .small import CNN1D, MLP, SmallCNN

SMALL_MODELS = {"mlp": MLP, "cnn": SmallCNN, "cnn1d": CNN1D}


def build(arch: str, **kwargs):
    """Build a model by name: 'mlp', 'cnn' (8x8 digits), 'cnn1d' (MNIST-1D), or any CRD CIFAR model ('resnet8x4', ...)."""
    if arch in SMALL_MODELS:
        return SMALL_MODELS[arch](**kwargs)
    if arch not in CIFAR_MODELS:
        names = sorted(SMALL_MODELS) + sorted(CIFAR_MODELS)
        raise ValueError(f"unknown model {arch!r}; known: {', '.join(names)}")
    return CIFAR_MODELS[arch](**kwargs)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["CIFAR_MODELS", "CNN1D", "MLP", "SmallCNN", "build", "count_parameters", "SMALL_MODELS"]
