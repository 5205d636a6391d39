"""The papermill runner: ``kdlib run NAME|--all [--profile smoke|cpu|paper] [-p key=value ...] [--force]``.

* A chapter's source is ``notebooks/NAME.md`` (MyST Markdown); jupytext reads it and
  papermill executes it.
* Parameters come from the notebook's ``parameters`` cell (the cpu profile), then
  ``params/NAME/PROFILE.yaml``, then ``-p`` overrides; each is checked by name, type and
  range before a kernel starts, and a bad one ends the command with one line naming it.
* Only a run at a profile's committed parameters writes the book (see `kdlib.chapters`);
  anything else writes ``_runs/NAME/PROFILE-<hash>/`` and prints the path.
* A book chapter is skipped when the hash of (notebook, parameters, kdlib source) matches
  both its results file and its executed notebook. A chapter is locked while it runs;
  Ctrl-C and failures leave nothing half-written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import yaml

from . import chapters, deps, paths
from .chapters import ChapterError as RunError
from .chapters import all_keys, notebook_parameters, notebook_path, read_notebook

ROOT = paths.REPO_ROOT  # not repro: the runner must refuse a bad -p without importing torch
PROFILES = ("smoke", "cpu", "paper")
BOOK_PROFILE = "cpu"
BOOK_PROFILES = ("cpu", "paper")  # profiles whose committed-parameter runs write book/
# parameters that count something: must be >= 1
POSITIVE = {"seeds", "pilot_seeds", "epochs", "steps", "batch_size", "seq_len", "teacher_epochs"}
# rates, weights and fractions: never negative (other numbers may use -1 as "none")
NON_NEGATIVE = re.compile(r"(^|_)(lr|rate|weight_decay|momentum|dropout|temperatures?|subset|alpha|beta|ratio)$")


# --------------------------------------------------------------------------- parameters


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
        raise RunError(f"parameter {name!r} expects {expected.__name__} (default {default!r}), "
                       f"got {value!r} ({type(value).__name__})")
    if isinstance(value, list) and default:
        kinds = {type(v) for v in default}
        if kinds <= {int, float}:  # numbers: ints are fine where floats are expected
            kinds = {float, int} if float in kinds else {int}
        for i, v in enumerate(value):
            if type(v) not in kinds:
                raise RunError(f"parameter {name!r}: element {i} is {v!r} ({type(v).__name__}), "
                               f"expected {' or '.join(sorted(k.__name__ for k in kinds))}")
    _check_range(name, value, default)
    return value


def _check_range(name, value, default):
    """Counts are >= 1; rates, weights and fractions are >= 0."""
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if name in POSITIVE and v < 1:
            raise RunError(f"parameter {name!r} must be at least 1, got {v!r}")
        if v < 0 and NON_NEGATIVE.search(name):
            raise RunError(f"parameter {name!r} must not be negative, got {v!r}")


def parse_overrides(pairs) -> dict:
    """['temperature=4', 'seeds=[0,1]'] -> {'temperature': 4, 'seeds': [0, 1]} (values read as YAML)."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise RunError(f"-p {pair!r}: expected key=value")
        name, raw = pair.split("=", 1)
        if name.strip() == "profile":
            raise RunError(f"-p {pair!r}: the profile is chosen with --profile, not -p")
        try:
            out[name.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[name.strip()] = raw
    return out


def profile_file(key: str, profile: str) -> dict:
    file = ROOT / "params" / key / f"{profile}.yaml"
    if not file.exists():
        if profile == BOOK_PROFILE:
            return {}
        raise RunError(f"no parameter file {file.relative_to(ROOT)} for profile {profile!r}")
    try:
        values = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as err:
        raise RunError(f"{file.relative_to(ROOT)}: invalid YAML ({err.__class__.__name__})") from None
    if not isinstance(values, dict):
        raise RunError(f"{file.relative_to(ROOT)}: expected a mapping of parameter: value")
    return values


def resolve_parameters(key: str, profile: str, overrides: dict | None = None) -> dict:
    """Notebook defaults <- params/KEY/PROFILE.yaml <- overrides, each name, type and range checked."""
    defaults = notebook_parameters(notebook_path(key))
    resolved = {"profile": profile}
    source_file = f"params/{key}/{profile}.yaml"
    for source, values in ((source_file, profile_file(key, profile)), ("-p", overrides or {})):
        for name, value in values.items():
            if name not in defaults:
                raise RunError(f"unknown parameter {name!r} for {key} (in {source}); known: {', '.join(sorted(defaults))}")
            resolved[name] = check_value(name, value, defaults[name])
    return resolved


# --------------------------------------------------------------------------- staleness


def kdlib_modules_used(notebook: Path) -> list[Path]:
    """The kdlib source files a notebook depends on: its kdlib imports, followed transitively
    (`kdlib.deps.files_used`: a name taken from a package counts where it is defined)."""
    used = set()
    if not Path(notebook).exists():
        raise RunError(f"no chapter source {notebook}")
    for _, cell in chapters.code_cells(Path(notebook).read_text()):
        # IPython magics and shell escapes are not Python: blank them before parsing
        source = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in cell.splitlines())
        try:
            used |= deps.imports(source, "kdlib", where_defined=True)
        except SyntaxError:  # not plain Python: fall back to its single-line imports
            lines = [ln.strip() for ln in source.splitlines() if ln.lstrip().startswith(("import ", "from "))]
            used |= deps.imports("\n".join(lines), "kdlib", where_defined=True)
    return deps.files_used(used)


# the runner and the CLI never change a chapter's results
NOT_HASHED = ("kdlib/run.py", "kdlib/cli.py")


def kdlib_source_hash(notebook: Path) -> str:
    """sha256 over the kdlib files the notebook uses."""
    digest = hashlib.sha256()
    for path in kdlib_modules_used(notebook):
        if path.relative_to(ROOT).as_posix() in NOT_HASHED:
            continue
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def input_hash(key: str, params: dict) -> str:
    """What a run's results depend on: the chapter's code cells (not its prose), the parameters, and
    the kdlib files it imports. A prose-only edit is applied without re-running (`refresh_prose`)."""
    digest = hashlib.sha256()
    for _, source in chapters.code_cells(notebook_path(key).read_text()):
        digest.update(source.encode() + b"\0")
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(kdlib_source_hash(notebook_path(key)).encode())
    return digest.hexdigest()[:24]


# --------------------------------------------------------------------------- destinations


def writes_book(key: str, profile: str, overrides: dict) -> bool:
    """Only the committed parameters of cpu or paper, without KDLIB_RESULTS_DIR, write book/."""
    return profile in BOOK_PROFILES and not overrides and not os.environ.get("KDLIB_RESULTS_DIR")


def destinations(key: str, profile: str, params: dict, book: bool) -> tuple[Path, Path]:
    """(executed notebook, results file) of a run."""
    if book:
        if profile == BOOK_PROFILE:
            notebook = ROOT / "book" / "chapters" / f"{key}.ipynb"
        else:  # the paper profile's notebook is a log; its results are shown in the cpu chapter
            notebook = chapters.run_dir(key, profile, params) / f"{key}.ipynb"
        return notebook, chapters.book_results_path(key, profile)
    folder = chapters.run_dir(key, profile, params)
    return folder / f"{key}.ipynb", folder / "results.json"


def executed_hash(notebook: Path) -> str | None:
    try:
        return json.loads(notebook.read_text())["metadata"].get("kdlib", {}).get("input_hash")
    except (OSError, ValueError, KeyError):
        return None


def source_hash(key: str) -> str:
    """The whole chapter source, prose included: what the executed notebook was rendered from."""
    return hashlib.sha256(notebook_path(key).read_bytes()).hexdigest()[:24]


def prose_is_current(key: str) -> bool:
    notebook = destinations(key, BOOK_PROFILE, {}, book=True)[0]
    try:
        meta = json.loads(notebook.read_text())["metadata"].get("kdlib", {})
    except (OSError, ValueError, KeyError):
        return False
    return meta.get("source_hash") == source_hash(key)


def refresh_prose(key: str) -> bool:
    """Bring the book's executed notebook up to date with a prose-only edit of the chapter: its
    Markdown cells and cell tags from the source, its code cells and outputs as executed. Returns
    False (nothing written) when the code cells differ, so the chapter must run."""
    import nbformat

    from .repro import atomic_write_bytes

    notebook = destinations(key, BOOK_PROFILE, {}, book=True)[0]
    executed = json.loads(notebook.read_text())
    fresh = json.loads(nbformat.writes(read_notebook(notebook_path(key))))

    def text(cell):
        return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]

    def injected(cell):
        return "injected-parameters" in cell.get("metadata", {}).get("tags", [])

    ran = iter(c for c in executed["cells"] if c["cell_type"] == "code" and not injected(c))
    extra = [c for c in executed["cells"] if injected(c)]
    cells = []
    for cell in fresh["cells"]:
        if cell["cell_type"] != "code":
            cells.append(cell)
            continue
        done = next(ran, None)
        if done is None or text(done) != text(cell):
            return False
        cells.append({**done, "metadata": {**done.get("metadata", {}), **cell.get("metadata", {})}})
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cells += extra
    if next(ran, None) is not None:
        return False
    executed["cells"] = cells
    executed["metadata"]["kdlib"]["source_hash"] = source_hash(key)
    atomic_write_bytes(notebook, (json.dumps(executed, indent=1, ensure_ascii=False) + "\n").encode())
    return True


def is_current(key: str, profile: str, digest: str) -> bool:
    """Results file and executed notebook both exist and both carry `digest`."""
    notebook, results_file = destinations(key, profile, {}, book=True)
    try:
        res = json.loads(results_file.read_text())
    except (OSError, ValueError):
        return False
    if res.get("provenance", {}).get("input_hash") != digest:
        return False
    return profile != BOOK_PROFILE or executed_hash(notebook) == digest


def _check_writable(*folders: Path) -> None:
    for folder in folders:
        probe = folder
        while not probe.exists():
            probe = probe.parent
        if not os.access(probe, os.W_OK):
            raise RunError(f"cannot write to {folder} (permission denied): fix it before training")


@contextmanager
def chapter_lock(key: str, destination: Path | None = None):
    """One run into a destination at a time: a second one is refused with one line.

    The lock is per (chapter, destination folder): two runs that would write the same files
    exclude each other, while the smoke and paper profiles of one chapter (different folders
    under _runs/) may run side by side. Without a destination, the lock covers the chapter.
    """
    folder = ROOT / "_runs" / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    name = key if destination is None else f"{key}-{hashlib.sha256(str(destination).encode()).hexdigest()[:12]}"
    with open(folder / f"{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            where = "" if destination is None else f" into {_show(destination)}"
            raise RunError(f"{key} is already running{where} in another process (lock {folder / name}.lock)") from None
        yield


# --------------------------------------------------------------------------- execution


def execute(key: str, profile: str, params: dict, digest: str, book: bool) -> tuple[Path, Path]:
    """Run the notebook with papermill into scratch files; move both into place only on success."""
    import nbformat
    import papermill as pm

    from .repro import atomic_write_bytes

    notebook, results_file = destinations(key, profile, params, book)
    _check_writable(notebook.parent, results_file.parent, Path(os.environ.get("KDLIB_CACHE") or ROOT))
    scratch = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=_scratch_dir()))
    sockets = _socket_dir()
    source, out, res_tmp = scratch / f"{key}.ipynb", scratch / f"{key}.out.ipynb", scratch / "results.json"
    nbformat.write(read_notebook(notebook_path(key)), source)
    env = {"KDLIB_RESULTS_PATH": str(res_tmp)}  # the kernel writes its science there
    old = {k: os.environ.get(k) for k in (*env, "JUPYTER_PATH")}
    os.environ.update(env)
    # this interpreter's kernelspec first, so a user-level `python3` kernel cannot shadow the venv
    venv_share = str(Path(sys.prefix) / "share" / "jupyter")
    if venv_share not in os.environ.get("JUPYTER_PATH", ""):
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [venv_share, os.environ.get("JUPYTER_PATH")]))
    try:
        pm.execute_notebook(str(source), str(out), parameters=params, kernel_name="python3", cwd=str(ROOT),
                            progress_bar=sys.stderr.isatty(), log_output=False, request_save_on_cell_execute=False,
                            kernel_manager_class=_ipc_kernel_manager(sockets))
    except pm.PapermillExecutionError as err:
        failed = chapters.runs_root() / key / f"{profile}.failed.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        os.replace(out, failed)
        raise RunError(
            f"{key} ({profile}) failed in cell {err.cell_index} [execution count {err.exec_count}]: "
            f"{err.ename}: {err.evalue.splitlines()[0] if err.evalue else ''} — notebook kept at {_show(failed)}"
        ) from None
    except BaseException:  # Ctrl-C or a kernel that died: the scratch folder goes, nothing is half-written
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        source.unlink(missing_ok=True)
        shutil.rmtree(sockets, ignore_errors=True)
    try:
        if not res_tmp.exists():
            raise RunError(f"{key} ({profile}) ran but wrote no results file (does it call results.save?)")
        res = paths.envelope(key, profile, params, json.loads(res_tmp.read_text()), input_hash=digest)
        executed = json.loads(out.read_text())
        executed["metadata"]["kdlib"] = {"input_hash": digest, "profile": profile, "source_hash": source_hash(key)}
        hide_injected_parameters(executed)
        atomic_write_bytes(notebook, (json.dumps(executed, indent=1, ensure_ascii=False) + "\n").encode())
        atomic_write_bytes(results_file, (json.dumps(res, indent=1) + "\n").encode())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return notebook, results_file


def _ipc_kernel_manager(folder: Path):
    """A kernel manager whose kernel talks over Unix sockets in `folder`, not TCP: private to this user,
    and the kernel prints no "running over TCP without encryption". A socket path must fit in 107
    bytes, so `folder` should be short (`_socket_dir`)."""
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport, self.ip = "ipc", str(folder / "kernel")

    return IPCKernelManager


def _socket_dir() -> Path:
    """A short private folder for the kernel's sockets (/tmp/kdlib-XXXXXXXX), removed after the run."""
    base = "/tmp" if os.path.isdir("/tmp") else None
    return Path(tempfile.mkdtemp(prefix="kdlib-", dir=base))


def hide_injected_parameters(nb: dict) -> None:
    """The book shows the parameters cell; papermill's injected copy of the profile's values is removed
    from the rendered page (it stays in the notebook for anyone who opens it)."""
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = [*tags, "remove-cell"]


def _scratch_dir() -> Path:
    folder = ROOT / "_runs" / ".tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _show(path: Path) -> str:
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return str(path)


def toc_keys() -> list[str]:
    toc = ROOT / "_toc.yml"
    text = toc.read_text() if toc.exists() else ""
    return [k for k in all_keys() if f"chapters/{k}" in text]


def run(keys, profile: str, overrides: dict, force: bool = False, jobs: int = 1, scoreboard: bool = True) -> int:
    """Run chapters (validated first, all of them); with jobs > 1, that many at once, each in its
    own `kdlib run KEY` process (one torch thread each: two chapters use the two cores)."""
    plans = []
    for key in keys:  # validate everything before running anything
        if not notebook_path(key).exists():
            raise RunError(f"no chapter {key!r}; known: {', '.join(all_keys())}")
        params = resolve_parameters(key, profile, overrides)
        plans.append((key, params, input_hash(key, params), writes_book(key, profile, overrides)))
    todo = []
    for key, params, digest, book in plans:
        if book and not force and is_current(key, profile, digest):
            if profile == BOOK_PROFILE and not prose_is_current(key):
                with chapter_lock(key, destinations(key, profile, params, book)[1].parent):
                    refreshed = refresh_prose(key)
                if refreshed:
                    print(f"kdlib run: {key} ({profile}) is current; its prose was updated without re-running")
                    continue
                todo.append((key, params, digest, book))
                continue
            print(f"kdlib run: {key} ({profile}) is current, skipped")
        else:
            todo.append((key, params, digest, book))
    if jobs > 1 and len(todo) > 1:
        _run_in_processes([key for key, *_ in todo], profile, overrides, jobs)
        wrote_book = any(book for *_, book in todo)
    else:
        wrote_book = _run_here(todo, profile)
    if scoreboard and (wrote_book or profile == BOOK_PROFILE):
        # here, not at the top: a refused -p must not import scipy and torch
        from .scoreboard import write_scoreboard

        write_scoreboard(toc_keys=toc_keys())
    return 0


def _run_in_processes(keys, profile, overrides, jobs):
    """`kdlib run KEY --force` for each key, at most `jobs` at a time; one line naming each failure."""
    import subprocess
    import time

    args = [a for name, value in overrides.items() for a in ("-p", f"{name}={json.dumps(value)}")]
    waiting, running, failed = list(keys), {}, []
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                key = waiting.pop(0)
                running[key] = subprocess.Popen([sys.executable, "-m", "kdlib", "run", key, "--profile", profile,
                                                 "--force", "--no-scoreboard", *args], cwd=ROOT)
            for key, proc in list(running.items()):
                if proc.poll() is not None:
                    del running[key]
                    if proc.returncode:
                        failed.append(key)
            time.sleep(0.2)
    except KeyboardInterrupt:
        for proc in running.values():
            proc.terminate()
        raise
    if failed:
        raise RunError(f"{len(failed)} chapter(s) failed: {', '.join(failed)} (their errors are above)")


def _run_here(todo, profile) -> bool:
    wrote_book = False
    for key, params, digest, book in todo:
        print(f"kdlib run: {key} ({profile}) executing ...", flush=True)
        with chapter_lock(key, destinations(key, profile, params, book)[1].parent):
            notebook, results_file = execute(key, profile, params, digest, book)
        where = "the book" if book else "outside the book"
        print(f"kdlib run: {key} ({profile}) wrote {where}: {_show(notebook)} and {_show(results_file)}")
        wrote_book |= book
    return wrote_book


# --------------------------------------------------------------------------- student copies


def student_copy(key: str, dest_dir: Path) -> Path:
    """The chapter as a notebook without its solution cells (tag `solution`), for handing out."""
    import nbformat

    if not notebook_path(key).exists():
        raise RunError(f"no chapter {key!r}; known: {', '.join(all_keys())}")
    nb = read_notebook(notebook_path(key))
    for i, cell in enumerate(nb.cells):
        if "solution" in cell.metadata.get("tags", []):
            nb.cells[i] = nbformat.v4.new_code_cell("# your solution here\n")
    dest = Path(dest_dir) / f"{key}.ipynb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest

