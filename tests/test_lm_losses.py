"""Token-level LM losses on (N, T, V) logits with a mask: closed forms, limits, the shift.

The losses live in kdlib.losses (shared with the classification chapters);
kdlib.lm.methods.divergence dispatches to them by name. Convention tested here:
jsd(beta=0) = FKL(p_T || q_S), jsd(beta=1) = RKL(q_S || p_T); skew_fkl =
KL(p_T || a p_T + (1-a) q_S) and skew_rkl = KL(q_S || (1-a) p_T + a q_S) -> FKL, RKL as a -> 0.
"""

import math

import pytest
import torch

from kdlib.lm.methods import DIVERGENCES, divergence
from kdlib.lm.tokens import next_token_view, response_mask

# a 2-token, 3-word example: teacher and student distributions at two positions
P_T = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]
P_S = [[0.4, 0.4, 0.2], [0.3, 0.3, 0.4]]


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def closed_form(name, p, q, beta=0.5, alpha=0.1):
    """D(p_T=p || q_S=q) by hand, one position."""
    if name == "fkl":
        return kl(p, q)
    if name == "rkl":
        return kl(q, p)
    if name == "jsd":
        m = [beta * a + (1 - beta) * b for a, b in zip(p, q)]
        return beta * kl(p, m) + (1 - beta) * kl(q, m)
    if name == "tvd":
        return 0.5 * sum(abs(a - b) for a, b in zip(p, q))
    if name == "skew_fkl":
        return kl(p, [alpha * a + (1 - alpha) * b for a, b in zip(p, q)])
    if name == "skew_rkl":
        return kl(q, [(1 - alpha) * a + alpha * b for a, b in zip(p, q)])
    raise ValueError(name)


def logits_of(probs):
    return torch.tensor(probs).log()[None]  # (1, T, V); log-probs are valid logits


@pytest.mark.parametrize("name", DIVERGENCES)
def test_closed_form_on_two_tokens(name):
    s, t = logits_of(P_S), logits_of(P_T)
    expected = sum(closed_form(name, p, q) for p, q in zip(P_T, P_S)) / 2  # mean over tokens
    assert divergence(name, s, t, mask=torch.ones(1, 2, dtype=torch.bool)) == pytest.approx(expected, rel=1e-5)
    # with the second position masked out, only the first counts
    only_first = divergence(name, s, t, mask=torch.tensor([[True, False]]))
    assert only_first == pytest.approx(closed_form(name, P_T[0], P_S[0]), rel=1e-5)


@pytest.mark.parametrize("beta", [0.1, 0.5, 0.9])
def test_jsd_closed_form_at_other_betas(beta):
    s, t = logits_of(P_S), logits_of(P_T)
    expected = sum(closed_form("jsd", p, q, beta=beta) for p, q in zip(P_T, P_S)) / 2
    assert divergence("jsd", s, t, None, beta=beta) == pytest.approx(expected, rel=1e-5)


def random_logits(seed, shape=(3, 5, 7)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * 2, torch.randn(*shape, generator=g) * 2


def random_mask(seed, shape=(3, 5)):
    mask = torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < 0.6
    mask[0, 0] = True
    return mask


def test_jsd_limits_are_fkl_and_rkl():
    s, t = random_logits(0)
    mask = random_mask(0)
    fkl, rkl = divergence("fkl", s, t, mask), divergence("rkl", s, t, mask)
    assert torch.allclose(divergence("jsd", s, t, mask, beta=0.0), fkl)
    assert torch.allclose(divergence("jsd", s, t, mask, beta=1.0), rkl)
    # approaching the limits, the unnormalised JSD behaves like beta*FKL and (1-beta)*RKL
    eps = 1e-4
    assert divergence("jsd", s, t, mask, beta=eps) / eps == pytest.approx(float(fkl), rel=1e-2)
    assert divergence("jsd", s, t, mask, beta=1 - eps) / eps == pytest.approx(float(rkl), rel=1e-2)


def test_jsd_is_symmetric_at_one_half():
    s, t = random_logits(1)
    mask = random_mask(1)
    assert torch.allclose(divergence("jsd", s, t, mask, beta=0.5), divergence("jsd", t, s, mask, beta=0.5))


def test_skew_kl_tends_to_plain_kl_as_alpha_goes_to_zero():
    s, t = random_logits(2)
    mask = random_mask(2)
    for skew, plain in [("skew_fkl", "fkl"), ("skew_rkl", "rkl")]:
        target = divergence(plain, s, t, mask)
        assert torch.allclose(divergence(skew, s, t, mask, alpha=0.0), target)
        gaps = [abs(float(divergence(skew, s, t, mask, alpha=a) - target)) for a in (1e-2, 1e-3, 1e-4, 1e-5)]
        assert gaps[0] > gaps[1] > gaps[2] > gaps[3] and gaps[3] < 1e-3 * float(target)


@pytest.mark.parametrize("name", DIVERGENCES)
def test_zero_at_equality_nonnegative_and_masked_positions_ignored(name):
    s, t = random_logits(3)
    mask = random_mask(3)
    assert divergence(name, t, t, mask).abs() < 1e-6
    assert divergence(name, s, t, mask) > 0
    # change the logits wherever the mask is false: the loss must not move
    s2, t2 = s.clone(), t.clone()
    s2[~mask] += 5 * torch.randn_like(s2[~mask])
    t2[~mask] -= 3.0 * torch.randn_like(t2[~mask])
    assert torch.allclose(divergence(name, s2, t2, mask), divergence(name, s, t, mask))


@pytest.mark.parametrize("name", DIVERGENCES)
def test_fp32_inside_and_no_gradient_into_the_teacher(name):
    s, t = random_logits(4)
    s = s.to(torch.bfloat16).requires_grad_()
    loss = divergence(name, s, t.to(torch.bfloat16), None)
    assert loss.dtype == torch.float32
    loss.backward()
    assert s.grad is not None and torch.isfinite(s.grad.float()).all()


def test_next_token_view_does_the_shift_once():
    tokens = torch.tensor([[9, 1, 2, 3], [9, 4, 5, 6]])
    logits = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    mask = response_mask(tokens, 2)
    view_logits, targets, view_mask = next_token_view(logits, tokens, mask)
    assert torch.equal(view_logits, logits[:, :3])  # row t predicts token t + 1
    assert torch.equal(targets, tokens[:, 1:])
    assert view_mask.tolist() == [[False, True, True], [False, True, True]]
    assert next_token_view(logits, tokens)[2].all()
