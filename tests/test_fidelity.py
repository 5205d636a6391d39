"""kdlib.lm.fidelity: golden top-1 accuracy, Spearman per seed, one grid cell end to end."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from kdlib.lm import fidelity, metrics
from kdlib.lm.cache import EvalSet
from kdlib.lm.models import build_lm
from kdlib.lm.oracle import MixtureHMMOracle

TINY = dict(arch="gpt2", n_layer=1, n_embd=8, n_head=1)


@pytest.fixture(scope="module")
def oracle():
    return MixtureHMMOracle(n_domains=2, n_states=4, n_vocab=6, seed=0)


def test_top1_accuracy_matches_brute_force_on_a_tiny_oracle(oracle):
    tokens = oracle.sample(5, 7, generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[:, 0] = False
    mask[0, 3] = False  # a hole in the mask must be skipped
    log_o = oracle.next_token_logprobs(tokens)
    model = build_lm(vocab_size=oracle.vocab_size, seed=1, **TINY)
    log_q = metrics.model_logprobs(model, tokens, oracle.n_vocab)
    hits = total = 0
    for i, t in itertools.product(range(tokens.shape[0]), range(1, tokens.shape[1])):
        if mask[i, t]:  # target token t is predicted at position t - 1
            total += 1
            hits += int(np.argmax(log_o[i, t - 1].numpy()) == np.argmax(log_q[i, t - 1].numpy()))
    assert fidelity.top1_accuracy(log_o, log_q, tokens, mask) == pytest.approx(hits / total)
    assert 0 < total < mask.numel()


def test_oracle_against_itself_is_100_percent_and_bad_shapes_fail(oracle):
    tokens = oracle.sample(4, 6, generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    log_o = oracle.next_token_logprobs(tokens)
    assert fidelity.top1_accuracy(log_o, log_o, tokens, mask) == 1.0
    with pytest.raises(ValueError, match="top1_accuracy"):
        fidelity.top1_accuracy(log_o, log_o[:, :, :3], tokens, mask)


def test_agreement_of_a_model_with_itself_is_100_percent(oracle):
    tokens = oracle.sample(4, 6, generator=torch.Generator().manual_seed(2))
    model = build_lm(vocab_size=oracle.vocab_size, seed=3, **TINY)
    other = build_lm(vocab_size=oracle.vocab_size, seed=4, **TINY)
    assert metrics.agreement(model, model, tokens, oracle.n_vocab) == 1.0
    assert metrics.agreement(model, other, tokens, oracle.n_vocab) < 1.0


def test_spearman_of_monotone_pairs_and_bad_input():
    x = [0.1, 0.5, 2.0, 3.0, 10.0]
    assert fidelity.spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert fidelity.spearman(x, [-v ** 3 for v in x]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="spearman"):
        fidelity.spearman([1, 2], [1, 2])


def test_grid_correlations_and_gains_are_per_seed():
    cells = pd.DataFrame({"seed": [0, 0, 0, 1, 1, 1], "teacher": "t", "student": ["a", "b", "c"] * 2,
                          "gain": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0], "agreement": [10, 20, 30, 30, 20, 10]})
    rho = {r["seed"]: r["rho"] for r in fidelity.grid_correlations(cells)}
    assert rho == pytest.approx({0: 1.0, 1: -1.0})
    gains = {(r["seed"], r["student"]): r["gain"] for r in fidelity.student_gains(cells)}
    assert gains[(1, "c")] == 3.0 and len(gains) == 6


def test_one_cell_runs_and_pairs_kd_with_its_baseline(oracle):
    tokens = oracle.sample(16, 8, generator=torch.Generator().manual_seed(3))
    ev = EvalSet(oracle, tokens, 1)
    teacher = build_lm(vocab_size=oracle.vocab_size, seed=5, **dict(TINY, n_embd=16)).eval()
    rows = fidelity.run_grid(oracle, ev, {"T": teacher}, {"S": TINY}, seed=0, steps=3, batch_size=4, seq_len=8,
                             lr=3e-3)
    assert [(r["method"], r["teacher"], r["student"]) for r in rows] == [("sft", "T", "S"), ("kd", "T", "S")]
    cells = fidelity.cell_frame(rows)
    kd, sft = rows[1], rows[0]
    assert len(cells) == 1
    assert cells.gain.iloc[0] == pytest.approx(kd["golden_acc"] - sft["golden_acc"])
    assert cells.agreement.iloc[0] == pytest.approx(kd["agreement_T"])
    for r in rows:
        assert 0 <= r["golden_acc"] <= 100 and 0 <= r["agreement"] <= 100 and r["golden_fkl"] >= 0
    # the same seed and data reproduce the same numbers
    again = fidelity.run_grid(oracle, ev, {"T": teacher}, {"S": TINY}, seed=0, steps=3, batch_size=4, seq_len=8,
                              lr=3e-3)
    assert [r["golden_acc"] for r in again] == [r["golden_acc"] for r in rows]
