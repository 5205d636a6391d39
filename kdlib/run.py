"""The papermill runner: ``kdlib run NAME|--all --profile smoke|cpu|paper [-p key=value ...] [--force]``.

* Parameters come from ``params/NAME/PROFILE.yaml`` plus ``-p`` overrides; every one
  is checked against the notebook's ``parameters`` cell (name and type) before
  anything runs, and a bad one ends the command with one line naming it.
* A chapter is skipped when the hash of (notebook, resolved parameters, kdlib
  source) matches the ``input_hash`` recorded in its results file.
* cpu-profile runs (the book's) are written to ``book/chapters/NAME.ipynb``; other
  profiles to ``_runs/NAME/PROFILE.ipynb``. A failing cell is reported as its number
  and error, and the partial notebook is kept beside for inspection.
* ``kdlib student NAME|--all`` writes student copies without solution cells.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

from . import repro

ROOT = repro.REPO_ROOT
PROFILES = ("smoke", "cpu", "paper")
BOOK_PROFILE = "cpu"


class RunError(Exception):
    """A user-facing error: printed as one line, no traceback."""


# --------------------------------------------------------------------------- parameters


def notebook_path(key: str) -> Path:
    return ROOT / "notebooks" / f"{key}.ipynb"


def all_keys() -> list[str]:
    return sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


def notebook_parameters(path: Path) -> dict:
    """name -> default value, read from the cell tagged `parameters` (flat literals only)."""
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise RunError(f"{path.name}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    source = "".join(cells[0]["source"])
    params = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise RunError(f"{path.name}: the parameters cell must hold only `name = literal` lines")
        try:
            params[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise RunError(f"{path.name}: parameter {node.targets[0].id!r} is not a literal") from None
    return params


def _type_name(value) -> str:
    return type(value).__name__


def check_value(name: str, value, default):
    """Return `value` coerced to the type of `default`, or raise RunError naming the parameter."""
    if default is None or value is None:
        return value
    expected = type(default)
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise RunError(
            f"parameter {name!r} expects {expected.__name__} (default {default!r}), got {value!r} ({_type_name(value)})"
        )
    return value


def parse_overrides(pairs) -> dict:
    """['temperature=4', 'seeds=[0,1]'] -> {'temperature': 4, 'seeds': [0, 1]} (values read as YAML)."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise RunError(f"-p {pair!r}: expected key=value")
        name, raw = pair.split("=", 1)
        try:
            out[name.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[name.strip()] = raw
    return out


def resolve_parameters(key: str, profile: str, overrides: dict | None = None) -> dict:
    """Notebook defaults <- params/KEY/PROFILE.yaml <- overrides, each name and type checked."""
    defaults = notebook_parameters(notebook_path(key))
    file = ROOT / "params" / key / f"{profile}.yaml"
    from_file = {}
    if file.exists():
        try:
            from_file = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as err:
            raise RunError(f"{file.relative_to(ROOT)}: invalid YAML ({err.__class__.__name__})") from None
        if not isinstance(from_file, dict):
            raise RunError(f"{file.relative_to(ROOT)}: expected a mapping of parameter: value")
    elif profile != BOOK_PROFILE:
        raise RunError(f"no parameter file {file.relative_to(ROOT)} for profile {profile!r}")
    resolved = {"profile": profile}
    for source, values in ((str(file.relative_to(ROOT)), from_file), ("-p", overrides or {})):
        for name, value in values.items():
            if name not in defaults:
                known = ", ".join(sorted(defaults))
                raise RunError(f"unknown parameter {name!r} for {key} (in {source}); known: {known}")
            resolved[name] = check_value(name, value, defaults[name])
    return resolved


# --------------------------------------------------------------------------- staleness


def _module_file(name: str) -> Path | None:
    """kdlib.a.b -> kdlib/a/b.py or kdlib/a/b/__init__.py (None if no such module)."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def _imports(source: str, package: str) -> set[str]:
    """kdlib modules named by the import statements of `source` (inside `package`)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "kdlib"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y / from .. import z
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "kdlib":
                continue
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # submodules imported by name
    return found


def kdlib_modules_used(notebook: Path) -> list[Path]:
    """The kdlib source files a notebook depends on: its kdlib imports, followed transitively."""
    nb = json.loads(notebook.read_text())
    todo, files = set(), set()
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        # IPython magics and shell escapes are not Python: blank them before parsing
        source = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln
                           for ln in "".join(cell["source"]).splitlines())
        try:
            todo |= _imports(source, "kdlib")
        except SyntaxError:  # not plain Python: fall back to its single-line imports
            lines = [ln.strip() for ln in source.splitlines() if ln.lstrip().startswith(("import ", "from "))]
            todo |= _imports("\n".join(lines), "kdlib")
    seen = set()
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
            sub = ".".join(parts[:i])
            if sub in seen:
                continue
            seen.add(sub)
            path = _module_file(sub)
            if path is None:
                continue
            files.add(path)
            package = sub if path.name == "__init__.py" else ".".join(sub.split(".")[:-1])
            todo |= _imports(path.read_text(), package)
    return sorted(files)


def kdlib_source_hash(notebook: Path) -> str:
    """sha256 over the kdlib files the notebook uses (the runner itself never changes results)."""
    digest = hashlib.sha256()
    for path in kdlib_modules_used(notebook):
        if path == ROOT / "kdlib" / "run.py":
            continue
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def input_hash(key: str, params: dict) -> str:
    digest = hashlib.sha256()
    digest.update(notebook_path(key).read_bytes())
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(kdlib_source_hash(notebook_path(key)).encode())
    return digest.hexdigest()[:24]


def output_path(key: str, profile: str) -> Path:
    if profile == BOOK_PROFILE:
        return ROOT / "book" / "chapters" / f"{key}.ipynb"
    return ROOT / "_runs" / key / f"{profile}.ipynb"


def is_current(key: str, profile: str, digest: str) -> bool:
    from . import results

    res = results.load(key, profile)
    return bool(res) and res.get("provenance", {}).get("input_hash") == digest and output_path(key, profile).exists()


# --------------------------------------------------------------------------- execution


def execute(key: str, profile: str, params: dict, digest: str) -> Path:
    """Run the notebook with papermill; on success stamp the results file with `digest`."""
    import papermill as pm

    from . import results
    from .repro import atomic_write_bytes

    out = output_path(key, profile)
    out.parent.mkdir(parents=True, exist_ok=True)
    # the partial notebook lives outside the book tree: an interrupted run leaves nothing there
    scratch = ROOT / "_runs" / ".tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=scratch, prefix=f"{key}.", suffix=".ipynb")
    os.close(fd)
    # the notebook records this in its results file; only a successful run makes it current
    os.environ["KDLIB_INPUT_HASH"] = f"pending:{digest}"
    # this interpreter's kernelspec first, so a user-level `python3` kernel cannot shadow the venv
    venv_share = str(Path(sys.prefix) / "share" / "jupyter")
    if venv_share not in os.environ.get("JUPYTER_PATH", ""):
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [venv_share, os.environ.get("JUPYTER_PATH")]))
    try:
        pm.execute_notebook(
            str(notebook_path(key)), tmp, parameters=params, kernel_name="python3",
            cwd=str(ROOT), progress_bar=sys.stderr.isatty(), log_output=False, request_save_on_cell_execute=False,
        )
    except pm.PapermillExecutionError as err:
        failed = ROOT / "_runs" / key / f"{profile}.failed.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, failed)
        raise RunError(
            f"{key} ({profile}) failed in cell {err.cell_index} [execution count {err.exec_count}]: "
            f"{err.ename}: {err.evalue.splitlines()[0] if err.evalue else ''} — notebook kept at {failed.relative_to(ROOT)}"
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        os.environ.pop("KDLIB_INPUT_HASH", None)
    os.replace(tmp, out)
    res = results.load(key, profile)
    if res is None:
        raise RunError(f"{key} ({profile}) ran but wrote no results file {results.results_dir() / key}/{profile}.json")
    res["provenance"]["input_hash"] = digest
    path = results.results_dir() / key / f"{profile}.json"
    atomic_write_bytes(path, (json.dumps(res, indent=1) + "\n").encode())
    return out


def toc_keys() -> list[str]:
    toc = ROOT / "_toc.yml"
    text = toc.read_text() if toc.exists() else ""
    return [k for k in all_keys() if f"chapters/{k}" in text]


def run(keys, profile: str, overrides: dict, force: bool = False) -> int:
    from .book import write_scoreboard

    plans = []
    for key in keys:  # validate everything before running anything
        if not notebook_path(key).exists():
            raise RunError(f"no chapter {key!r}; known: {', '.join(all_keys())}")
        params = resolve_parameters(key, profile, overrides)
        plans.append((key, params, input_hash(key, params)))
    for key, params, digest in plans:
        if not force and is_current(key, profile, digest):
            print(f"kdlib run: {key} ({profile}) is current, skipped")
            continue
        print(f"kdlib run: {key} ({profile}) executing ...", flush=True)
        out = execute(key, profile, params, digest)
        print(f"kdlib run: {key} ({profile}) -> {out.relative_to(ROOT)}")
    write_scoreboard(toc_keys=toc_keys())
    return 0


# --------------------------------------------------------------------------- student copies


def student_copy(key: str, dest_dir: Path) -> Path:
    """The chapter without its solution cells (tag `solution`), for handing out."""
    nb = json.loads(notebook_path(key).read_text())
    cells = []
    for cell in nb["cells"]:
        if "solution" in cell.get("metadata", {}).get("tags", []):
            cells.append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                          "source": ["# your solution here\n"]})
        else:
            cells.append(cell)
    nb["cells"] = cells
    dest = dest_dir / f"{key}.ipynb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1) + "\n")
    return dest


# --------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="kdlib", description="Run the book's chapters with papermill.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute chapters at a profile")
    p_run.add_argument("name", nargs="?", help="chapter key (notebooks/NAME.ipynb)")
    p_run.add_argument("--all", action="store_true", help="every chapter")
    p_run.add_argument("--profile", choices=PROFILES, default=BOOK_PROFILE)
    p_run.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override a parameter")
    p_run.add_argument("--force", action="store_true", help="run even if current")
    p_student = sub.add_parser("student", help="write student copies without solutions")
    p_student.add_argument("name", nargs="?")
    p_student.add_argument("--all", action="store_true")
    p_student.add_argument("--out", default=str(ROOT / "_build" / "student"))
    args = parser.parse_args(argv)
    try:
        if bool(args.name) == bool(args.all):
            raise RunError("give a chapter NAME or --all (not both)")
        keys = all_keys() if args.all else [args.name]
        if args.command == "student":
            for key in keys:
                print(student_copy(key, Path(args.out)))
            return 0
        if args.all and args.param:
            raise RunError("-p applies to one chapter; drop --all")
        return run(keys, args.profile, parse_overrides(args.param), args.force)
    except RunError as err:
        print(f"kdlib: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
