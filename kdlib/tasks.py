"""A task = the splits a chapter trains and tests on, ready for the one training loop.

Chapters switch between the cpu profile (MNIST-1D, digits) and the paper profile (CIFAR-100
under the CRD protocol) with one parameter, ``dataset``; this module hides the
difference: data as tensors on the right device, the augmentation, the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import data as kdata
from . import models, repro

# The CRD protocol (RepDistiller / mdistiller, anchors.md): 240 epochs, SGD 0.05
# (0.01 for MobileNet/ShuffleNet students), momentum 0.9, wd 5e-4, batch 64, x0.1 at 150/180/210.
CRD_RECIPE = {
    "epochs": 240, "lr": 0.05, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4,
    "batch_size": 64, "lr_milestones": [150, 180, 210], "lr_gamma": 0.1,
}
LIGHT_STUDENTS = ("mobilenetv2", "shufflenetv1", "shufflenetv2")
# The MNIST-1D recipe (github.com/greydanus/mnist1d, notebooks/train.py + mnist1d-classification.ipynb):
# Adam 1e-2, no weight decay, batch 100, 6,000 steps = 150 epochs of 4,000 signals, constant lr.
# On the book's 3,500-signal split the CNN1D reaches 91.8 +- 0.5 % test (benchmarks/mnist1d_baselines.py).
MNIST1D_RECIPE = {"epochs": 150, "lr": 1e-2, "optimizer": "adam", "weight_decay": 0.0, "batch_size": 100}
# The same 6,000 steps on the teachers' draw of 19,500 signals (`teacher_spec`'s default MNIST-1D data)
# are 30 epochs: the CNN1D reaches 96.5 % on the students' test set, with a mean top probability of
# 0.98 at T = 1 and 0.89 at T = 4 on the students' training inputs, which it has never seen.
MNIST1D_TEACHER_RECIPE = {**MNIST1D_RECIPE, "epochs": 30}


def crd_recipe(student_arch: str, epochs: int | None = None) -> dict:
    """The CRD recipe for a student, with the lr of light students and optionally fewer epochs
    (milestones scaled proportionally, so a short smoke run keeps the schedule's shape)."""
    recipe = dict(CRD_RECIPE)
    if student_arch in LIGHT_STUDENTS:
        recipe["lr"] = 0.01
    if epochs is not None and epochs != recipe["epochs"]:
        recipe["lr_milestones"] = [round(m * epochs / recipe["epochs"]) for m in recipe["lr_milestones"]]
        recipe["epochs"] = epochs
    return recipe


@dataclass
class Task:
    name: str
    train: tuple
    val: tuple | None
    test: tuple
    num_classes: int
    augment: object = None  # augment(x, generator) -> x, or None
    device: torch.device = torch.device("cpu")


# The data a dataset's teachers train on when it is not the students' split (see `teacher_spec`).
TEACHER_DATA = {"mnist1d": "mnist1d-teacher"}


def load_task(dataset: str, data_root: str = "", max_train: int = 0, device=None, binary: bool = False) -> Task:
    """'mnist1d' (3,500/500/1,000 signals of length 40), 'mnist1d-teacher' (the teachers' disjoint
    draw: 19,500/500 signals, tested on the students' 1,000 test signals), 'digits' (fixed 60/20/20
    split, flat 64-d inputs) or 'cifar100' (normalised, on `device`). The cpu-profile data are
    generated or bundled offline.

    max_train > 0 keeps a stratified slice of the training set (smoke runs).
    binary=True relabels y -> y mod 2 (few-class chapters).
    """
    if dataset in ("mnist1d", "mnist1d-teacher", "digits"):
        splits = {"mnist1d": kdata.mnist1d, "mnist1d-teacher": kdata.mnist1d_teacher, "digits": kdata.digits}[dataset]()
        train, val, test = splits["train"], splits["val"], splits["test"]
        num_classes, augment, device = 10, None, torch.device("cpu")
    elif dataset == "cifar100":
        device = torch.device(device) if device else repro.default_device()
        splits = kdata.cifar100(root=data_root or None)
        train, test = splits["train"], splits["test"]
        train = (kdata.normalize_cifar(train[0].to(device)), train[1].to(device))
        test = (kdata.normalize_cifar(test[0].to(device)), test[1].to(device))
        val, num_classes, augment = None, 100, kdata.crop_flip  # the CRD protocol has no val split
    else:
        raise ValueError(f"unknown dataset {dataset!r} (use 'mnist1d', 'mnist1d-teacher', 'digits' or 'cifar100')")
    if max_train and max_train < len(train[0]):
        train = kdata.stratified_subset(train, max_train / len(train[0]), seed=0)
    if binary:
        train, test = kdata.binarised(train), kdata.binarised(test)
        val = kdata.binarised(val) if val is not None else None
        num_classes = 2
    return Task(dataset, train, val, test, num_classes, augment, device)


FLAT_INPUT_DIMS = {"digits": 64, "mnist1d": 40, "mnist1d-teacher": 40}  # an MLP's in_dim on each flat dataset


def _arch_kwargs(arch: str, hidden, dropout: float, dataset: str = "digits") -> dict:
    if arch != "mlp":
        return {}
    kwargs = {"hidden": hidden, "dropout": dropout}
    if dataset != "digits":  # MLP's default in_dim is the digits' 64: digits specs (and zoo keys) stay unchanged
        if dataset not in FLAT_INPUT_DIMS:
            raise ValueError(f"arch 'mlp' needs a flat dataset ({', '.join(FLAT_INPUT_DIMS)}), got dataset={dataset!r}")
        kwargs["in_dim"] = FLAT_INPUT_DIMS[dataset]
    return kwargs


def make_model(arch: str, num_classes: int, hidden=(), dropout: float = 0.0, seed: int = 0,
               dataset: str = "digits"):
    """A freshly initialised model, seeded: within a seed every method starts from the same init.

    `hidden` and `dropout` apply to the MLP only; its input width follows `dataset`
    (64 for digits, 40 for MNIST-1D). Layers are built in order with the classifier
    last, so the same seed gives the same body whatever `num_classes` is.
    """
    repro.seed_everything(seed)
    return models.build(arch, num_classes=num_classes, **_arch_kwargs(arch, hidden, dropout, dataset))


def teacher_spec(dataset: str, arch: str, num_classes: int, recipe: dict, hidden=(), dropout: float = 0.0,
                 data_root: str = "", max_train: int = 0, binary: bool = False, seed: int = 0,
                 train_on: str = "") -> dict:
    """The zoo spec of a classifier teacher for `dataset`, trained with `recipe`.

    Chapters that build their teacher through this function with the same arguments
    share one zoo entry (e.g. the MNIST-1D CNN teacher is trained once for the whole book).
    train_on: the data it trains on; by default TEACHER_DATA's entry for `dataset` (MNIST-1D:
    the teachers' disjoint draw, so the teacher has not memorised the students' inputs), else
    `dataset` itself. train_on="mnist1d" gives the old teacher trained on the students' split.
    """
    spec = {
        "data": train_on or TEACHER_DATA.get(dataset, dataset), "arch": arch, "seed": seed, "recipe": recipe,
        "arch_kwargs": _arch_kwargs(arch, hidden, dropout, dataset) | {"num_classes": num_classes},
        "data_root": data_root, "max_train": max_train,
    }
    if binary:
        spec["binary"] = True
    return spec


def write_fake_cifar100(root, n_train: int = 200, n_test: int = 100, seed: int = 0):
    """Write random images in the CIFAR-100 python format under root/cifar-100-python/.

    For tests and smoke runs of the paper profile: the real loader reads them
    exactly as it reads the real files (pickled dicts with b'data', b'fine_labels').
    """
    import pickle
    from pathlib import Path

    import numpy as np

    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        entry = {
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"fine_labels": [int(i % 100) for i in range(n)],
            b"coarse_labels": [int(i % 20) for i in range(n)],
        }
        with open(folder / split, "wb") as f:
            pickle.dump(entry, f)
    return folder
