"""The benchmark scripts keep working (they print ratios; no timing is asserted here)."""

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
