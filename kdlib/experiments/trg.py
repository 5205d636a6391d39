"""TRG's data and teacher: long-tailed MNIST-1D indices and the patch-transformer teacher fit (zoo make/fit).
"""

from __future__ import annotations

import torch

from .. import repro
from ..method import CE
from ..models.transformer import PatchTransformer
from ..tasks import load_task
from ..train import evaluate, train


def long_tailed_indices(labels: torch.Tensor, imbalance: float, seed: int = 0) -> torch.Tensor:
    """Indices of a long-tailed subset of a labelled split, with CIFAR-100-LT's exponential profile.

    Class c (0-based, of C) keeps n_c = floor(n_max * imbalance^(-c / (C - 1))) examples, drawn at
    random (a generator seeded with `seed`), where n_max is the smallest class's count (so every
    class can supply its quota): class 0 keeps n_max, class C - 1 keeps n_max / imbalance.
    imbalance = 1 gives a balanced subset of n_max per class. Returns sorted (M,) int64 indices.
    """
    labels = torch.as_tensor(labels).cpu()
    if labels.dim() != 1:
        raise ValueError(f"long_tailed_indices: labels must be (N,), got {tuple(labels.shape)}")
    if imbalance < 1:
        raise ValueError(f"long_tailed_indices: imbalance must be >= 1, got {imbalance}")
    classes = int(labels.max()) + 1
    if classes < 2:
        raise ValueError("long_tailed_indices: labels must hold at least two classes")
    counts = torch.bincount(labels, minlength=classes)
    n_max = int(counts.min())
    generator = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(classes):
        n_c = max(1, int(n_max * imbalance ** (-c / (classes - 1))))
        members = torch.nonzero(labels == c).flatten()
        keep.append(members[torch.randperm(len(members), generator=generator)[:n_c]])
    return torch.cat(keep).sort().values


def make_transformer(spec: dict) -> PatchTransformer:
    """The untrained PatchTransformer of a teacher spec, seeded: spec {"seed", "arch_kwargs"}."""
    repro.seed_everything(spec.get("seed", 0))
    return PatchTransformer(**spec.get("arch_kwargs", {}))


def fit_transformer(model, spec: dict, progress: bool = True) -> dict:
    """Train a PatchTransformer teacher with CE on MNIST-1D (or its long-tailed subset); return its test metrics.

    spec: {"data": "mnist1d", "seed", "arch_kwargs", "recipe" (kdlib.train.train keywords),
    "imbalance" (1: the whole training split; > 1: `long_tailed_indices` of it, drawn with "split_seed"),
    optional "device" (where to train; the weights come back to the cpu)}.
    """

    task = load_task(spec["data"])
    x, y = task.train
    if spec.get("imbalance", 1) > 1:
        idx = long_tailed_indices(y, spec["imbalance"], spec.get("split_seed", 0))
        x, y = x[idx], y[idx]
    model.to(spec.get("device", "cpu"))  # optional: the paper profile trains on a GPU
    train(model, CE(), (x, y), seed=spec.get("seed", 0), progress=progress,
          desc=f"teacher (imbalance {spec.get('imbalance', 1)})", **spec.get("recipe", {}))
    metrics = evaluate(model, task.test)
    model.cpu()
    return metrics
