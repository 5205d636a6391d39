"""The book builds offline with warnings as errors."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kdlib.repro import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.mark.xdist_group("book")
def test_book_builds_with_warnings_as_errors(tmp_path):
    jb = Path(sys.executable).parent / "jupyter-book"
    out = tmp_path / "out"
    proc = subprocess.run([str(jb), "build", str(REPO_ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    html = out / "_build" / "html"
    chapter = (html / "book" / "chapters" / "hinton2015_kd.html").read_text()
    assert "<img" in chapter and "Deviations" in chapter and "Exercises" in chapter
    assert "verdict" in chapter
    assert (html / "book" / "scoreboard.html").exists()
    shutil.rmtree(out, ignore_errors=True)
