"""SinKD for LMs (kdlib/lm/sinkd.py): position subsampling, the method's terms, the toy objectives."""

import pytest
import torch

from kdlib.losses import kd_loss, sinkd_loss, tvd
from kdlib.lm import toy
from kdlib.lm.models import build_lm
from kdlib.lm.sinkd import SinKD, fit_gaussian_to, grid_sinkhorn, sample_positions, sinkd_token_loss, toy_batch_sinkd
from kdlib.lm.tokens import lm_logits, next_token_view
from kdlib.train import train

V = 12


def _lm(seed):
    return build_lm(arch="gpt2", vocab_size=V + 2, n_layer=1, n_embd=8, n_head=1, seed=seed, max_len=17)


def _batch(seed=0, n=4, t=17):
    tokens = torch.randint(0, V, (n, t), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(n, t, dtype=torch.bool)
    return {"tokens": tokens, "mask": mask}


def test_positions_deterministic_per_seed_and_step():
    mask = torch.rand(8, 30, generator=torch.Generator().manual_seed(0)) > 0.3
    a, b = sample_positions(mask, 50, seed=3, step=7), sample_positions(mask, 50, seed=3, step=7)
    assert torch.equal(a, b) and a.numel() == 50
    assert not torch.equal(a, sample_positions(mask, 50, seed=4, step=7))
    assert not torch.equal(a, sample_positions(mask, 50, seed=3, step=8))
    assert mask.reshape(-1)[a].all() and a.unique().numel() == 50  # valid, without replacement
    assert torch.equal(sample_positions(mask, 10_000, seed=0), mask.reshape(-1).nonzero().squeeze(-1))
    with pytest.raises(ValueError, match="n_positions"):
        sample_positions(mask, 0, seed=0)


def test_method_loss_is_kl_plus_beta_sinkd_on_the_same_positions():
    student, teacher, batch = _lm(0), _lm(1), _batch()
    method = SinKD(V, kl_weight=1.0, sinkd_weight=0.3, n_positions=20, seed=5, teacher_temperature=0.5)
    method.step = 2
    terms = method(student, teacher, batch)
    s, _, m = next_token_view(lm_logits(student, batch["tokens"], V), batch["tokens"], batch["mask"])
    t = next_token_view(lm_logits(teacher, batch["tokens"], V), batch["tokens"], batch["mask"])[0] / 0.5
    idx = sample_positions(m, 20, seed=5, step=2)
    expect_sin = 0.3 * sinkd_loss(s.reshape(-1, V)[idx], t.reshape(-1, V)[idx])
    assert torch.allclose(terms["kl"], kd_loss(s, t, 1.0, mask=m), atol=1e-6)
    assert torch.allclose(terms["sinkd"], expect_sin, atol=1e-6)
    assert torch.allclose(terms["sinkd"], 0.3 * sinkd_token_loss(s, t, m, 20, 5, 2), atol=1e-6)
    assert set(SinKD(V, kl_weight=0.0, sinkd_weight=1.0)(student, teacher, batch)) == {"sinkd"}
    assert set(SinKD(V, sinkd_weight=0.0)(student, teacher, batch)) == {"kl"}


def test_gradient_reaches_the_student_only():
    student, teacher, batch = _lm(0), _lm(1), _batch()
    terms = SinKD(V, kl_weight=1.0, sinkd_weight=1.0, n_positions=16)(student, teacher, batch)
    sum(terms.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_sinkd_alone_is_blind_to_which_position_is_which():
    # permutation invariance: shuffling the teacher's positions leaves SinKD (nearly) unchanged, KL not
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(1, 40, V, generator=g), torch.randn(1, 40, V, generator=g)
    m = torch.ones(1, 40, dtype=torch.bool)
    perm = torch.randperm(40, generator=g)
    a, b = sinkd_token_loss(s, t, m, 64), sinkd_token_loss(s, t[:, perm], m, 64)
    assert torch.allclose(a, b, rtol=1e-3)
    assert not torch.allclose(kd_loss(s, t, 1.0), kd_loss(s, t[:, perm], 1.0), rtol=1e-2)


def test_bad_input():
    with pytest.raises(ValueError, match="kl_weight"):
        SinKD(V, kl_weight=0.0, sinkd_weight=0.0)
    with pytest.raises(ValueError, match="teacher_temperature"):
        SinKD(V, teacher_temperature=0.0)
    with pytest.raises(ValueError, match="aligned"):
        sinkd_token_loss(torch.zeros(4, V), torch.zeros(4, V), torch.ones(4, dtype=torch.bool))


def test_toy_batch_sinkd_is_scaled_tvd_at_its_temperature():
    x = toy.grid(61)
    s, t = toy.gaussian_logits(x, torch.tensor(0.3), torch.tensor(0.0)), toy.bimodal_logits(x)
    expect = 2 * 8 * tvd(s[None], t[None], temperature=2.0)
    assert torch.allclose(toy_batch_sinkd(s, t, batch=8), expect, rtol=1e-4)


def test_grid_sinkhorn_approaches_w1_and_is_zero_ish_at_equality():
    x = toy.grid(61)
    t = toy.bimodal_logits(x)
    s = toy.gaussian_logits(x, torch.tensor(0.0), torch.tensor(0.5))
    p, q = s.softmax(-1), t.softmax(-1)
    w1 = float(((p.cumsum(0) - q.cumsum(0)).abs()[:-1] * (x[1] - x[0])).sum())  # exact 1-D W1
    assert abs(float(grid_sinkhorn(s, t, x, eps=0.02, n_iters=500)) - w1) < 0.05 * w1
    assert float(grid_sinkhorn(t, t, x, eps=0.02, n_iters=500)) < 0.1 * w1


def test_fit_gaussian_to_reduces_the_loss():
    x = toy.grid(61)
    f = fit_gaussian_to(lambda s, t: toy_batch_sinkd(s, t), toy.bimodal_logits(x), x, steps=40)
    assert f["losses"][-1] < f["losses"][0] and f["logprobs"].shape == (61,)


def test_short_run_trains():
    from kdlib.lm.oracle import MixtureHMMOracle
    from kdlib.lm.models import oracle_stream
    oracle = MixtureHMMOracle(n_domains=2, n_states=8, n_vocab=V, seed=0)
    teacher, student = _lm(1), _lm(0)
    method = SinKD(oracle.n_vocab, sinkd_weight=0.01, n_positions=32, teacher_temperature=0.5)
    data = oracle_stream(oracle, 4, 16)
    before = sum(method(student, teacher, data(0, torch.Generator().manual_seed(0))).values()).item()
    train(student, method, data, teacher=teacher, steps=15, lr=1e-2, optimizer="adamw", seed=0, progress=False)
    after = sum(method(student, teacher, data(0, torch.Generator().manual_seed(0))).values()).item()
    assert after < before
