"""Every chapter executed through papermill: smoke profile, paper profile on fake CIFAR, determinism."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from kdlib import results, run
from kdlib.repro import REPO_ROOT
from kdlib.tasks import write_fake_cifar100

KEYS = run.all_keys()
pytestmark = pytest.mark.slow
# No xdist groups: each worker has its own results and cache folders (conftest.py) and the runner
# locks per chapter and destination, so these runs spread over the workers (`make test`: -n 2).


def _run(key, profile, *overrides):
    """Run a chapter through the CLI; return its results (written under $KDLIB_RESULTS_DIR, never book/)."""
    proc = subprocess.run([sys.executable, "-m", "kdlib", "run", key, "--profile", profile, "--force",
                           *[a for o in overrides for a in ("-p", o)]],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    params = run.resolve_parameters(key, profile, run.parse_overrides(overrides))
    notebook, results_file = run.destinations(key, profile, params, book=False)
    assert str(results_file) in proc.stdout or str(results_file.relative_to(REPO_ROOT)) in proc.stdout
    assert notebook.exists()
    return results.read(results_file)


def _book_status():
    return subprocess.run(["git", "status", "--porcelain", "book/"], capture_output=True, text=True,
                          cwd=REPO_ROOT).stdout


@pytest.mark.parametrize("key", KEYS)
def test_notebook_runs_at_smoke(key):
    res = _run(key, "smoke")
    assert res["claims"], f"{key} checked no claim"
    assert all(c["verdict"] in results.VERDICTS for c in res["claims"])
    assert res["provenance"]["input_hash"] and not res["provenance"]["input_hash"].startswith("pending")


def _has_cifar_paper_profile(key):
    params = run.resolve_parameters(key, "paper")
    return params.get("dataset") == "cifar100"


# The CRD models' shallowest relative with the same stage widths: every feature shape a chapter
# sees (adapters, hooks, relations) is the paper architecture's, at a fraction of the CPU time
# (resnet32x4 is 6x resnet8x4 per step). Every architecture itself is built and checked against
# its reference parameter count in tests/test_cifar_models.py.
SHALLOW = {"resnet32x4": "resnet8x4", "resnet110": "resnet8", "resnet56": "resnet8", "resnet44": "resnet8",
           "resnet32": "resnet8", "resnet20": "resnet8", "resnet14": "resnet8", "wrn_40_2": "wrn_16_2"}


def _shallow_archs(key, names):
    """Overrides that swap each CIFAR architecture of the paper profile for its shallow relative."""
    out = []
    for name, value in run.resolve_parameters(key, "paper").items():
        if name not in names:
            continue
        if isinstance(value, str) and value in SHALLOW:
            out.append(f"{name}={SHALLOW[value]}")
        elif isinstance(value, list) and any(isinstance(v, str) and v in SHALLOW for v in value):
            out.append(f"{name}={json.dumps([SHALLOW.get(v, v) for v in value])}")
    return out


def test_shallow_archs_keep_every_stage_shape():
    """The swap is only sound if each pair has the same stage shapes (channels and resolution)."""
    import torch

    from kdlib.adapters import stage_shapes
    from kdlib.hooks import stage_names
    from kdlib.models.cifar import CIFAR_MODELS

    x = torch.zeros(2, 3, 32, 32)
    for deep, shallow in SHALLOW.items():
        shapes = []
        for arch in (deep, shallow):
            model = CIFAR_MODELS[arch](num_classes=100)
            shapes.append(stage_shapes(model, x, stage_names(model)))
        assert shapes[0] == shapes[1], (deep, shallow)
    assert _shallow_archs("dkd", run.notebook_parameters(run.notebook_path("dkd"))) == ["teacher_arch=resnet8x4"]


def _paper_values(key) -> list[str]:
    """The paper profile's parameter file as -p overrides. The tests run the paper's parameters at smoke
    size under the smoke profile: a run of a few fake images may tie on every seed, which the protocol
    refuses from a real (cpu or paper) run but accepts at smoke scale."""
    paper = yaml.safe_load((REPO_ROOT / "params" / key / "paper.yaml").read_text()) or {}
    return [f"{n}={json.dumps(v)}" for n, v in paper.items() if not (n == "device" and v == "cuda")]


@pytest.mark.parametrize("key", [k for k in KEYS if _has_cifar_paper_profile(k)])
def test_paper_profile_runs_on_fake_cifar(key, tmp_path):
    """The paper profile's parameters end to end at smoke size on CIFAR-format files this test writes."""
    write_fake_cifar100(tmp_path, n_train=64, n_test=20)
    names = run.notebook_parameters(run.notebook_path(key))
    pilot = [f"{n}=2" for n in ("pilot_seeds", "min_seeds") if n in names]  # the smallest pilot too
    # and the smoke profile's grids (list parameters): the path end to end, not the paper's sweep
    smoke = yaml.safe_load((REPO_ROOT / "params" / key / "smoke.yaml").read_text()) or {}
    grids = [f"{n}={json.dumps(v)}" for n, v in smoke.items() if isinstance(v, list) and "hidden" not in n]
    res = _run(key, "smoke", *_paper_values(key), f"data_root={tmp_path}", "max_train=32", "seeds=2", "epochs=1",
               "teacher_epochs=1", *pilot, *grids, *_shallow_archs(key, names))
    assert res["params"]["dataset"] == "cifar100"
    assert res["metrics"]


# chapters whose own test file runs the paper profile at smoke size
PAPER_TESTED_ELSEWHERE = {"selfdistill_krr", "transfer_limits"}


@pytest.mark.parametrize("key", [k for k in KEYS if not _has_cifar_paper_profile(k) and k not in PAPER_TESTED_ELSEWHERE])
def test_paper_profile_runs_at_smoke_size(key):
    """A paper profile that needs no download: its parameters end to end with the smoke profile's sizes."""
    smoke = yaml.safe_load((REPO_ROOT / "params" / key / "smoke.yaml").read_text()) or {}
    paper = yaml.safe_load((REPO_ROOT / "params" / key / "paper.yaml").read_text()) or {}
    res = _run(key, "smoke", *_paper_values(key), *[f"{n}={json.dumps(v)}" for n, v in smoke.items()])
    kept = {n: v for n, v in paper.items() if n not in smoke and not (n == "device" and v == "cuda")}
    assert {n: res["params"][n] for n in kept} == kept and res["claims"]


def test_smoke_metrics_are_identical_across_runs():
    first = _run("hinton2015_kd", "smoke")["metrics"]
    second = _run("hinton2015_kd", "smoke")["metrics"]
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_executed_smoke_notebook_reexecutes_under_nbval(tmp_path):
    """nbval --nbval-lax re-runs the executed smoke notebook: every cell must run again cleanly."""
    _run("hinton2015_kd", "smoke")
    nb, _ = run.destinations("hinton2015_kd", "smoke", run.resolve_parameters("hinton2015_kd", "smoke"), book=False)
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:xdist", "-q", "-p", "no:cacheprovider",
                           str(nb)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_papermill_pipe_student_copy_and_overrides_leave_the_book_alone(tmp_path):
    """The researcher's paths: jupytext | papermill, a student copy under papermill, -p, KDLIB_RESULTS_DIR."""
    before = _book_status()
    key, smoke = "lelp", str(REPO_ROOT / "params" / "lelp" / "smoke.yaml")
    env = {**os.environ, "KDLIB_RESULTS_DIR": ""}  # as a researcher would run it: the default _runs/
    env.pop("KDLIB_RESULTS_DIR")
    pipe = (f"{sys.executable} -m jupytext --to ipynb -o - notebooks/{key}.md | "
            f"{sys.executable} -m papermill - {tmp_path / 'out.ipynb'} -f {smoke} -p seeds 2 --log-level ERROR")
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", pipe], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out.ipynb").exists()
    assert "outside the book" in (tmp_path / "out.ipynb").read_text()  # the notebook says where it wrote
    student = run.student_copy(key, tmp_path / "student")
    proc = subprocess.run([sys.executable, "-m", "papermill", str(student), str(tmp_path / "student-out.ipynb"),
                           "-f", smoke, "--log-level", "ERROR"], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = _run(key, "smoke", "seeds=2")  # -p, under KDLIB_RESULTS_DIR (the tests' folder)
    assert res["params"]["seeds"] == 2
    assert _book_status() == before


def test_no_verdict_is_typed_in_a_notebook():
    for key in KEYS:
        nb = run.read_notebook(run.notebook_path(key))
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        for word in results.VERDICTS:
            assert f'"{word}"' not in code and f"'{word}'" not in code, (key, word)


def test_every_chapter_is_committed_executed_and_in_the_toc():
    toc = (REPO_ROOT / "_toc.yml").read_text()
    for key in KEYS:
        assert f"book/chapters/{key}" in toc, key
        executed = REPO_ROOT / "book" / "chapters" / f"{key}.ipynb"
        assert executed.exists(), key
        cells = json.loads(executed.read_text())["cells"]
        assert any(c.get("outputs") for c in cells if c["cell_type"] == "code"), key
        assert (REPO_ROOT / "book" / "_results" / key / "cpu.json").exists(), key


def test_committed_chapters_are_current():
    """`make book` on a fresh clone re-executes nothing: every cpu chapter's hash matches."""
    stale = []
    for key in KEYS:
        params = run.resolve_parameters(key, "cpu")
        res = results.load(key, "cpu", REPO_ROOT / "book" / "_results")
        if res is None or res["provenance"].get("input_hash") != run.input_hash(key, params):
            stale.append(key)
        elif not run.prose_is_current(key):
            stale.append(f"{key} (prose only)")
    assert not stale, f"stale chapters (run `kdlib run --all`): {stale}"
