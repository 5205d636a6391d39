"""The runner: parameter validation (one clear line), staleness, failing cells."""

import json
import subprocess
import sys

import pytest

from kdlib import run
from kdlib.repro import REPO_ROOT

KEY = "hinton2015_kd"


def kdlib_cli(*args):
    return subprocess.run([sys.executable, "-m", "kdlib.run", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120)


@pytest.mark.parametrize(
    "arg, needle",
    [
        ("temperatures=banana", "parameter 'temperatures' expects list"),
        ("temperature=banana", "parameter 'temperature' expects float"),
        ("no_such_param=1", "unknown parameter 'no_such_param'"),
        ("seeds=2.5", "parameter 'seeds' expects int"),
        ("logit_matching=maybe", "parameter 'logit_matching' expects bool"),
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
    for key in run.all_keys():
        defaults = run.notebook_parameters(run.notebook_path(key))
        assert list(defaults)[0] == "profile", key
        for profile in run.PROFILES:
            assert (REPO_ROOT / "params" / key / f"{profile}.yaml").exists(), (key, profile)
            run.resolve_parameters(key, profile)  # raises RunError naming the problem


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
    assert {"kdlib/losses.py", "kdlib/train.py", "kdlib/methods/kd.py", "kdlib/zoo.py"} <= used
    assert "kdlib/run.py" not in used


def test_current_chapter_is_skipped(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(run, "is_current", lambda key, profile, digest: True)
    monkeypatch.setattr(run, "execute", lambda *a: calls.append(a))
    monkeypatch.setattr("kdlib.book.write_scoreboard", lambda **kw: None)
    assert run.run([KEY], "smoke", {}) == 0
    assert calls == []


def test_failing_cell_is_reported_briefly(tmp_path, monkeypatch):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    (tmp_path / "params" / "broken").mkdir(parents=True)
    (tmp_path / "params" / "broken" / "smoke.yaml").write_text("x: 2\n")
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "cells": [
              {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ["profile = 'cpu'\n", "x = 1\n"], "outputs": [], "execution_count": None, "id": "a"},
              {"cell_type": "code", "metadata": {}, "source": ["y = x + 1\n"], "outputs": [], "execution_count": None, "id": "b"},
              {"cell_type": "code", "metadata": {}, "source": ["raise ValueError('the model diverged')\n"], "outputs": [], "execution_count": None, "id": "c"},
          ]}
    (nb_dir / "broken.ipynb").write_text(json.dumps(nb))
    monkeypatch.setattr(run, "ROOT", tmp_path)
    with pytest.raises(run.RunError) as err:
        run.run(["broken"], "smoke", {})
    message = str(err.value)
    assert "failed in cell" in message and "ValueError: the model diverged" in message
    assert "\n" not in message
    assert (tmp_path / "_runs" / "broken" / "smoke.failed.ipynb").exists()


def test_student_copy_drops_solutions(tmp_path):
    out = run.student_copy(KEY, tmp_path)
    cells = json.loads(out.read_text())["cells"]
    assert not any("solution" in c.get("metadata", {}).get("tags", []) for c in cells)
    source = json.loads(run.notebook_path(KEY).read_text())["cells"]
    assert len(cells) == len(source)
