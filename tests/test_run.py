"""The runner: parameter validation (one clear line), staleness, failing cells."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdlib import chapters, run
from kdlib.repro import REPO_ROOT

KEY = "hinton2015_kd"


def kdlib_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "kdlib", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120, env=env)


@pytest.mark.parametrize(
    "arg, needle",
    [
        ("temperatures=banana", "parameter 'temperatures' expects list"),
        ("temperature=banana", "parameter 'temperature' expects float"),
        ("no_such_param=1", "unknown parameter 'no_such_param'"),
        ("seeds=2.5", "parameter 'seeds' expects int"),
        ("logit_matching=maybe", "parameter 'logit_matching' expects bool"),
        ("seeds=0", "parameter 'seeds' must be at least 1"),
        ("lr=-0.1", "parameter 'lr' must not be negative"),
        ("temperatures=[2, 'x']", "parameter 'temperatures': element 1 is 'x'"),
    ],
)
def test_bad_parameter_fails_with_one_line_naming_it(arg, needle):
    proc = kdlib_cli("run", KEY, "--profile", "smoke", "-p", arg)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0] and "Traceback" not in proc.stderr


def test_parameter_types_are_checked_and_coerced():
    params = run.resolve_parameters(KEY, "smoke", run.parse_overrides(["lr=1", "temperatures=[2, 3]"]))
    assert params["lr"] == 1.0 and isinstance(params["lr"], float)
    assert params["temperatures"] == [2, 3] and params["profile"] == "smoke"
    assert params["seeds"] == 2  # from params/hinton2015_kd/smoke.yaml


def test_every_chapter_has_valid_parameter_files():
    """smoke and paper have files; cpu is the notebook's defaults, so a cpu file, where one exists,
    holds only values that differ from them (one source of truth for the book's run). The paper
    files may restate a default to document the paper's setting beside the others."""
    import yaml

    for key in run.all_keys():
        defaults = run.notebook_parameters(run.notebook_path(key))
        assert list(defaults)[0] == "profile", key
        for profile in run.PROFILES:
            file = REPO_ROOT / "params" / key / f"{profile}.yaml"
            assert file.exists() or profile == "cpu", (key, profile)
            run.resolve_parameters(key, profile)  # raises RunError naming the problem
            values = yaml.safe_load(file.read_text()) or {} if file.exists() and profile == "cpu" else {}
            repeated = [name for name, value in values.items() if defaults.get(name) == value]
            assert not repeated, f"params/{key}/{profile}.yaml repeats the notebook's defaults: {repeated}"


def test_unknown_chapter_and_missing_name():
    proc = kdlib_cli("run", "no_such_chapter", "--profile", "smoke")
    assert proc.returncode == 2 and "no chapter 'no_such_chapter'" in proc.stderr
    assert kdlib_cli("run", "--profile", "smoke").returncode == 2


def test_input_hash_tracks_notebook_params_and_kdlib(tmp_path, monkeypatch):
    p = run.resolve_parameters(KEY, "smoke")
    h = run.input_hash(KEY, p)
    assert h == run.input_hash(KEY, dict(p))
    assert h != run.input_hash(KEY, {**p, "seeds": 3})
    used = {f.relative_to(REPO_ROOT).as_posix() for f in run.kdlib_modules_used(run.notebook_path(KEY))}
    assert {"kdlib/losses/divergences.py", "kdlib/train.py", "kdlib/methods/kd.py", "kdlib/zoo.py"} <= used
    assert "kdlib/run.py" not in used
    # names taken from a package count where they are defined: a new method elsewhere changes nothing
    assert "kdlib/methods/__init__.py" not in used and "kdlib/methods/tgeo.py" not in used


def test_prose_edits_do_not_change_the_input_hash(tmp_path, monkeypatch):
    source = tmp_path / "ch.md"
    text = run.notebook_path(KEY).read_text()
    p = run.resolve_parameters(KEY, "smoke")
    monkeypatch.setattr(run, "notebook_path", lambda key: source)
    source.write_text(text)
    h, whole = run.input_hash(KEY, p), run.source_hash(KEY)
    source.write_text(text.replace("## Method", "## Method\n\nA new sentence of prose.", 1))
    assert run.input_hash(KEY, p) == h and run.source_hash(KEY) != whole
    source.write_text(text.replace("import math", "import math  # a code edit", 1))
    assert run.input_hash(KEY, p) != h


def test_refresh_prose_keeps_outputs_and_takes_new_markdown(tmp_path, monkeypatch):
    import nbformat

    source, executed = tmp_path / "ch.md", tmp_path / "ch.ipynb"
    source.write_text("# T\n\nold words\n\n```{code-cell}\n:tags: [parameters]\n\nx = 1\n```\n\n"
                      "```{code-cell}\nprint(x)\n```\n")
    monkeypatch.setattr(run, "notebook_path", lambda key: source)
    monkeypatch.setattr(run, "destinations", lambda *a, **k: (executed, tmp_path / "cpu.json"))
    nb = json.loads(nbformat.writes(run.read_notebook(source)))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    code[1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    injected = {**code[0], "id": "inj", "source": "x = 2", "metadata": {"tags": ["injected-parameters"]}}
    nb["cells"].insert(2, injected)
    nb["metadata"]["kdlib"] = {"input_hash": "h", "source_hash": "old"}
    executed.write_text(json.dumps(nb))
    assert not run.prose_is_current(KEY)
    source.write_text(source.read_text().replace("old words", "new words"))
    assert run.refresh_prose(KEY) and run.prose_is_current(KEY)
    cells = json.loads(executed.read_text())["cells"]
    assert "new words" in "".join(cells[0]["source"]) and cells[2]["source"] == "x = 2"
    assert cells[-1]["outputs"][0]["text"] == "1\n"
    source.write_text(source.read_text().replace("print(x)", "print(x + 1)"))
    assert not run.refresh_prose(KEY)  # a code edit: the chapter must run again


def test_current_chapter_is_skipped(tmp_path, monkeypatch):
    calls = []
    monkeypatch.delenv("KDLIB_RESULTS_DIR")
    monkeypatch.setattr(run, "is_current", lambda key, profile, digest: True)
    monkeypatch.setattr(run, "prose_is_current", lambda key: True)
    monkeypatch.setattr(run, "refresh_prose", lambda key: calls.append(("refresh", key)))
    monkeypatch.setattr(run, "execute", lambda *a: calls.append(a))
    monkeypatch.setattr("kdlib.scoreboard.write_scoreboard", lambda **kw: None)
    assert run.run([KEY], "cpu", {}) == 0
    assert calls == []


def test_failing_cell_is_reported_briefly(tmp_path, monkeypatch, capfd):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    (tmp_path / "params" / "broken").mkdir(parents=True)
    (tmp_path / "params" / "broken" / "smoke.yaml").write_text("x: 2\n")
    (nb_dir / "broken.md").write_text(
        "---\nkernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
        "```{code-cell}\n:tags: [parameters]\n\nprofile = 'cpu'\nx = 1\n```\n\n"
        "```{code-cell}\ny = x + 1\n```\n\n```{code-cell}\nraise ValueError('the model diverged')\n```\n")
    monkeypatch.setattr(chapters, "ROOT", tmp_path)
    monkeypatch.setattr(run, "ROOT", tmp_path)
    monkeypatch.setenv("KDLIB_RESULTS_DIR", str(tmp_path / "_runs"))
    with pytest.raises(run.RunError) as err:
        run.run(["broken"], "smoke", {})
    message = str(err.value)
    assert "failed in cell" in message and "ValueError: the model diverged" in message
    assert "\n" not in message
    assert (tmp_path / "_runs" / "broken" / "smoke.failed.ipynb").exists()
    printed = capfd.readouterr()
    assert "WARNING" not in printed.err and "Traceback" not in printed.err  # the kernel stays quiet (IPC, no TCP)


def test_student_copy_drops_solutions(tmp_path):
    out = run.student_copy(KEY, tmp_path)
    cells = json.loads(out.read_text())["cells"]
    source = chapters.read_notebook(run.notebook_path(KEY)).cells
    assert any("solution" in c.metadata.get("tags", []) for c in source)
    assert not any("solution" in c.get("metadata", {}).get("tags", []) for c in cells)
    assert len(cells) == len(source)


def test_student_copy_of_unknown_chapter_is_one_line():
    proc = kdlib_cli("student", "nosuch")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "no chapter 'nosuch'" in proc.stderr


def test_version_list_and_help():
    from kdlib import __version__

    assert kdlib_cli("--version").stdout.strip() == f"kdlib {__version__}"
    listing = kdlib_cli("list")
    assert listing.returncode == 0 and "Part I" in listing.stdout and KEY in listing.stdout
    assert any(word in listing.stdout for word in ("current", "stale"))
    line = next(line for line in listing.stdout.splitlines() if line.split()[:1] == [KEY])
    assert "cpu run" in line and " min " in line  # the committed run's recorded time
    helptext = kdlib_cli("run", "--help").stdout
    assert "--profile" in helptext and "smoke:" in helptext and "_runs" in helptext


def test_experiments_never_write_the_book(monkeypatch):
    monkeypatch.delenv("KDLIB_RESULTS_DIR")
    assert run.writes_book(KEY, "cpu", {})
    assert run.writes_book(KEY, "paper", {})
    assert not run.writes_book(KEY, "cpu", {"temperature": 2.0})
    assert not run.writes_book(KEY, "smoke", {})
    monkeypatch.setenv("KDLIB_RESULTS_DIR", "/tmp/elsewhere")
    assert not run.writes_book(KEY, "cpu", {})
    params = run.resolve_parameters(KEY, "cpu", {"temperature": 2.0})
    notebook, results_file = run.destinations(KEY, "cpu", params, book=False)
    assert str(results_file).startswith("/tmp/elsewhere/" + KEY + "/cpu-")
    assert notebook.parent == results_file.parent


def test_second_run_of_a_chapter_is_refused():
    with run.chapter_lock(KEY):
        with pytest.raises(run.RunError, match="already running"):
            with run.chapter_lock(KEY):
                pass


def test_runs_into_different_folders_do_not_block_each_other(tmp_path):
    """The smoke and paper profiles of one chapter write different folders: both may run at once."""
    smoke, paper = tmp_path / "smoke", tmp_path / "paper"
    with run.chapter_lock(KEY, smoke):
        with run.chapter_lock(KEY, paper):
            pass
        with pytest.raises(run.RunError, match="already running into .*smoke"):
            with run.chapter_lock(KEY, smoke):
                pass


def test_unwritable_results_folder_is_reported_before_training(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # root may write anywhere: stand in for a read-only folder by what os.access reports
    monkeypatch.setattr(run.os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    with pytest.raises(run.RunError, match=f"cannot write to {locked / KEY}"):
        run._check_writable(tmp_path, locked / KEY)


def test_every_source_has_one_parameters_cell_and_the_chapter_sections():
    sections = ["## Claim", "## Method", "## Experiment", "## Results", "## Deviations", "## Exercises"]
    for key in run.all_keys():
        nb = chapters.read_notebook(run.notebook_path(key))
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, key
        headings = [line.strip() for c in nb.cells if c.cell_type == "markdown"
                    for line in c.source.splitlines() if line.startswith("## ")]
        found = [h for h in headings if h in sections]
        assert found == sections, (key, headings)


def test_interrupted_run_leaves_no_scratch_files(tmp_path, monkeypatch):
    """Ctrl-C during execution: the scratch folder is removed and nothing reaches book/ or _runs/."""
    import papermill as pm

    def interrupted(*args, **kwargs):
        Path(args[1]).write_text("")  # papermill had started writing its output
        raise KeyboardInterrupt

    monkeypatch.setattr(pm, "execute_notebook", interrupted)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(run, "_scratch_dir", lambda: scratch)
    monkeypatch.setenv("KDLIB_RESULTS_DIR", str(tmp_path / "runs"))  # not the folder other tests share
    params = run.resolve_parameters(KEY, "smoke")
    with pytest.raises(KeyboardInterrupt):
        run.execute(KEY, "smoke", params, "digest", book=False)
    assert list(scratch.iterdir()) == []
    notebook, results_file = run.destinations(KEY, "smoke", params, book=False)
    assert not notebook.exists() and not results_file.exists()


def test_list_into_a_closed_pipe_is_quiet(monkeypatch, tmp_path):
    """`kdlib list | head`: when the reader has gone, list stops without a traceback and exits 0."""
    import io

    from kdlib import cli

    sink = open(tmp_path / "stdout", "w")

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return sink.fileno()

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["list"]) == 0
    sink.close()


def test_jobs_run_chapters_in_parallel_processes_and_name_failures(monkeypatch):
    """--jobs N: at most N `kdlib run KEY --force` processes at once; a failed one is named in one line."""
    import subprocess

    started, live, most = [], set(), [0]

    class FakeProcess:
        def __init__(self, argv, cwd=None):
            self.key, self.polls = argv[4], 0
            started.append(argv)
            live.add(self.key)
            most[0] = max(most[0], len(live))

        def poll(self):
            self.polls += 1
            if self.polls < 2:
                return None
            live.discard(self.key)
            self.returncode = 1 if self.key == "dkd" else 0
            return self.returncode

    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(run, "is_current", lambda key, profile, digest: False)
    with pytest.raises(run.RunError, match="1 chapter\\(s\\) failed: dkd"):
        run.run(["hinton2015_kd", "dkd", "ban"], "smoke", {}, jobs=2, scoreboard=False)
    assert [a[4] for a in started] == ["hinton2015_kd", "dkd", "ban"] and most[0] == 2
    assert all(a[5:9] == ["--profile", "smoke", "--force", "--no-scoreboard"] for a in started)


def test_profile_is_not_a_parameter():
    with pytest.raises(run.RunError, match="the profile is chosen with --profile, not -p"):
        run.parse_overrides(["profile=paper"])
