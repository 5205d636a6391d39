"""Shared test set-up: everything offline, caches and results in temporary folders."""

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _isolated_dirs(tmp_path_factory):
    """Teachers and results of the tests never touch the user's cache or book/_results."""
    root = tmp_path_factory.mktemp("kdlib")
    old = {k: os.environ.get(k) for k in ("KDLIB_CACHE", "KDLIB_RESULTS_DIR", "KDLIB_THREADS")}
    os.environ["KDLIB_CACHE"] = str(root / "cache")
    os.environ["KDLIB_RESULTS_DIR"] = str(root / "results")
    os.environ["KDLIB_THREADS"] = "1"  # pytest -n 2 already uses both cores
    torch.set_num_threads(1)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def one_thread():
    """Bit-identity (batched == one run per seed) is a one-thread property: several threads may split
    reductions differently. Restores the thread count afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def logits():
    """Seeded student / teacher logits and targets, (8, 10)."""
    g = torch.Generator().manual_seed(0)
    student = torch.randn(8, 10, generator=g)
    teacher = 2.0 * torch.randn(8, 10, generator=g)
    target = torch.randint(0, 10, (8,), generator=g)
    return student, teacher, target


def save_in(root, key, profile, params, *args, **kwargs):
    """What `kdlib run` does with a chapter's `results.save`: the kernel writes its science to the
    path the runner gives it, the runner wraps it in the envelope into root/KEY/PROFILE.json (the
    layout of book/_results). Returns the path."""
    import json

    from kdlib import results

    path = root / key / f"{profile}.json"
    old = os.environ.get("KDLIB_RESULTS_PATH")
    os.environ["KDLIB_RESULTS_PATH"] = str(path)
    try:
        results.save(key, profile, *args, **kwargs)
    finally:
        if old is None:
            os.environ.pop("KDLIB_RESULTS_PATH")
        else:
            os.environ["KDLIB_RESULTS_PATH"] = old
    record = results.envelope(key, profile, params, results.read(path), input_hash="test")
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def one_train_per_seed(seeds, make_student, method, data_for_seed, teacher, **recipe):
    """What `kdlib.batched.train_seeds` must equal: one `train` per seed, the one loop of the book.
    Returns (students, histories) in the order of `seeds`."""
    from kdlib.train import train

    students, histories = [], []
    for seed in seeds:
        student = make_student(seed)
        histories.append(train(student, method, data_for_seed(seed), teacher=teacher, seed=seed,
                               progress=False, **recipe))
        students.append(student)
    return students, histories


def _book_state():
    import subprocess

    from kdlib.repro import REPO_ROOT

    proc = subprocess.run(["git", "status", "--porcelain", "--", "book", "notebooks", "params"], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def pytest_sessionstart(session):
    session.config._kdlib_book_state = _book_state()


def pytest_sessionfinish(session, exitstatus):
    """No test may change the book, the chapter sources or the parameter files (experiments never
    overwrite the book): the suite fails if `git status` of those folders changed while it ran."""
    if hasattr(session.config, "workerinput"):  # xdist workers: the controller checks once
        return
    before, after = getattr(session.config, "_kdlib_book_state", None), _book_state()
    if before is not None and after is not None and after != before:
        changed = sorted(set(after.splitlines()) ^ set(before.splitlines()))
        print(f"\nthe test suite changed tracked book files: {changed}")
        session.exitstatus = 1
