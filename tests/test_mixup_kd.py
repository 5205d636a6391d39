"""Mixup-KD: the std-scaled KD loss (properties, invariances, golden values), mixup batches, the methods."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdlib import zoo
from kdlib.losses import entropy, kd_loss, std_kd_loss, std_scale
from kdlib.methods import KD
from kdlib.experiments.mixup_kd import fit_mixup_teacher, mixup_teacher_spec
from kdlib.methods.mixup_kd import MixupCE, MixupKD, beta_draws, mixup_batch
from kdlib.models import build
from kdlib.tasks import teacher_spec
from kdlib.train import train


def seeded():
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 10, generator=g), 3 * torch.randn(4, 10, generator=g)


def official(logit_s, logit_t):
    """The official MIXSTD KD term written out with torch's own ops (hchoi71/MIX-KD, distiller_zoo/MIXSTD.py)."""
    p_s = F.log_softmax(logit_s / torch.std(logit_s, dim=-1, keepdim=True), dim=1)
    p_t = F.softmax(logit_t / torch.std(logit_t, dim=-1, keepdim=True), dim=1)
    return F.kl_div(p_s, p_t, reduction="batchmean")


def test_golden_values():
    s, t = seeded()
    # computed once with torch 2.x on the seeded tensors above
    assert std_kd_loss(s, t).item() == pytest.approx(0.7911527156829834, rel=1e-5)
    assert entropy(t).mean().item() == pytest.approx(0.9428150653839111, rel=1e-5)


def test_matches_the_official_formula():
    s, t = seeded()
    assert std_kd_loss(s, t).item() == pytest.approx(official(s, t).item(), rel=1e-5)


def test_nonnegative_zero_at_equality_and_scale_invariant():
    s, t = seeded()
    assert std_kd_loss(s, t).item() >= 0
    assert std_kd_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)
    # a positive rescaling (and a shift) of either model's logits changes nothing: a per-sample temperature
    assert std_kd_loss(s, 7.0 * t + 2.0).item() == pytest.approx(std_kd_loss(s, t).item(), rel=1e-5)
    assert std_kd_loss(0.1 * t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(std_scale(t).std(-1), torch.ones(4), atol=1e-5)
    # kd_loss is not scale invariant: the contrast the chapter's exercise shows
    assert kd_loss(s, 3 * t, 4.0).item() != pytest.approx(kd_loss(s, t, 4.0).item(), rel=1e-3)


def test_no_gradient_into_the_teacher():
    s, t = seeded()
    s.requires_grad_(True)
    t.requires_grad_(True)
    with torch.no_grad():
        t_detached = t.detach()
    std_kd_loss(s, t_detached).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_entropy_limits():
    assert entropy(torch.zeros(3, 10)).tolist() == pytest.approx([math.log(10)] * 3, rel=1e-6)
    assert entropy(torch.tensor([[100.0, 0, 0]])).item() == pytest.approx(0.0, abs=1e-6)
    z = torch.randn(5, 10)
    assert (entropy(z, 8.0) > entropy(z, 1.0)).all()  # a higher T smooths


def test_mixup_batch_is_a_convex_combination():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(50, 40), torch.randint(0, 10, (50,))
    x_mix, y_mix, lam = mixup_batch(x, y, 10, g)
    assert x_mix.shape == x.shape and y_mix.shape == (50, 10)
    assert ((lam >= 0) & (lam <= 1)).all()
    assert torch.allclose(y_mix.sum(-1), torch.ones(50))
    # each mixed label puts weight lam on the sample's own class
    own = y_mix.gather(1, y[:, None]).squeeze(1)
    assert (own >= lam - 1e-6).all()
    # the same seed gives the same batch
    again = mixup_batch(x, y, 10, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], x_mix) and torch.equal(again[2], lam)


def test_partial_mixup_mixes_the_stated_fraction():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(100, 40), torch.randint(0, 10, (100,))
    x_mix, y_mix, lam = mixup_batch(x, y, 10, g, mix_fraction=0.1)
    assert int((lam < 1).sum()) <= 10 and int((lam == 1).sum()) >= 90
    kept = lam == 1
    assert torch.equal(x_mix[kept], x[kept]) and torch.equal(y_mix[kept], F.one_hot(y[kept], 10).float())
    x0, _, lam0 = mixup_batch(x, y, 10, g, mix_fraction=0.0)
    assert torch.equal(x0, x) and (lam0 == 1).all()
    with pytest.raises(ValueError, match="mix_fraction"):
        mixup_batch(x, y, 10, g, mix_fraction=1.5)


def test_beta_draws():
    g = torch.Generator().manual_seed(3)
    u = beta_draws(4000, 0.4, g)
    assert ((u >= 0) & (u <= 1)).all()
    assert u.mean().item() == pytest.approx(0.5, abs=0.03)  # symmetric
    # Beta(0.4, 0.4) puts more mass near 0 and 1 than the uniform does
    assert ((u < 0.1) | (u > 0.9)).float().mean().item() > 0.3
    with pytest.raises(ValueError, match="beta_a"):
        beta_draws(3, 0.0, g)


def test_no_mixup_fixed_t_equals_kd():
    s, t = seeded()
    y = torch.tensor([1, 2, 3, 4])
    m = MixupKD(mix="none", temperature=4.0, ce_weight=0.1, kd_weight=0.9)
    _, y_soft = m.mixed(torch.zeros(4, 40), y)
    ours = m.loss_terms(s, t, y_soft)
    ref = KD(temperature=4.0, alpha=0.9).terms_from_logits(s, t, y)
    assert ours["kd"].item() == pytest.approx(ref["kd"].item(), rel=1e-6)
    assert ours["ce"].item() == pytest.approx(ref["ce"].item(), rel=1e-6)


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="mix"):
        MixupKD(mix="half")
    with pytest.raises(ValueError, match="temperature"):
        MixupKD(temperature="cold")


@pytest.mark.parametrize("mix,temperature", [("full", 4.0), ("partial", "std")])
def test_short_run_trains_and_leaves_the_teacher_alone(mix, temperature):
    torch.manual_seed(0)
    x, y = torch.randn(64, 40), torch.randint(0, 10, (64,))
    teacher = build("mlp", in_dim=40, hidden=[16], num_classes=10)
    before = [p.clone() for p in teacher.parameters()]
    student = build("mlp", in_dim=40, hidden=[16], num_classes=10)
    hist = train(student, MixupKD(mix=mix, temperature=temperature, seed=0), (x, y), teacher=teacher,
                 epochs=3, batch_size=16, progress=False)
    assert all(math.isfinite(v) for v in hist["loss"]) and set(hist) >= {"ce", "kd"}
    assert hist["loss"][-1] < hist["loss"][0]
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))


def test_mixup_teacher_through_the_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_CACHE", str(tmp_path))
    spec = teacher_spec("digits", "mlp", 10, {"epochs": 1, "batch_size": 64, "lr": 1e-3}, hidden=[8])
    mspec = mixup_teacher_spec(spec, 1.0)
    assert zoo.spec_key(mspec, fit=fit_mixup_teacher) != zoo.spec_key(spec)
    t = zoo.get(mspec, fit=fit_mixup_teacher, progress=False)
    assert 0 <= t.zoo_meta["metrics"]["acc"] <= 100
    again = zoo.get(mspec, fit=fit_mixup_teacher, progress=False)  # cached: the same weights
    assert all(torch.equal(a, b) for a, b in zip(t.state_dict().values(), again.state_dict().values()))
    h = train(build("mlp", in_dim=64, hidden=[8], num_classes=10), MixupCE(num_classes=10), (torch.randn(32, 64), torch.randint(0, 10, (32,))),
              epochs=1, batch_size=16, progress=False)
    assert math.isfinite(h["ce"][0])
