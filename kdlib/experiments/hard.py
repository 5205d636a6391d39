"""HARD's teacher fit: a teacher trained with random shifts (a zoo `fit` function).
"""

from __future__ import annotations

from functools import partial

from ..augment import random_shift
from ..method import CE
from ..tasks import load_task
from ..train import evaluate, train


def fit_shift_teacher(model, spec: dict, progress: bool = True) -> dict:
    """zoo `fit` for a teacher trained with random circular shifts of +-spec["teacher_max_shift"] samples.

    `fit_classifier` with ``augment=random_shift`` (integer shifts): cross-entropy on shifted
    training signals, so the teacher learns the invariance the student is to receive.
    Returns the teacher's test metrics on unshifted signals.
    """

    task = load_task(spec["data"], max_train=spec.get("max_train", 0))
    augment = partial(random_shift, max_shift=int(spec["teacher_max_shift"]))
    train(model, CE(), task.train, seed=spec.get("seed", 0), augment=augment,
          progress=progress, desc=f"shift teacher {spec['arch']}", **spec.get("recipe", {}))
    metrics = evaluate(model, task.test)
    model.cpu()
    return metrics
