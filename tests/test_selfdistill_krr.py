"""Self-distillation of kernel ridge regression: the closed forms against brute force (explicit
repeated ridge fits), the limit against many iterations, and the official toy's printed losses."""

import math

import numpy as np
import pytest
import torch

from kdlib.experiments.selfdistill_krr import (
    b_diagonal,
    distill_brute,
    distill_limit,
    distill_predict,
    dual_weights,
    kernel_eigh,
    rbf_kernel,
    squared_error,
)

# the official toy (Kennethborup/self_distillation, toy_example.ipynb): Mobahi et al.'s 11 points
TOY_Y = [0.38476636465198066, 1.2333967683416893, 1.33232242218057, 0.69201594888895180, -0.29756145531871736,
         -0.24189291901377769, -0.7964485769175675, -0.9616480167034174, -0.49672509509916934,
         -0.3469066003991437, 0.5589512650600734]
# losses printed by the official notebook (steps 1..6, then the limit)
TOY_PRINTED = {0.0: [0.16477, 0.15076, 0.14915, 0.15561, 0.16735, 0.18251, 0.49505],
               0.25: [0.16477, 0.15309, 0.14958, 0.14903, 0.14946, 0.15011, 0.15250],
               0.35: [0.16477, 0.15424, 0.15089, 0.14983, 0.14954, 0.14948, 0.14959]}  # README's column


def small_problem(n=15, m=9, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g, dtype=torch.float64)
    x_eval = torch.rand(m, 2, generator=g, dtype=torch.float64)
    y = torch.randn(n, classes, generator=g, dtype=torch.float64)
    return rbf_kernel(x, x, 5.0), rbf_kernel(x_eval, x, 5.0), y


def test_rbf_kernel_matches_sklearn():
    from sklearn.metrics.pairwise import rbf_kernel as sk_rbf

    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(rbf_kernel(a, b, 0.3).numpy(), sk_rbf(a.numpy(), b.numpy(), gamma=0.3), rtol=1e-12)
    assert torch.allclose(torch.diagonal(rbf_kernel(a, a, 0.3)), torch.ones(6, dtype=torch.float64))


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.6, 1.0])
@pytest.mark.parametrize("c", [0.05, 1.0])
def test_closed_form_equals_repeated_ridge_fits(alpha, c):
    k, k_eval, y = small_problem()
    d, v = kernel_eigh(k)
    brute_eval = distill_brute(k, k_eval, y, c, alpha, 6)
    brute_train = distill_brute(k, k, y, c, alpha, 6)
    torch.testing.assert_close(distill_predict(k_eval, d, v, y, c, alpha, range(1, 7)), brute_eval, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(distill_predict(k, d, v, y, c, alpha, range(1, 7)), brute_train, rtol=1e-9, atol=1e-10)
    # the training fit is V B^(t) V^T y, with diag B^(t) from b_diagonal
    for t in (1, 4, 6):
        fit = v @ (b_diagonal(d, c, alpha, t)[:, None] * (v.T @ y))
        torch.testing.assert_close(fit, brute_train[t - 1], rtol=1e-9, atol=1e-10)


def test_one_dimensional_targets_match_columns():
    k, k_eval, y = small_problem()
    d, v = kernel_eigh(k)
    both = distill_predict(k_eval, d, v, y, 0.3, 0.2, [1, 3, math.inf])
    for j in range(y.shape[1]):
        torch.testing.assert_close(distill_predict(k_eval, d, v, y[:, j], 0.3, 0.2, [1, 3, math.inf]), both[..., j])


def test_b_diagonal_closed_form_equals_the_recursion():
    d = torch.tensor([5.0, 1.0, 0.2, 0.01, 0.0], dtype=torch.float64)
    c, alpha = 0.3, 0.35
    a = d / (d + c)
    b = torch.ones_like(d)  # B^(0) = I
    for t in range(1, 12):
        b = a * ((1 - alpha) * b + alpha)  # the official Recurser's update
        torch.testing.assert_close(b_diagonal(d, c, alpha, t), b)
    torch.testing.assert_close(b_diagonal(d, c, alpha, 1), a)  # B^(1) = A
    torch.testing.assert_close(b_diagonal(d, c, alpha, math.inf), alpha * d / (alpha * d + c))


def test_limit_is_ridge_with_penalty_c_over_alpha_and_what_many_iterations_reach():
    k, k_eval, y = small_problem()
    d, v = kernel_eigh(k)
    for alpha in (0.25, 0.7):
        limit = distill_limit(k, k_eval, y, 0.2, alpha)
        torch.testing.assert_close(distill_predict(k_eval, d, v, y, 0.2, alpha, [math.inf])[0], limit)
        torch.testing.assert_close(distill_brute(k, k_eval, y, 0.2, alpha, 400)[-1], limit, rtol=1e-8, atol=1e-9)
    # alpha = 0: the limit is the zero function (Mobahi et al.'s collapse), approached step by step
    assert distill_limit(k, k_eval, y, 0.2, 0.0).abs().max() == 0
    norms = distill_predict(k_eval, d, v, y, 0.2, 0.0, [1, 10, 100, 10_000]).norm(dim=(1, 2))
    assert (norms.diff() < 0).all() and norms[-1] < 1e-3 * norms[0]


def test_alpha_one_keeps_the_teacher_and_filters_shrink_for_alpha_zero():
    k, k_eval, y = small_problem()
    d, v = kernel_eigh(k)
    preds = distill_predict(k_eval, d, v, y, 0.4, 1.0, [1, 2, 7, math.inf])
    for p in preds[1:]:
        torch.testing.assert_close(p, preds[0])
    # alpha = 0: diag B^(t) = A^t, so each entry shrinks, the small ones fastest (sparsification)
    b1, b5 = b_diagonal(d, 0.4, 0.0, 1), b_diagonal(d, 0.4, 0.0, 5)
    torch.testing.assert_close(b5, b1**5)
    order = torch.argsort(d, descending=True)
    ratio = (b5 / b1)[order]
    assert (ratio.diff() <= 1e-12).all()


def test_dual_weights_first_step_is_plain_ridge():
    d = torch.tensor([3.0, 0.5, 0.0], dtype=torch.float64)
    for alpha in (0.0, 0.5):
        torch.testing.assert_close(dual_weights(d, 0.2, alpha, 1), 1 / (d + 0.2))


@pytest.mark.parametrize("alpha", sorted(TOY_PRINTED))
def test_official_toy_losses_golden(alpha):
    """The official notebook's printed losses (5 decimals) on its grid x = 0, 0.01, ..., 1."""
    x_train = torch.from_numpy(np.arange(0, 1.1, 0.1).reshape(-1, 1))
    x = torch.from_numpy(np.arange(0, 1.01, 0.01).reshape(-1, 1))
    y = torch.tensor(TOY_Y, dtype=torch.float64)
    k = rbf_kernel(x_train, x_train, 80.0)
    d, v = kernel_eigh(k)
    preds = distill_predict(rbf_kernel(x, x_train, 80.0), d, v, y, 0.2, alpha, [1, 2, 3, 4, 5, 6, math.inf])
    losses = squared_error(preds, torch.sin(2 * math.pi * x[:, 0])).numpy()
    np.testing.assert_array_equal(np.round(losses, 5), TOY_PRINTED[alpha])


def test_squared_error_sums_outputs_and_averages_points():
    pred = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    assert float(squared_error(pred, target)) == pytest.approx((1 + 4) / 2)
    assert float(squared_error(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))) == pytest.approx(5.0)


@pytest.mark.parametrize("kwargs, word", [({"alpha": 1.5}, "alpha"), ({"alpha": -0.1}, "alpha"),
                                          ({"c": 0.0}, r"c \(the ridge penalty\)"), ({"steps": 0}, "steps")])
def test_bad_input_names_the_parameter(kwargs, word):
    k, k_eval, y = small_problem()
    args = {"c": 0.2, "alpha": 0.3, "steps": 3, **kwargs}
    with pytest.raises(ValueError, match=word):
        distill_brute(k, k_eval, y, args["c"], args["alpha"], args["steps"])


@pytest.mark.slow
def test_paper_profile_runs_end_to_end_at_smoke_size():
    """The paper profile (all of MNIST-1D, no CIFAR, so tests/test_notebooks.py skips it) at smoke size."""
    import subprocess
    import sys

    from kdlib import results, run
    from kdlib.repro import REPO_ROOT

    assert "dataset" not in run.profile_file("selfdistill_krr", "paper")
    overrides = ["n_train=200", "pilot_seeds=4", "min_seeds=2", "seeds=2", "steps=3", "curve_steps=[10]",
                 "device=cpu"]
    proc = subprocess.run([sys.executable, "-m", "kdlib", "run", "selfdistill_krr", "--profile", "paper", "--force",
                           *[a for o in overrides for a in ("-p", o)]],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    params = run.resolve_parameters("selfdistill_krr", "paper", run.parse_overrides(overrides))
    _, results_file = run.destinations("selfdistill_krr", "paper", params, book=False)
    res = results.read(results_file)
    assert res["params"]["n_train"] == 200 and len(res["params"]["alphas"]) == 14
    assert {c["id"] for c in res["claims"]} >= {"sd_first_improves", "sd_collapses", "best_alpha_beats_teacher"}
