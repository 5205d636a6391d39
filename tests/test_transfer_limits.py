"""Zhao & Zhu (2023) tabular transfer: losses, closed-form learners, instances, exact expectations."""

import itertools
import math

import numpy as np
import pytest
import torch

from kdlib import run
from kdlib.experiments import transfer_limits as tl

LEARNERS = tl.LEARNERS


def _teacher(rng, s, a):
    t = rng.dirichlet(np.ones(a), size=s)
    return t


# ----------------------------------------------------------------------- closed forms


def test_golden_values_on_a_hand_made_table():
    teacher = np.array([[0.5, 0.3, 0.2], [0.6, 0.4, 0.0], [0.1, 0.1, 0.8]])
    counts = np.array([[2, 1, 0], [0, 0, 0], [1, 0, 3]])
    np.testing.assert_allclose(tl.ce_sgl_estimate(counts), [[2 / 3, 1 / 3, 0], [1 / 3] * 3, [0.25, 0, 0.75]])
    # CE_ptl ∝ n_sa pi*: state 0: (1.0, 0.3, 0) / 1.3; state 2: (0.1, 0, 2.4) / 2.5
    np.testing.assert_allclose(tl.ce_ptl_estimate(counts, teacher), [[1 / 1.3, 0.3 / 1.3, 0], [1 / 3] * 3, [0.04, 0, 0.96]])
    # SEL_ptl: pi* on seen pairs, leftover spread over unseen labels
    np.testing.assert_allclose(tl.sel_ptl_estimate(counts, teacher), [[0.5, 0.3, 0.2], [1 / 3] * 3, [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(tl.ce_ful_estimate(counts, teacher), [[0.5, 0.3, 0.2], [1 / 3] * 3, [0.1, 0.1, 0.8]])
    rho = np.array([0.5, 0.25, 0.25])
    # TV of CE_sgl: s0: 0.5*(|2/3-.5|+|1/3-.3|+.2)=0.2; s1: 0.5*(|1/3-.6|+|1/3-.4|+1/3)=1/3; s2: 0.5*(.15+.1+.05)=0.15
    assert tl.tv_risk(tl.ce_sgl_estimate(counts), teacher, rho) == pytest.approx(0.5 * 0.2 + 0.25 / 3 + 0.25 * 0.15)
    # SEL with two unseen labels: leftover 0.5 split evenly
    np.testing.assert_allclose(tl.sel_ptl_estimate(np.array([[1, 0, 0]]), teacher[:1]), [[0.5, 0.25, 0.25]])


def test_estimates_are_distributions_and_batch_like_single_tables():
    rng = np.random.default_rng(0)
    teacher = _teacher(rng, 6, 5)
    rho = rng.dirichlet(np.ones(6))
    batch = tl.sample_counts(rng, rho, teacher, 12, size=7)  # small n: unseen states and labels
    for name in LEARNERS:
        est = tl.ESTIMATORS[name](batch, teacher)
        assert est.shape == batch.shape
        assert (est >= 0).all()
        np.testing.assert_allclose(est.sum(-1), 1.0, atol=1e-12)
        for k in range(len(batch)):
            np.testing.assert_array_equal(est[k], tl.ESTIMATORS[name](batch[k], teacher))


def test_each_learner_reads_only_what_its_protocol_reveals():
    """CE_sgl ignores pi*; CE_ptl and SEL_ptl read pi*(a|s) on sampled pairs only; CE_ful on sampled inputs."""
    rng = np.random.default_rng(1)
    teacher = _teacher(rng, 5, 6)
    counts = tl.sample_counts(rng, np.full(5, 0.2), teacher, 8, size=1)[0]
    other = _teacher(rng, 5, 6)
    pair_seen, state_seen = counts > 0, counts.sum(-1, keepdims=True) > 0
    same_pairs = np.where(pair_seen, teacher, other)
    same_states = np.where(state_seen, teacher, other)
    np.testing.assert_array_equal(tl.ESTIMATORS["CE_sgl"](counts, teacher), tl.ESTIMATORS["CE_sgl"](counts, other))
    for name in ("CE_ptl", "SEL_ptl"):
        np.testing.assert_allclose(tl.ESTIMATORS[name](counts, teacher), tl.ESTIMATORS[name](counts, same_pairs))
    np.testing.assert_allclose(tl.ce_ful_estimate(counts, teacher), tl.ce_ful_estimate(counts, same_states))


def _minimise(loss, shape, steps=400):
    z = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([z], lr=1, max_iter=steps, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = loss(z)
        value.backward()
        return value

    opt.step(closure)
    return z.detach().softmax(-1).numpy()


def test_closed_forms_are_the_minimisers_of_the_papers_losses():
    """Eq. 3.3, 4.3, 5.2 are the argmins of Eq. 3.2, 4.2, 5.2 (on seen inputs, every label seen)."""
    rng = np.random.default_rng(2)
    teacher = _teacher(rng, 3, 4)
    counts = np.array([[3, 1, 2, 5], [1, 1, 4, 2], [0, 0, 0, 0]])  # the last input is unseen: free
    c, t = torch.as_tensor(counts, dtype=torch.float64), torch.as_tensor(teacher)
    cases = {"CE_sgl": lambda z: tl.ce_sgl_loss(z, c), "CE_ptl": lambda z: tl.ce_ptl_loss(z, c, t),
             "CE_ful": lambda z: tl.ce_ful_loss(z, c, t)}
    for name, loss in cases.items():
        found = _minimise(loss, counts.shape)
        np.testing.assert_allclose(found[:2], tl.ESTIMATORS[name](counts, teacher)[:2], atol=1e-6, err_msg=name)


def test_sel_ptl_estimate_attains_the_minimum_zero_of_eq_4_6():
    rng = np.random.default_rng(3)
    teacher = _teacher(rng, 4, 5)
    counts = tl.sample_counts(rng, np.full(4, 0.25), teacher, 9, size=1)[0]
    c, t = torch.as_tensor(counts, dtype=torch.float64), torch.as_tensor(teacher)
    at_estimate = tl.sel_ptl_loss(torch.as_tensor(tl.sel_ptl_estimate(counts, teacher)).log(), c, t)
    assert float(at_estimate) == pytest.approx(0.0, abs=1e-24)
    found = _minimise(lambda z: tl.sel_ptl_loss(z, c, t), counts.shape)
    np.testing.assert_allclose(found[counts > 0], teacher[counts > 0], atol=1e-6)  # the argmin set of Eq. 4.7
    assert float(tl.sel_ptl_loss(torch.as_tensor(teacher).log(), c, t)) == pytest.approx(0.0, abs=1e-24)


def test_losses_are_nonnegative_and_zero_at_the_teacher():
    rng = np.random.default_rng(4)
    teacher = torch.as_tensor(_teacher(rng, 3, 4))
    counts = torch.as_tensor(tl.sample_counts(rng, np.full(3, 1 / 3), teacher.numpy(), 20, size=1)[0])
    z = torch.randn(3, 4, dtype=torch.float64)
    for loss in (tl.sel_ptl_loss, tl.ce_ful_loss):
        assert float(loss(z, counts, teacher)) > 0
        assert float(loss(teacher.log(), counts, teacher)) == pytest.approx(0.0, abs=1e-12)
    assert float(tl.ce_sgl_loss(z, counts)) > 0 and float(tl.ce_ptl_loss(z, counts, teacher)) > 0


# ----------------------------------------------------------------------- data and exact expectations


def test_counts_from_samples_match_a_loop_and_the_multinomial_law():
    rng = np.random.default_rng(5)
    states, actions = rng.integers(0, 3, 50), rng.integers(0, 4, 50)
    loop = np.zeros((3, 4), dtype=int)
    for s, a in zip(states, actions):
        loop[s, a] += 1
    np.testing.assert_array_equal(tl.counts_from_samples(states, actions, 3, 4), loop)
    rho, teacher = np.array([0.2, 0.3, 0.5]), _teacher(rng, 3, 4)
    draws = tl.sample_counts(rng, rho, teacher, 40, size=20000)
    assert (draws.sum((-2, -1)) == 40).all()
    p = rho[:, None] * teacher
    se = np.sqrt(40 * p * (1 - p) / 20000)
    assert np.all(np.abs(draws.mean(0) - 40 * p) < 5 * se + 1e-12)


def _exact_expected_risks(rho, teacher, n):
    """E TV(pi_hat, pi* | rho) of each learner by enumerating every count table of n samples."""
    p = (rho[:, None] * teacher).ravel()
    cells = p.size
    totals = dict.fromkeys(LEARNERS, 0.0)
    for bars in itertools.combinations(range(n + cells - 1), cells - 1):  # stars and bars
        edges = (-1, *bars, n + cells - 1)
        flat = np.array([edges[k + 1] - edges[k] - 1 for k in range(cells)])
        prob = math.factorial(n) * np.prod([pk**c / math.factorial(c) for pk, c in zip(p, flat)])
        counts = flat.reshape(teacher.shape)
        for name in LEARNERS:
            totals[name] += prob * float(tl.tv_risk(tl.ESTIMATORS[name](counts, teacher), teacher, rho))
    return totals


def test_monte_carlo_risk_matches_brute_force_enumeration():
    rho, teacher = np.array([0.7, 0.3]), np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    n = 5
    exact = _exact_expected_risks(rho, teacher, n)
    # CE_ful has a closed form: an input is missed with probability (1 - rho)^n and then costs TV(Uniform, pi*)
    tv_unif = 0.5 * np.abs(teacher - 1 / 3).sum(-1)
    assert exact["CE_ful"] == pytest.approx(float((rho * (1 - rho) ** n * tv_unif).sum()), rel=1e-12)
    rng = np.random.default_rng(6)
    repeats = 40000
    counts = tl.sample_counts(rng, rho, teacher, n, size=repeats)
    for name in LEARNERS:
        risks = tl.tv_risk(tl.ESTIMATORS[name](counts, teacher), teacher, rho)
        se = risks.std() / math.sqrt(repeats)
        assert abs(risks.mean() - exact[name]) < 4 * se + 1e-12, name
    mean = tl.mean_risks(np.random.default_rng(7), rho, teacher, n, 20000, chunk=3000)
    assert mean["CE_sgl"] == pytest.approx(exact["CE_sgl"], abs=0.01)


def test_consistency_and_the_bias_of_lemma_4_2():
    rng = np.random.default_rng(8)
    rho, teacher = tl.instance0(4, 5)
    counts = tl.sample_counts(rng, rho, teacher, 10**8, size=1)[0]
    for name in ("CE_sgl", "SEL_ptl", "CE_ful"):
        np.testing.assert_allclose(tl.ESTIMATORS[name](counts, teacher), teacher, atol=1e-3, err_msg=name)
    np.testing.assert_allclose(tl.ce_ptl_estimate(counts, teacher), tl.naive_limit(teacher), atol=1e-3)
    assert not np.allclose(tl.naive_limit(teacher), teacher, atol=0.1)
    # unbiased when pi* is uniform (Thm 4.3)
    uniform = np.full((2, 4), 0.25)
    np.testing.assert_allclose(tl.naive_limit(uniform), uniform)


def test_instance0_plateau_is_the_closed_form():
    rho, teacher = tl.instance0(100, 25)
    heavy, light = 0.52, 0.02
    expected = heavy**2 / (heavy**2 + 24 * light**2) - heavy
    assert float(tl.tv_risk(tl.naive_limit(teacher), teacher, rho)) == pytest.approx(expected)
    assert expected == pytest.approx(0.4457, abs=1e-4)
    assert teacher[0, 1] == pytest.approx(heavy)  # s = 1 (1-based) puts its Dirac on label s mod |A| + 1 = 2


@pytest.mark.parametrize("instance", [0, 1, 2, 3])
@pytest.mark.parametrize("shape", [(100, 25), (7, 6)])
def test_instances_are_distributions(instance, shape):
    s, a = shape
    rho, teacher = tl.INSTANCES[instance](s, a, 5000)
    assert rho.shape == (s,) and teacher.shape == (s, a)
    assert (rho >= 0).all() and rho.sum() == pytest.approx(1)
    assert (teacher >= 0).all()
    np.testing.assert_allclose(teacher.sum(-1), 1)


def test_instances_refuse_sample_sizes_they_are_not_defined_for():
    with pytest.raises(ValueError, match="= 1199"):
        tl.instance2(100, 25, 1000)
    with pytest.raises(ValueError, match="= 1199"):
        tl.instance3(100, 25, 1000)
    with pytest.raises(ValueError, match="instance 1 needs n"):
        tl.instance1(100, 25, 100)
    r2 = tl.instance2(100, 25, 1199)[1]
    assert r2[:, -1].min() >= 0 and (r2[:, 0:24:2] == 100 / 1200).all() and (r2[:, 1:24:2] == 0).all()


def test_fit_slope_recovers_a_power_law_and_refuses_zero_risk():
    ns = np.array([1e3, 1e4, 1e5])
    assert tl.fit_slope(ns, 3 * ns**-0.5) == pytest.approx(-0.5)
    assert math.isnan(tl.fit_slope(ns, [0.1, 0.01, 0.0]))
    assert math.isnan(tl.fit_slope(ns, [0.1, 0.01, 1e-17]))  # float residue of an exact learner
    assert tl.log_grid(2, 3, 2) == [100, 316, 1000]


def test_simulate_is_deterministic_and_covers_the_grid():
    rows = tl.simulate(3, 2, 10, 5, [100, 1000], repeats=4)
    assert len(rows) == 2 * len(LEARNERS)
    assert rows == tl.simulate(3, 2, 10, 5, [100, 1000], repeats=4)
    assert rows != tl.simulate(4, 2, 10, 5, [100, 1000], repeats=4)


def test_paper_profile_grid_is_valid_for_every_instance():
    """The paper profile end to end on its own grid, one data set per point (what the notebook runs)."""
    p = {**run.notebook_parameters(run.notebook_path("transfer_limits")),
         **run.resolve_parameters("transfer_limits", "paper")}
    grids = {0: tl.log_grid(p["log_n_min"], p["log_n_max"], p["points_per_decade"])}
    grids.update({i: tl.log_grid(p["rate_log_n_min"], p["log_n_max"], p["points_per_decade"]) for i in (1, 2, 3)})
    for i, ns in grids.items():
        rows = tl.simulate(0, i, p["num_states"], p["num_actions"], ns, repeats=1)
        assert all(np.isfinite(r["tv"]) for r in rows)
    assert max(grids[0]) == 10**7


@pytest.mark.slow
def test_paper_profile_runs_at_smoke_size(tmp_path):
    import subprocess
    import sys

    from kdlib.repro import REPO_ROOT

    proc = subprocess.run([sys.executable, "-m", "kdlib", "run", "transfer_limits", "--profile", "paper", "--force",
                           *[x for o in ("repeats=2", "pilot_seeds=4", "min_seeds=2", "seeds=2") for x in ("-p", o)]],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=900,
                          env={**__import__("os").environ, "KDLIB_RESULTS_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
