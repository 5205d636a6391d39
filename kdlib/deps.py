"""kdlib's import graph, read from the source without importing anything (no torch).

One function, `imports`, reads the kdlib modules a piece of source imports. Three users:

* the runner's staleness (`files_used`): a chapter's results depend on the kdlib files its
  imports reach, with a name taken from a package counted where it is *defined*
  (``from kdlib.methods import KD`` is kdlib/methods/kd.py, not the package's ``__init__``), so
  registering a new method does not make every chapter stale;
* the zoo's code version (`files_used` of the modules that build and train a teacher): a change
  to anything a teacher's training touches (the loop, the data, the losses) retrains it;
* the tests (`module_graph`): what Python *executes* on import, parent packages' ``__init__``
  included, must form no cycle, so every module imports alone in a fresh interpreter.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

from .paths import REPO_ROOT as ROOT

PACKAGE_DIR = ROOT / "kdlib"


def module_file(name: str) -> Path | None:
    """kdlib.a.b -> kdlib/a/b.py or kdlib/a/b/__init__.py (None if no such module)."""
    if name.split(".")[0] != "kdlib":
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def module_name(path: Path) -> str:
    parts = list(Path(path).resolve().relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in _tree(path).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def defining_module(package: str, name: str) -> str:
    """The module that defines `package.name`, read statically from the package's ``__init__``.

    A submodule is itself; a name the ``__init__`` re-exports (``from .kd import KD``, a star
    import, or a lazy ``_WHERE = {"KD": "kd"}`` table) is its source module; else the package."""
    if module_file(f"{package}.{name}") is not None:
        return f"{package}.{name}"
    init = module_file(package)
    if init is None or init.name != "__init__.py":
        return package
    for node in _tree(init).body:
        if isinstance(node, ast.ImportFrom):
            source = _resolve(node, package)
            if any(a.name == name or (a.asname == name) for a in node.names):
                return defining_module(*source.rsplit(".", 1)) if module_file(source) is None else source
            if any(a.name == "*" for a in node.names) and module_file(source) and name in _top_level_names(module_file(source)):
                return source
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_WHERE" for t in node.targets)
                and isinstance(node.value, ast.Dict)):
            table = ast.literal_eval(node.value)
            if name in table:
                return f"{package}.{table[name]}"
    return package


def _resolve(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


def imports(source: str, package: str, where_defined: bool) -> set[str]:
    """The kdlib modules that `source` (code inside `package`) imports, at any depth of the code.

    where_defined=True: a name taken from a package counts as the module that defines it (what the
    code *uses*); False: as the package itself, whose ``__init__`` Python runs (what is *executed*).
    A submodule named in ``from pkg import sub`` counts as that submodule either way."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if module_file(a.name) is not None}
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, package)
            if module_file(base) is None:
                continue
            if module_file(base).name != "__init__.py":
                found.add(base)  # a plain module: the names come from it
                continue
            for alias in node.names:
                if alias.name == "*" or not where_defined:
                    found.add(base)
                if alias.name != "*":
                    sub = f"{base}.{alias.name}"
                    if module_file(sub) is not None:
                        found.add(sub)
                    elif where_defined:
                        found.add(defining_module(base, alias.name))
    return found


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def files_used(modules) -> list[Path]:
    """The kdlib source files that `modules` (names) use, followed transitively (`where_defined`).

    Package ``__init__`` files count only where a package is used as a whole; the top-level
    ``kdlib/__init__.py`` holds the version string only and is never counted."""
    todo, seen, files = set(modules), set(), set()
    while todo:
        name = todo.pop()
        if name in seen or name == "kdlib":
            continue
        seen.add(name)
        path = module_file(name)
        if path is None:
            continue
        files.add(path)
        todo |= _file_imports(path, _package_of(name, path))
    return sorted(files)


@lru_cache(maxsize=None)
def _file_imports(path: Path, package: str) -> frozenset:
    """`imports` of a kdlib file (where_defined), read once per process: `kdlib list` follows the
    same files for every chapter."""
    return frozenset(imports(path.read_text(), package, where_defined=True))


def module_graph() -> dict[str, set[str]]:
    """Every kdlib module -> the kdlib modules its source imports, packages as packages (what
    Python executes). A package's ``__init__`` also runs before each of its modules; that order
    is checked for real by importing every module alone (tests/test_imports.py)."""
    graph = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        name = module_name(path)
        found = imports(path.read_text(), _package_of(name, path), where_defined=False)
        graph[name] = {d for d in found if d != name}
    return graph
