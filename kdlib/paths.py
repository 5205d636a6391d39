"""Where the repository is, and what a run records about it (git state, package versions): a
torch-free module, so the `kdlib` command and the runner find the book and write a results file's
envelope without paying for torch, numpy or scipy."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "transformers", "papermill", "kdlib")


def git_state(root: Path = REPO_ROOT) -> dict:
    """The commit and whether the work tree differs from it (None outside a git checkout)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)

    try:
        sha = git("rev-parse", "HEAD")
        # book/ holds the outputs of runs: a chapter written earlier in `kdlib run --all` is not a dirty input
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)book")
    except (OSError, subprocess.TimeoutExpired):
        return {"sha": None, "dirty": None}
    if sha.returncode != 0:
        return {"sha": None, "dirty": None}
    return {"sha": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def envelope(key, profile, params, science, input_hash) -> dict:
    """The results file: the run's envelope (written by whoever ran it) around the kernel's science."""
    ran = science.get("ran", {})
    return {
        "key": key,
        "profile": profile,
        "params": params,
        **{k: v for k, v in science.items() if k != "ran"},
        "provenance": {
            "git": git_state(),
            "packages": package_versions(),
            "hardware": ran.get("hardware"),
            "durations": ran.get("durations", {}),
            "input_hash": input_hash,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
