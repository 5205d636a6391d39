"""Every shell command the README and the book's intro print is run here exactly as printed (from the
repository root, virtual environment not activated), or listed below with the reason it is not."""

from __future__ import annotations

import re
import subprocess

import pytest
from kdlib.repro import REPO_ROOT

DOCS = ("README.md", "book/intro.md")

NOT_RUN_HERE = {  # command -> why the suite does not run it
    "make book": "renders the whole book; the suite builds it with -W (test_book.py)",
    "make test": "is this suite",
    ".venv/bin/kdlib run dkd --profile paper": "CIFAR-100 on a GPU for hours; the paper path runs on fake CIFAR files "
                                               "in each chapter's test",
    ".venv/bin/kdlib run hinton2015_kd --profile paper": "the same",
    ".venv/bin/kdlib run --all --profile smoke --jobs 2": "every chapter at smoke scale: test_notebooks.py runs each",
    ".venv/bin/kdlib new my_paper": "writes into the repository; test_cli.py runs `kdlib new` on a temporary tree",
}


def commands() -> list[str]:
    """The commands of every ```bash block of the docs, comments stripped, in order, without repeats."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", (REPO_ROOT / doc).read_text(), re.S):
            for line in block.splitlines():
                command = re.sub(r"\s+#.*$", "", line).strip()
                if command and command not in found:
                    found.append(command)
    return found


def test_every_printed_command_is_run_or_excused():
    printed = commands()
    assert len(printed) >= 8
    assert all(c.startswith((".venv/bin/", "make ")) for c in printed), "a command that needs an activated venv"
    assert set(NOT_RUN_HERE) <= set(printed), f"excused but no longer printed: {set(NOT_RUN_HERE) - set(printed)}"


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in commands() if c not in NOT_RUN_HERE])
def test_printed_command_works_as_printed(command):
    proc = subprocess.run(command, shell=True, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          executable="/bin/bash")
    assert proc.returncode == 0, f"{command}\n{(proc.stdout + proc.stderr)[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    if "papermill" in command:  # (plain papermill's own kernel may warn that it talks over TCP: not kdlib's)
        assert (REPO_ROOT / "_runs" / "dkd-beta4.ipynb").exists()
    else:
        assert "WARNING" not in proc.stderr, proc.stderr[-2000:]
    if "-p " in command and "papermill" not in command:  # an experiment: written outside the book, and it says so
        assert "wrote outside the book:" in proc.stdout, proc.stdout[-2000:]
