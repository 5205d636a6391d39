"""Chapters as sources: `notebooks/KEY.md` (MyST Markdown, jupytext), their parameters, and
where a run of one may write.

One rule decides where results go, for the runner and for a notebook run any other way:

* ``kdlib run KEY`` at a profile's committed parameters (cpu, paper) writes the book:
  ``book/chapters/KEY.ipynb`` and ``book/_results/KEY/PROFILE.json``. The runner tells the
  kernel where with ``KDLIB_RESULTS_PATH``.
* Everything else -- ``-p`` overrides, the smoke profile, plain papermill, a student copy,
  ``KDLIB_RESULTS_DIR`` -- writes ``<runs>/KEY/PROFILE-<params hash>/`` where ``<runs>`` is
  ``$KDLIB_RESULTS_DIR`` or ``_runs/``, and says so.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
from pathlib import Path

from . import paths

ROOT = paths.REPO_ROOT


class ChapterError(Exception):
    """A user-facing error: printed as one line, no traceback."""


def notebook_path(key: str, root: Path | None = None) -> Path:
    return Path(root or ROOT) / "notebooks" / f"{key}.md"


def all_keys(root: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (Path(root or ROOT) / "notebooks").glob("*.md") if p.stem.lower() != "readme")


def read_notebook(path: Path):
    """The chapter source as an nbformat notebook (jupytext reads the MyST Markdown)."""
    import jupytext

    path = Path(path)
    if not path.exists():
        raise ChapterError(f"no chapter source {path}")
    return jupytext.read(path)


def parameters_source(nb, name: str = "") -> str:
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ChapterError(f"{name}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    return cells[0].source


FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*(.*)$")
OPTION = re.compile(r"^:([\w-]+):\s*(.*)$")


def code_cells(text: str) -> list[tuple[list, str]]:
    """The code cells of a MyST Markdown chapter, read from its text without jupytext:
    ``(tags, source)`` of each ```{code-cell} block, in order.

    Importing jupytext costs over a second (nbformat, jsonschema), and the runner needs only the
    code: its parameters cell before it refuses a bad `-p`, its imports for staleness. Other
    fenced blocks are skipped (an example cell inside one does not count); options come from the
    `:tags: [...]` lines or a `---` YAML header. tests/test_cli.py checks that this agrees with
    jupytext on every chapter.
    """
    import yaml

    lines, cells, i = text.splitlines(), [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, info = opening.groups()
        end = i + 1
        while end < len(lines) and not re.fullmatch(rf" {{0,3}}{fence[0]}{{{len(fence)},}}\s*", lines[end]):
            end += 1
        body, i = lines[i + 1:end], end + 1
        if not info.startswith("{code-cell}"):
            continue
        options = {}
        if body[:1] == ["---"] and "---" in body[1:]:
            close = body.index("---", 1)
            options, body = yaml.safe_load("\n".join(body[1:close])) or {}, body[close + 1:]
        else:
            while body and OPTION.match(body[0]):
                key, value = OPTION.match(body[0]).groups()
                options[key], body = yaml.safe_load(value), body[1:]
        tags = (options.get("tags") or []) if isinstance(options, dict) else []
        cells.append((list(tags), "\n".join(body).strip("\n")))
    return cells


def text_parameters_source(text: str, name: str = "") -> str:
    """The source of the chapter's one cell tagged ``parameters`` (see `code_cells`)."""
    cells = [source for tags, source in code_cells(text) if "parameters" in tags]
    if len(cells) != 1:
        raise ChapterError(f"{name}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def parse_parameters(source: str, name: str = "") -> dict:
    """name -> default value of a parameters cell (flat `name = literal` lines only)."""
    params = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ChapterError(f"{name}: the parameters cell must hold only `name = literal` lines")
        try:
            params[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ChapterError(f"{name}: parameter {node.targets[0].id!r} is not a literal") from None
    return params


def notebook_parameters(path: Path) -> dict:
    """The defaults of a chapter's parameters cell (its cpu profile)."""
    path = Path(path)
    if not path.exists():
        raise ChapterError(f"no chapter source {path}")
    return parse_parameters(text_parameters_source(path.read_text(), path.name), path.name)


def chapter_parameters(key: str, namespace: dict) -> dict:
    """The values of `key`'s parameters, read from `namespace` (a notebook's globals()).

    The names come from the chapter's parameters cell, so a results file records
    exactly the chapter's parameters and nobody lists them by hand.
    """
    names = notebook_parameters(notebook_path(key))
    missing = [n for n in names if n not in namespace]
    if missing:
        raise ChapterError(f"{key}: parameters {missing} are not defined in this notebook")
    return {n: namespace[n] for n in names}


def params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:10]


def runs_root() -> Path:
    """$KDLIB_RESULTS_DIR, else _runs/ of this repository: where every non-book run writes."""
    return Path(os.environ.get("KDLIB_RESULTS_DIR") or ROOT / "_runs")


def run_dir(key: str, profile: str, params: dict) -> Path:
    return runs_root() / key / f"{profile}-{params_hash(params)}"


def book_results_path(key: str, profile: str) -> Path:
    return ROOT / "book" / "_results" / key / f"{profile}.json"


def results_path(key: str, profile: str, params: dict) -> Path:
    """Where a notebook writes its results file (the runner decides for its own runs)."""
    if os.environ.get("KDLIB_RESULTS_PATH"):
        return Path(os.environ["KDLIB_RESULTS_PATH"])
    return run_dir(key, profile, params) / "results.json"
