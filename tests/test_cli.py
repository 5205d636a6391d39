"""The `kdlib` command's fixed cost: answers that need no model import no torch; the parameters cell is
read from the MyST text exactly as jupytext reads it."""

import subprocess
import sys

import pytest

from kdlib import chapters
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
