"""LELP's training driver: fit each seed's pseudo-subclass method, then train its C*k-way student.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..batched import train_seeds
from ..methods.lelp import SubclassTargets


@torch.no_grad()
def subclass_targets(method, teacher, data):
    """(N, C*k) training targets of a fitted `SubclassKD` / `LELP` on data = (x, y[, subclass]):
    the teacher's pseudo-subclass distribution, or for the oracle the one-hot true subclass."""
    if method.mode == "oracle":
        return F.one_hot(data[1] * method.k + data[2], method.num_classes * method.k).float()
    return method.targets(teacher, data[0])


def train_subclass_students(make_student, make_method, teacher, data_for_seed, seeds, *, augment=None, **recipe):
    """One C*k-way student per seed, taught by its own fitted method (``make_method(seed)``).

    Returns the students in the order of `seeds`. make_student(seed), data_for_seed(seed) ->
    (x, y[, subclass]) and recipe: as `kdlib.batched.train_seeds`. Without augmentation each
    seed's targets are computed once (`subclass_targets`) and the seeds train as one batched
    computation with `SubclassTargets` (the same loss as the method's, the teacher's part
    precomputed); with augmentation, one `train` per seed with the method and the teacher.
    """

    seeds = list(seeds)
    methods = {s: make_method(s) for s in seeds}
    if any(m.label_weight for m in methods.values()):
        raise ValueError("train_subclass_students: label_weight > 0 is not supported (the paper's alpha = 0)")
    if augment is not None:
        return train_seeds(make_student, lambda s: methods[s], data_for_seed, seeds, teacher=teacher,
                           augment=augment, **recipe)[0]
    oracle = {m.mode == "oracle" for m in methods.values()}
    if len(oracle) > 1 or len({m.temperature for m in methods.values()}) > 1:
        raise ValueError("train_subclass_students: every seed's method must be of one kind and temperature")
    temperature = 1.0 if oracle.pop() else methods[seeds[0]].temperature

    def with_targets(seed):
        data = data_for_seed(seed)
        return data[0], subclass_targets(methods[seed], teacher, data).to(data[1].device)

    return train_seeds(make_student, SubclassTargets(temperature), with_targets, seeds, **recipe)[0]
