"""Where the repository is, and nothing else: a torch-free module, so the `kdlib` command, the
runner and `kdlib.chapters` can find the book without paying for torch, numpy or scipy."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
