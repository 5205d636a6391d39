"""The loss conventions of the book, tested once: properties, limits, identities, golden values."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdlib import losses as L

DIVERGENCES = [
    lambda s, t: L.kd_loss(s, t, 4.0),
    lambda s, t: L.reverse_kl(s, t),
    lambda s, t: L.generalized_jsd(s, t, 0.5),
    lambda s, t: L.tvd(s, t),
    lambda s, t: L.skew_forward_kl(s, t, 0.1),
    lambda s, t: L.skew_reverse_kl(s, t, 0.1),
    lambda s, t: L.logit_mse(s, t),
]
NAMES = ["kd", "rkl", "jsd", "tvd", "skfkl", "skrkl", "mse"]


@pytest.mark.parametrize("loss", DIVERGENCES, ids=NAMES)
def test_nonnegative_and_scalar(loss, logits):
    s, t, _ = logits
    value = loss(s, t)
    assert value.dim() == 0 and value.item() >= 0


@pytest.mark.parametrize("loss", DIVERGENCES, ids=NAMES)
def test_zero_at_equality(loss, logits):
    s, _, _ = logits
    assert loss(s, s.clone()).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("loss", DIVERGENCES, ids=NAMES)
def test_no_gradient_reaches_the_teacher(loss, logits):
    s, t, _ = logits
    s = s.clone().requires_grad_()
    t = t.clone().requires_grad_()
    loss(s, t.detach()).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_kd_matches_torch_kl_div_with_t_squared(logits):
    s, t, _ = logits
    for T in (1.0, 4.0, 20.0):
        ref = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True, reduction="batchmean")
        assert L.kd_loss(s, t, T).item() == pytest.approx(T**2 * ref.item(), rel=1e-5)


def test_kd_t_squared_keeps_gradient_scale(logits):
    """Hinton Sec. 2.1: at high T the soft gradient ~ (z_s - z_t) / (N T^2); T^2 undoes the 1/T^2."""
    s, t, _ = logits
    s, t = s - s.mean(-1, keepdim=True), t - t.mean(-1, keepdim=True)  # zero-mean logits
    s = s.clone().requires_grad_()
    L.kd_loss(s.double(), t.double(), 1000.0).backward()
    expected = (s.detach() - t) / (s.shape[-1] * s.shape[0])
    assert torch.allclose(s.grad, expected, rtol=1e-2, atol=1e-4)


def test_kd_golden_value(logits):
    s, t, _ = logits
    # computed once with this implementation; guards against silent convention changes
    assert L.kd_loss(s, t, 4.0).item() == pytest.approx(GOLDEN["kd_T4"], rel=1e-5)
    assert L.reverse_kl(s, t).item() == pytest.approx(GOLDEN["rkl"], rel=1e-5)
    assert L.generalized_jsd(s, t, 0.5).item() == pytest.approx(GOLDEN["jsd"], rel=1e-5)
    assert L.tvd(s, t).item() == pytest.approx(GOLDEN["tvd"], rel=1e-5)
    assert L.dkd_loss(s, t, logits[2], 1.0, 8.0, 4.0).item() == pytest.approx(GOLDEN["dkd"], rel=1e-5)


GOLDEN = {  # computed once on the seeded tensors of conftest.logits
    "kd_T4": 1.9946681261062622,
    "rkl": 1.7237013578414917,
    "jsd": 0.27760231494903564,
    "tvd": 0.5975373983383179,
    "dkd": 14.856497764587402,
}


def test_dkd_decomposition_per_sample(logits):
    """Zhao et al. 2022, Eq. 7: KL(p_t || p_s) = TCKD + (1 - p_t,gt) * NCKD, per sample."""
    s, t, y = logits
    for T in (1.0, 4.0):
        tckd, nckd, p_gt = L.dkd_terms(s, t, y, T)
        log_s, log_t = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
        kl = (log_t.exp() * (log_t - log_s)).sum(-1)
        assert torch.allclose(tckd + (1 - p_gt) * nckd, kl, atol=1e-5)
        assert (tckd >= -1e-7).all() and (nckd >= -1e-7).all()


def test_dkd_with_alpha_one_and_beta_one_minus_pgt_is_kd(logits):
    s, t, y = logits
    tckd, nckd, p_gt = L.dkd_terms(s, t, y, 4.0)
    assert (16 * (tckd + (1 - p_gt) * nckd)).mean().item() == pytest.approx(L.kd_loss(s, t, 4.0).item(), rel=1e-5)
    assert L.dkd_loss(s, t, y, 1.0, 0.0, 4.0).item() == pytest.approx(16 * tckd.mean().item(), rel=1e-5)


def test_jsd_limits_and_symmetry(logits):
    s, t, _ = logits
    assert L.generalized_jsd(s, t, 0.0).item() == pytest.approx(L.kd_loss(s, t, 1.0).item(), rel=1e-6)
    assert L.generalized_jsd(s, t, 1.0).item() == pytest.approx(L.reverse_kl(s, t).item(), rel=1e-6)
    assert L.generalized_jsd(s, t, 0.5).item() == pytest.approx(L.generalized_jsd(t, s, 0.5).item(), rel=1e-6)
    # continuity: JSD_beta / beta -> FKL as beta -> 0, JSD_beta / (1 - beta) -> RKL as beta -> 1
    eps = 1e-4
    assert (L.generalized_jsd(s, t, eps) / eps).item() == pytest.approx(L.kd_loss(s, t, 1.0).item(), rel=1e-2)
    assert (L.generalized_jsd(s, t, 1 - eps) / eps).item() == pytest.approx(L.reverse_kl(s, t).item(), rel=1e-2)
    # bounded by log 2 at beta = 0.5 (per sample, so also in mean)
    assert L.generalized_jsd(s, t, 0.5).item() <= math.log(2) * 0.5 + 1e-6
    with pytest.raises(ValueError, match="beta"):
        L.generalized_jsd(s, t, 1.5)


def test_skew_kl_limits(logits):
    s, t, _ = logits
    assert L.skew_forward_kl(s, t, 0.0).item() == pytest.approx(L.kd_loss(s, t, 1.0).item(), rel=1e-6)
    assert L.skew_reverse_kl(s, t, 0.0).item() == pytest.approx(L.reverse_kl(s, t).item(), rel=1e-6)
    # skewing toward the target distribution can only shrink the divergence
    assert L.skew_forward_kl(s, t, 0.5).item() < L.kd_loss(s, t, 1.0).item()


def test_tvd_closed_form_and_bound():
    s = torch.log(torch.tensor([[0.5, 0.5, 1e-12]]))
    t = torch.log(torch.tensor([[1.0, 1e-12, 1e-12]]))
    assert L.tvd(s, t).item() == pytest.approx(0.5, abs=1e-6)
    g = torch.Generator().manual_seed(1)
    assert L.tvd(torch.randn(4, 5, generator=g) * 9, torch.randn(4, 5, generator=g) * 9).item() <= 1.0


def test_sequence_shapes_and_mask(logits):
    """(N, T, V) logits: batchmean is the mean over unmasked tokens; masked tokens do not count."""
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    flat = L.kd_loss(s[mask], t[mask], 2.0)
    assert L.kd_loss(s, t, 2.0, mask=mask).item() == pytest.approx(flat.item(), rel=1e-6)
    garbage = t.clone()
    garbage[~mask] = 1e4  # whatever sits under the mask is ignored
    for fn in (L.reverse_kl, L.tvd, L.generalized_jsd):
        assert fn(s, garbage, mask=mask).item() == pytest.approx(fn(s, t, mask=mask).item(), rel=1e-6)


def test_low_precision_inputs_computed_in_fp32(logits):
    s, t, _ = logits
    assert L.kd_loss(s.half(), t.half(), 4.0).dtype == torch.float32
