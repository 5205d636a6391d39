"""Mixup-KD's teacher fit: a teacher trained with mixup (a zoo `fit` function and its spec).
"""

from __future__ import annotations

from ..methods.mixup_kd import MixupCE
from ..tasks import load_task
from ..train import evaluate, train


def mixup_teacher_spec(spec: dict, beta_a: float = 1.0) -> dict:
    """The zoo spec of `spec`'s teacher trained with full mixup instead of CE (its own zoo key)."""
    return {**spec, "mixup_beta_a": float(beta_a)}


def fit_mixup_teacher(model, spec: dict, progress: bool = True) -> dict:
    """zoo `fit` for a `mixup_teacher_spec`: `fit_classifier` with `MixupCE` instead of CE."""

    task = load_task(spec["data"], data_root=spec.get("data_root", ""), max_train=spec.get("max_train", 0))
    model.to(task.device)
    method = MixupCE(spec["mixup_beta_a"], spec["arch_kwargs"]["num_classes"], seed=spec.get("seed", 0))
    train(model, method, task.train, seed=spec.get("seed", 0), augment=task.augment,
          progress=progress, desc=f"mixup teacher {spec['arch']}", **spec.get("recipe", {}))
    metrics = evaluate(model, task.test)
    model.cpu()
    return metrics
