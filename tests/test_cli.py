"""The `kdlib` command's fixed cost: answers that need no model import no torch; the parameters cell is
read from the MyST text exactly as jupytext reads it."""

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from kdlib import chapters, cli, run
from kdlib.paths import REPO_ROOT

HEAVY = ("torch", "numpy", "scipy", "pandas", "jupytext")
PROBE = """
import sys
from kdlib import cli
try:
    code = cli.main({argv!r})
except SystemExit as stop:
    code = stop.code
print("rc", code, "heavy", sorted(m for m in {heavy!r} if m in sys.modules))
"""


def heavy_modules_after(*argv):
    """(exit code, stderr, heavy modules imported) of `kdlib ARGV` in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", PROBE.format(argv=list(argv), heavy=HEAVY)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("rc "), proc.stdout + proc.stderr
    code, heavy = last.split(" heavy ")
    return int(code.split()[1]), proc.stderr, heavy


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["run", "--help"]])
def test_version_and_help_import_no_torch(argv):
    code, _, heavy = heavy_modules_after(*argv)
    assert code == 0 and heavy == "[]"


def test_refused_parameter_imports_no_torch():
    code, stderr, heavy = heavy_modules_after("run", "hinton2015_kd", "--profile", "smoke", "-p", "seeds=0")
    assert code == 2 and stderr.strip().splitlines() == ["kdlib: parameter 'seeds' must be at least 1, got 0"]
    assert heavy == "[]"


@pytest.mark.parametrize("key", chapters.all_keys())
def test_parameters_read_from_the_text_agree_with_jupytext(key):
    path = chapters.notebook_path(key)
    from_jupytext = chapters.parameters_source(chapters.read_notebook(path), key)
    assert chapters.text_parameters_source(path.read_text(), key) == from_jupytext.strip("\n")


def cell(options, body="x = 1"):
    return f"```{{code-cell}}\n{options}\n\n{body}\n```\n"


def test_text_parameters_cell_forms_and_refusals():
    header = "---\ntags: [parameters]\n---"
    assert chapters.text_parameters_source(cell(header, "a = 2"), "n") == "a = 2"
    assert chapters.text_parameters_source("~~~python\n" + cell(":tags: [parameters]") + "~~~\n"
                                           + cell(":tags: [hide-input, parameters]", "b = 3"), "n") == "b = 3"
    # a cell shown as an example inside a longer fence is not a cell
    example = "````markdown\n" + cell(":tags: [parameters]") + "````\n"
    with pytest.raises(chapters.ChapterError, match="^n: expected exactly one cell tagged 'parameters', found 0$"):
        chapters.text_parameters_source(example + cell(":tags: [remove-cell]"), "n")
    with pytest.raises(chapters.ChapterError, match="found 2$"):
        chapters.text_parameters_source(cell(":tags: [parameters]") * 2, "n")


# --------------------------------------------------------------------------- kdlib new

NEW = "kd_demo"


@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    """A repository root in tmp_path for `kdlib new`: nothing is written into this checkout."""
    monkeypatch.setattr(chapters, "ROOT", tmp_path)
    monkeypatch.setattr(run, "ROOT", tmp_path)
    return tmp_path


def test_new_writes_a_chapter_that_parses_and_resolves(scratch_root):
    written = cli.new_chapter(NEW, scratch_root)
    assert sorted(p.relative_to(scratch_root).as_posix() for p in written) == sorted(
        path.format(key=NEW) for path in cli.NEW_FILES.values())
    assert not (REPO_ROOT / "notebooks" / f"{NEW}.md").exists()

    nb = chapters.read_notebook(chapters.notebook_path(NEW))
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    defaults = run.notebook_parameters(chapters.notebook_path(NEW))
    assert list(defaults)[:4] == ["profile", "pilot_seeds", "min_seeds", "seeds"] and defaults["profile"] == "cpu"
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("## ")]
    assert headings == ["## Claim", "## Method", "## Experiment", "## Results", "## Deviations", "## Exercises"]
    assert any(line == "### History of this experiment" for c in nb.cells for line in c.source.splitlines())
    colab = chapters.read_notebook(REPO_ROOT / "notebooks" / "dkd.md").cells[1]
    assert nb.cells[1].source == colab.source and nb.cells[1].metadata["tags"] == ["remove-cell"]
    assert any(c.metadata.get("tags") == ["solution", "hide-cell"] for c in nb.cells)
    assert f'KEY = "{NEW}"' in nb.cells[3].source and "{key}" not in (scratch_root / "tests" / f"test_{NEW}.py").read_text()

    smoke = run.resolve_parameters(NEW, "smoke")
    assert smoke["profile"] == "smoke" and smoke["seeds"] < defaults["seeds"]
    assert run.resolve_parameters(NEW, "paper")["dataset"] == "cifar100"
    assert run.resolve_parameters(NEW, "cpu") == {"profile": "cpu"}  # the notebook's defaults: no file
    assert not (scratch_root / "params" / NEW / "cpu.yaml").exists()


@pytest.mark.parametrize("key", ["My-Key", "Dkd", "1st", "class", "new chapter"])
def test_new_refuses_a_bad_key_in_one_line(scratch_root, capsys, key):
    assert cli.main(["new", key]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"kdlib: new: {key!r} is not a valid key") and "\n" not in err
    assert list(scratch_root.iterdir()) == []


def test_new_refuses_an_existing_chapter(scratch_root, capsys):
    (scratch_root / "params" / NEW).mkdir(parents=True)
    (scratch_root / "params" / NEW / "smoke.yaml").write_text("seeds: 1\n")
    assert cli.main(["new", NEW]) == 2
    assert capsys.readouterr().err.strip() == f"kdlib: new: params/{NEW}/smoke.yaml exists already; chapter {NEW!r} is not new"
    assert not (scratch_root / "notebooks").exists()  # refused before writing anything


def test_new_refuses_a_chapter_of_the_book():
    proc = subprocess.run([sys.executable, "-m", "kdlib", "new", "dkd"], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "kdlib: new: notebooks/dkd.md exists already; chapter 'dkd' is not new"


def test_new_is_documented_and_its_templates_are_packaged():
    assert "kdlib new" in cli.EPILOG and "kdlib new" in (REPO_ROOT / "README.md").read_text()
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["kdlib"]
    for template in cli.NEW_FILES:
        assert any(fnmatch.fnmatch(f"templates/{template}", p) for p in patterns), template


@pytest.mark.slow
def test_new_chapter_runs_at_smoke(tmp_path):
    """The skeleton executes end to end (teacher, pilot, students, results) in a scratch copy of kdlib."""
    shutil.copytree(REPO_ROOT / "kdlib", tmp_path / "kdlib", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "kdlib", "new", NEW], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and f"kdlib run {NEW} --profile smoke" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "kdlib", "run", NEW, "--profile", "smoke"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=600)  # KDLIB_RESULTS_DIR, KDLIB_CACHE: conftest.py
    assert proc.returncode == 0, proc.stderr[-3000:]
    results_file = next(Path(os.environ["KDLIB_RESULTS_DIR"]).glob(f"{NEW}/smoke-*/results.json"))
    res = json.loads(results_file.read_text())
    assert [c["id"] for c in res["claims"]] == ["kd_beats_ce"] and res["params"]["profile"] == "smoke"
    stub = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"tests/test_{NEW}.py"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert stub.returncode == 0, stub.stdout[-3000:]
