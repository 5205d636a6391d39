"""The book builds offline with warnings as errors, and the pages it builds need no network."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kdlib.repro import REPO_ROOT

pytestmark = pytest.mark.slow

# A script or stylesheet fetched from another host: a page that needs the network to render.
REMOTE_ASSET = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)=["'](?:https?:)?//[^"']+""", re.I)


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    """One build for every test in this module (they share an xdist group, hence one worker)."""
    jb = Path(sys.executable).parent / "jupyter-book"
    out = tmp_path_factory.mktemp("book")
    proc = subprocess.run([str(jb), "build", str(REPO_ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return out / "_build" / "html"


@pytest.mark.xdist_group("book")
def test_book_builds_with_warnings_as_errors(html):
    chapter = (html / "book" / "chapters" / "hinton2015_kd.html").read_text()
    assert "<img" in chapter and "Deviations" in chapter and "Exercises" in chapter
    assert "verdict" in chapter
    assert (html / "book" / "scoreboard.html").exists()


@pytest.mark.xdist_group("book")
def test_pages_load_mathjax_and_styles_from_the_build_not_a_cdn(html):
    pages = sorted(html.rglob("*.html"))
    assert len(pages) >= 5
    for page in pages:
        text = page.read_text()
        remote = REMOTE_ASSET.findall(text)
        assert not remote, f"{page.relative_to(html)} loads {remote[0]}"
        assert "cdn.jsdelivr" not in text, f"{page.relative_to(html)} names a CDN"
    chapter = (html / "book" / "chapters" / "dkd.html").read_text()
    assert 'class="math' in chapter  # the chapter has equations to render
    assert 'src="../../_static/mathjax/tex-chtml.js"' in chapter
    mathjax = html / "_static" / "mathjax"
    assert (mathjax / "tex-chtml.js").stat().st_size > 500_000  # the full MathJax 3 bundle
    assert any((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert "custom.css" in chapter and (html / "_static" / "custom.css").exists()
