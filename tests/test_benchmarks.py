"""The benchmark scripts keep working (they print ratios; no timing is asserted here)."""

import re
import subprocess
import sys

import pytest

from kdlib.repro import REPO_ROOT

pytestmark = pytest.mark.slow


def test_paper_epoch_benchmark_runs_at_tiny_size():
    proc = subprocess.run([sys.executable, "benchmarks/bench_cifar_epoch.py", "--images", "48", "--batch", "16",
                           "--device", "cpu", "--workers", "0"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("kdlib paper path") and "images/s" in line and "data share" in line for line in lines)
    assert any(line.startswith("reference DataLoader") and "data share" in line for line in lines)
    assert any(line.startswith("ratio kdlib / reference") for line in lines)


def test_mnist1d_baselines_benchmark_runs_one_cheap_recipe():
    proc = subprocess.run([sys.executable, "benchmarks/mnist1d_baselines.py", "--only", "book mlp 30ep", "--seeds", "0"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "book mlp 30ep" in proc.stdout and "15210" in proc.stdout


def _family_line(out, k, family):
    """`make bench`'s line for one student family, in its fixed form (the ratio and the share printed)."""
    pattern = (rf"K={k} seeds in one batch, {family}: \d+\.\dx the one-seed loop, \d+% of the GEMM peak; "
               r"per-seed metrics equal: (True|False)")
    lines = [line for line in out.splitlines() if re.match(pattern, line)]
    assert len(lines) == 1, out
    return lines[0]


def test_train_benchmark_runs_tiny_and_reports_identical_seeds():
    """`make bench`'s loop and batched-seeds comparisons at a few epochs: every line printed, and the
    batched students identical to one `train` per seed (the property the speed-up is quoted with);
    one line per student family (mlp, cnn1d, transformer, rkd), each seed's accuracy equal."""
    proc = subprocess.run([sys.executable, "benchmarks/bench_train.py", "--epochs", "2", "--seed-epochs", "2",
                           "--seed-counts", "3", "--mnist1d-epochs", "1", "--family-seeds", "3",
                           "--family-epochs", "1", "--family-train", "300"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "speed-up of kdlib.train over the plain DataLoader loop" in out
    assert "K =  3: one train per seed" in out
    assert "per-seed test accuracies identical: True, weights identical: True" in out
    every_step = next(line for line in out.splitlines() if "teacher forward every step" in line)
    assert every_step.endswith("per-seed test accuracies identical: True")
    assert "of a batched step" in out
    mnist1d = next(line for line in out.splitlines() if line.startswith("MNIST-1D 40-100-100-10"))
    assert mnist1d.endswith("weights identical: True")
    for family in ("mlp", "cnn1d", "transformer", "rkd"):
        assert _family_line(out, 3, family).endswith("per-seed metrics equal: True")


def test_lm_benchmark_runs_tiny_and_reports_identical_students():
    proc = subprocess.run([sys.executable, "benchmarks/bench_lm.py", "--steps", "2", "--eval", "16", "--seeds", "3"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "parameters identical: True; metrics identical: True" in proc.stdout, proc.stdout
    assert "ratio student training without / with cache" in proc.stdout
    assert _family_line(proc.stdout, 3, "lm").endswith("per-seed metrics equal: True")
