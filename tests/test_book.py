"""The scoreboard page and its forest plot; the book builds offline with warnings as errors, and
the pages it builds need no network."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import save_in
from kdlib import book, results, scoreboard
from kdlib.repro import REPO_ROOT

PARTS = {"alpha": "Part I: Logit distillation", "beta": "Part I: Logit distillation", "gamma": "Part V: LMs"}

# A script or stylesheet fetched from another host: a page that needs the network to render.
REMOTE_ASSET = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)=["'](?:https?:)?//[^"']+""", re.I)

def claim(id, diffs, kind="paper", direction="greater", delta=0.5, text=None):
    return results.claim(id, text or f"claim {id}", "paper: +1.0 points", diffs, 0.0, kind=kind, direction=direction,
                         delta=delta, delta_why="half the paper's gain", metric="test accuracy, A − B", unit="points",
                         delta_source="paper", paper_effect=1.0)


@pytest.fixture
def board(tmp_path, monkeypatch):
    root = tmp_path / "_results"
    save_in(root, "alpha", "cpu", {}, [0, 1, 2, 3, 4], [], [
        claim("a_helps", [1.0, 1.2, 0.9, 1.1, 1.0], text="alpha | helps"),
        claim("a_tiny", [0.01, -0.02, 0.0, 0.02, -0.01]),
        claim("a_same", [0.01, -0.02, 0.0, 0.02, -0.01], kind="hypothesis", direction="equivalent"),
    ])
    save_in(root, "beta", "cpu", {}, [0, 1, 2, 3, 4], [], [claim("b_hurts", [-1.0, -1.2, -0.9, -1.1, -1.0])])
    save_in(root, "beta", "smoke", {}, [0, 1], [], [claim("b_smoke", [1.0, 1.0])])
    # a results file older than the protocol: no kind, no delta
    old = results.paired_claim("g_old", "gamma helps", "p", [1.0, -2.0, 0.5], 0)
    save_in(root, "gamma", "cpu", {}, [0, 1, 2], [], [old])
    return tmp_path


def test_scoreboard_table_lists_every_claim(board):
    path = scoreboard.write_scoreboard(results_root=board / "_results", toc_keys=["alpha", "beta", "gamma"], parts=PARTS)
    text = path.read_text()
    figures = board / "_static" / "scoreboard"
    assert path == board / "scoreboard.md"
    assert sorted(p.name for p in figures.iterdir()) == ["part-i-logit-distillation.svg", "part-v-lms.svg"]
    assert "(_static/scoreboard/part-i-logit-distillation.svg)" in text and "## Part V: LMs" in text
    assert "| **all paper claims** | 4 | 1 | 2 (1) | 1 | 3 (75%) |" in text
    assert "| *the book's hypotheses* | 1 | 1 | 0 (0) | 0 | 1 (100%) |" in text
    assert "1 claim from results files older than the protocol (no delta fixed) appears in the tables only." in text
    assert "| [alpha](chapters/alpha.ipynb) | alpha \\| helps | **reproduced** | +1.04 points [" in text
    assert "| claim a_tiny | **not reproduced (negligible)** |" in text
    assert "| claim a_same *(hypothesis)* | **reproduced** |" in text
    assert "| [beta](chapters/beta.ipynb) | claim b_hurts | **not reproduced** | -1.04 points [" in text
    assert "| [gamma](chapters/gamma.ipynb) | gamma helps | **inconclusive** |" in text
    assert "b_smoke" not in text and "paper: +1.0" not in text  # no smoke runs, no paper numbers
    assert text.index("alpha | helps".replace("|", "\\|")) < text.index("b_hurts") < text.index("gamma helps")


def test_scoreboard_rows_are_oriented_and_scaled_by_delta(board):
    rows = {r["id"]: r for r in scoreboard.scoreboard_rows(board / "_results", toc_keys=None, parts=PARTS)}
    (lo, hi), mid = rows["a_helps"]["scaled"]
    assert mid == pytest.approx(1.04 / 0.5) and lo < mid < hi
    assert rows["g_old"]["scaled"] is None and rows["g_old"]["kind"] == "paper"
    assert rows["g_old"]["part"] == "Part V: LMs" and rows["a_helps"]["part"] == "Part I: Logit distillation"
    less = results.decide([claim("l", [-1.0, -1.2, -0.9, -1.1, -1.0], direction="less")])[0]
    assert less["verdict"] == results.REPRODUCED


def test_forest_plot_is_byte_identical_whoever_draws_it(board):
    rows = scoreboard.scoreboard_rows(board / "_results", parts=PARTS)
    first = scoreboard.scoreboard_svg(rows)
    book.set_style()  # a chapter's style must not leak into the page
    assert scoreboard.scoreboard_svg(rows) == first
    assert first.startswith(b"<?xml") and b"<dc:date>" not in first
    assert scoreboard.scoreboard_svg(rows[:1]) != first
    alpha = [r for r in rows if r["part"] == "Part I: Logit distillation"]
    scoreboard.write_scoreboard(results_root=board / "_results", toc_keys=None, parts=PARTS)
    written = board / "_static" / "scoreboard" / "part-i-logit-distillation.svg"
    assert written.read_bytes() == scoreboard.scoreboard_svg(alpha)
    (board / "_static" / "scoreboard" / "part-ix-gone.svg").write_text("old")
    scoreboard.write_scoreboard(results_root=board / "_results", toc_keys=None, parts=PARTS)
    assert not (board / "_static" / "scoreboard" / "part-ix-gone.svg").exists()  # a part no longer listed
    assert scoreboard.scoreboard_svg([]).startswith(b"<?xml")  # no claims yet: a placeholder, not an error


def test_scoreboard_opens_with_decided_and_underpowered_counts_per_part(board):
    rows = scoreboard.scoreboard_rows(board / "_results", parts=PARTS)
    text = scoreboard.scoreboard_markdown(rows=rows)
    counts = text[:text.index("![")]
    assert "| paper claims, cpu profile | n | reproduced | not reproduced (negligible) | inconclusive | decided" in counts
    # alpha: a_helps reproduced, a_tiny negligible (both decided); beta: b_hurts not reproduced; gamma: 1 undecided
    assert "| Part I: Logit distillation | 3 | 1 | 2 (1) | 0 | 3 (100%) | 0 (0%) |" in counts
    assert "| Part V: LMs | 1 | 0 | 0 (0) | 1 | 0 (0%) | 0 (0%) |" in counts


def test_world_check_notes_are_written_from_the_worlds_results(tmp_path):
    root = tmp_path / "_results"
    held = claim("world_mnist1d", [1.0, 1.2, 0.9, 1.1, 1.0], kind="hypothesis", text="KD beats CE")
    failed = claim("world_lm", [0.01, -0.02, 0.0, 0.02, -0.01], kind="hypothesis", text="KD beats SFT")
    save_in(root, "worlds", "cpu", {}, [0, 1, 2, 3, 4], [], [held, failed])
    written = scoreboard.write_world_checks(root)
    assert sorted(p.name for p in written) == ["lm.md", "mnist1d.md"]
    good, bad = (tmp_path / "_worlds" / "mnist1d.md").read_text(), (tmp_path / "_worlds" / "lm.md").read_text()
    assert good.startswith("**World check.** KD beats CE: +1.04") and "*reproduced*" in good
    assert "does not show the base effect" in bad and "negligible" in bad
    assert "{doc}`/book/chapters/worlds`" in good


def test_toc_parts_reads_the_captions():
    parts = scoreboard.toc_parts()
    assert parts["dkd"] == "Part I: Logit distillation"
    assert list(parts).index("hinton2015_kd") < list(parts).index("lm_divergences")


def test_committed_scoreboard_and_figure_are_generated_from_committed_results():
    from kdlib.run import toc_keys

    rows = scoreboard.scoreboard_rows(REPO_ROOT / "book" / "_results", toc_keys())
    assert (REPO_ROOT / "book" / "scoreboard.md").read_text() == scoreboard.scoreboard_markdown(rows=rows)
    figures = REPO_ROOT / "book" / "_static" / "scoreboard"
    expected = scoreboard.scoreboard_figures(rows)
    assert sorted(p.name for p in figures.glob("*.svg")) == sorted(expected)
    for name, data in expected.items():
        assert (figures / name).read_bytes() == data, name


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    """One build for every test in this module (they share an xdist group, hence one worker)."""
    jb = Path(sys.executable).parent / "jupyter-book"
    out = tmp_path_factory.mktemp("book")
    proc = subprocess.run([str(jb), "build", str(REPO_ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return out / "_build" / "html"


@pytest.mark.slow
@pytest.mark.xdist_group("book")
def test_book_builds_with_warnings_as_errors(html):
    chapter = (html / "book" / "chapters" / "hinton2015_kd.html").read_text()
    assert "<img" in chapter and "Deviations" in chapter and "Exercises" in chapter
    assert "verdict" in chapter
    assert (html / "book" / "scoreboard.html").exists()


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.xdist_group("book")
def test_readers_see_no_bookkeeping_and_no_unchecked_numbers(html):
    """Chapters hide claim construction, saving and glue; nothing says [verify]; citations resolve."""
    for page in sorted((html / "book" / "chapters").glob("*.html")):
        text = page.read_text()
        for code in ("results.save(", "book.glue(", "prereg.claims(", "chapter_parameters(", "google.colab"):
            assert code not in text, f"{page.name} shows {code}"
        assert "[verify" not in text, page.name
        assert "??" not in re.sub(r"<[^>]+>", "", text), f"{page.name} has an unresolved reference"
    scoreboard = (html / "book" / "scoreboard.html").read_text()
    body = scoreboard[scoreboard.index("<h1"):]
    figure = body.index("<img")
    assert body.index("<table") < figure < body.index("<table", figure)  # counts first, then figure and its table


def test_glue_writes_what_myst_nb_glue_writes(monkeypatch):
    """kdlib.book.glue avoids importing myst_nb (about 2 s a chapter); its display data must stay the same."""
    import IPython
    import IPython.display
    import myst_nb.ext.glue as myst_glue

    from kdlib import book

    calls = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(myst_glue, "ipy_display", lambda *a, **k: calls.append((a, k)))
    for value in ("63.2 %", 0.5, "**bold**"):
        for display in (False, True):
            calls.clear()
            book.glue("x", value, display=display)
            myst_glue.glue("x", value, display=display)
            assert len(calls) == 2 and calls[0] == calls[1]
    assert book.GLUE_PREFIX == myst_glue.GLUE_PREFIX


@pytest.mark.slow
@pytest.mark.xdist_group("book")
def test_every_page_is_clean_in_a_browser(html):
    """Headless Chromium (Playwright) over the intro, the reading pages and every chapter, served locally
    with the network cut: no console error, no request to another host, every image loads, and no page
    is wider than a 1,280 px window (code, output and equation scrollers excepted)."""
    import browser

    if browser.chromium_path() is None:
        pytest.skip("no Chromium: install Debian's `chromium` (or set KDLIB_CHROMIUM) to run the browser test")
    pytest.importorskip("playwright", reason="playwright is not installed (pip install -e '.[test]')")
    pages = browser.book_pages(html)
    assert len(pages) >= 10 and any("chapters/" in p for p in pages)
    problems = browser.check_pages(html, pages)
    assert not problems, "\n".join(problems[:20])
