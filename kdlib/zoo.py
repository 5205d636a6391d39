"""The teacher zoo: every teacher is trained once and cached by a content hash of its spec.

A spec is a JSON-able dict (dataset, architecture, recipe, seed, ...). Its key is
the sha256 of the spec together with the source of the code that builds and
trains it (kdlib/models and the make/fit functions), so changing a model's code
retrains its teachers instead of silently loading stale weights.

On disk, ``<cache>/zoo/<key>/`` holds ``model.pt`` (a state dict) and
``meta.json`` (spec, sha256 of model.pt, measured metrics, provenance). Both are
written atomically (temp file + rename; meta.json last, so it marks a complete
entry). On load the sha256 is checked and the weights are read with
``torch.load(weights_only=True)``; a corrupt, truncated or mismatched entry is
reported in one line and retrained, never used.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import torch

from . import data as kdata
from . import deps, models, repro
from .repro import atomic_write_bytes
from .method import CE
from .train import evaluate, train


def code_version(*functions) -> str:
    """sha256 of every kdlib file that building and training a teacher touches.

    The files are those of the modules defining `functions` (the spec's make and fit) and
    everything they import, followed transitively (`kdlib.deps.files_used`): the models, the
    training loop, the data, the losses. A change to any of them retrains the teacher."""
    digest = hashlib.sha256()
    modules = {"kdlib.models", *(fn.__module__ for fn in functions)}
    for path in deps.files_used(modules):
        digest.update(path.relative_to(deps.ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def spec_key(spec: dict, make=None, fit=None) -> str:
    make, fit = make or make_classifier, fit or fit_classifier
    blob = json.dumps({"spec": spec, "code": code_version(make, fit)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def zoo_dir() -> Path:
    return kdata.cache_dir() / "zoo"


def _problem(entry: Path, key: str, make, spec):
    """None if the entry is complete and verified, else a short reason; also returns the model."""
    meta_path, weights = entry / "meta.json", entry / "model.pt"
    if not meta_path.exists():
        return "missing", None, None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return "meta.json is unreadable", None, None
    if meta.get("key") != key or meta.get("spec") != spec:
        return "its spec does not match", None, None
    if not weights.exists():
        return "model.pt is missing", None, None
    if repro.file_digest(weights) != meta.get("sha256"):
        return "sha256 mismatch (corrupt or modified checkpoint)", None, None
    model = make(spec)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - any failure to load means: do not use it
        return f"cannot be loaded ({type(err).__name__})", None, None
    return None, model, meta


def get(spec: dict, make=None, fit=None, progress: bool = True):
    """Return the trained teacher for `spec` (eval mode), training and caching it if needed.

    make(spec) -> nn.Module builds an untrained model; fit(model, spec, progress=bool) -> dict
    trains it (with a progress bar or not) and returns its measured metrics (e.g. test accuracy). Defaults handle the
    classifier specs of the book (see `make_classifier` / `fit_classifier`).
    The model carries `zoo_meta`: {"key", "path", "sha256", "metrics", ...}.
    """
    make, fit = make or make_classifier, fit or fit_classifier
    key = spec_key(spec, make, fit)
    entry = zoo_dir() / key
    problem, model, meta = _problem(entry, key, make, spec)
    if problem is None:
        model.eval()
        model.zoo_meta = {**meta, "path": str(entry)}
        return model
    if problem != "missing":
        print(f"kdlib.zoo: teacher {key} at {entry}: {problem}; retraining", file=sys.stderr)
    start = time.perf_counter()
    model = make(spec)
    metrics = fit(model, spec, progress=progress)
    buffer = _state_bytes(model)
    atomic_write_bytes(entry / "model.pt", buffer)
    meta = {
        "key": key,
        "spec": spec,
        "sha256": hashlib.sha256(buffer).hexdigest(),
        "metrics": metrics,
        "train_seconds": round(time.perf_counter() - start, 2),
        "provenance": repro.provenance(),
    }
    atomic_write_bytes(entry / "meta.json", json.dumps(meta, indent=1, sort_keys=True).encode())
    model.eval()
    model.zoo_meta = {**meta, "path": str(entry)}
    return model


def _state_bytes(model) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


# ------------------------------------------------------------ the book's classifier teachers


def make_classifier(spec: dict):
    """Build the (untrained) model of a classifier spec, seeded so that its init is fixed."""
    repro.seed_everything(spec.get("seed", 0))
    return models.build(spec["arch"], **spec.get("arch_kwargs", {}))


def fit_classifier(model, spec: dict, progress: bool = True) -> dict:
    """Train a classifier spec with cross-entropy; return its test metrics.

    spec: {"data": "digits" | "cifar100", "arch", "arch_kwargs", "seed",
    "recipe": keyword arguments of kdlib.train.train (epochs, lr, batch_size, ...),
    optional "subset" (fraction of the training split), "binary" (y mod 2),
    "data_root" and "max_train" (see kdlib.tasks.load_task)}.
    """
    from .tasks import load_task

    task = load_task(spec["data"], data_root=spec.get("data_root", ""), max_train=spec.get("max_train", 0),
                     binary=spec.get("binary", False))
    train_split = task.train
    if spec.get("subset"):
        train_split = kdata.stratified_subset(train_split, spec["subset"], seed=spec.get("seed", 0))
    model.to(task.device)
    train(model, CE(), train_split, seed=spec.get("seed", 0), augment=task.augment,
          progress=progress, desc=f"teacher {spec['arch']}", **spec.get("recipe", {}))
    metrics = evaluate(model, task.test)
    model.cpu()
    return metrics
