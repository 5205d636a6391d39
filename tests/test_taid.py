"""TAID (Shing et al., ICLR 2025): the interpolated target, its loss, the schedule of t, a short run."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdlib.losses import kd_loss
from kdlib.lm.models import build_lm, oracle_stream
from kdlib.lm.oracle import MixtureHMMOracle
from kdlib.lm.taid import TAID, TAIDSchedule, taid_loss, taid_target
from kdlib.train import train


def logits(seed, shape=(3, 5, 7), scale=2.0):
    return scale * torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_target_interpolates_in_logit_space_with_the_student_detached():
    s, t = logits(0).requires_grad_(), logits(1)
    p = taid_target(s, t, 0.3)
    assert not p.requires_grad
    torch.testing.assert_close(p, F.softmax(0.7 * s.detach() + 0.3 * t, -1))
    torch.testing.assert_close(p.sum(-1), torch.ones(3, 5))


def test_t0_target_is_the_student_and_gives_no_signal_toward_the_teacher():
    s = logits(0)
    torch.testing.assert_close(taid_target(s, logits(1), 0.0), F.softmax(s, -1))
    grads = []
    for teacher_seed in (1, 2):  # two different teachers: the same (zero) gradient
        x = s.clone().requires_grad_()
        taid_loss(x, logits(teacher_seed), 0.0).backward()
        grads.append(x.grad)
    assert grads[0].abs().max() < 1e-6
    torch.testing.assert_close(grads[0], grads[1])


def test_t1_is_forward_kl_to_the_teacher_plus_its_entropy():
    s, t = logits(0), logits(1)
    mask = torch.rand(3, 5, generator=torch.Generator().manual_seed(3)) > 0.4
    p_t = F.softmax(t, -1)
    entropy = -(p_t * p_t.log()).sum(-1)
    expected = kd_loss(s, t, 1.0, mask=mask) + (entropy * mask).sum() / mask.sum()
    torch.testing.assert_close(taid_loss(s, t, 1.0, mask), expected)
    a, b = s.clone().requires_grad_(), s.clone().requires_grad_()
    taid_loss(a, t, 1.0, mask).backward()
    kd_loss(b, t, 1.0, mask=mask).backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_loss_masks_positions_and_never_grads_the_teacher():
    s, t = logits(0).requires_grad_(), logits(1).requires_grad_()
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[:, 2:] = True
    loss = taid_loss(s, t, 0.6, mask)
    torch.testing.assert_close(loss, taid_loss(s[:, 2:], t[:, 2:], 0.6))
    loss.backward()
    assert t.grad is None and s.grad[:, :2].abs().max() == 0
    # >= its KL part: J = KL(p_t || q) + H(p_t) >= H(p_t) >= 0
    assert loss.item() >= 0
    with pytest.raises(ValueError, match="differ"):
        taid_loss(s, t[..., :3], 0.5)


def official_update_t(losses, t_start, t_end, alpha, beta, n_steps, disable_adaptive=False):
    """A float32 transcription of SakanaAI/TAID src/distil_losses/taid.py ``TAID.update_t``."""
    t, prev, momentum, out = torch.tensor(t_start), torch.tensor(float("inf")), torch.zeros([]), []
    for step, loss in enumerate(torch.tensor(losses)):
        if torch.isinf(prev):
            prev = loss
        else:
            relative_change = (prev - loss) / (prev + 1e-15)
            momentum = beta * momentum + (1 - beta) * relative_change
            t_target = t_start + (t_end - t_start) * (step / n_steps)
            delta_t = alpha * torch.sigmoid(momentum) * (1 - t)
            new = min(t_end, max(t_target, t + delta_t)) if not disable_adaptive else t_target
            t = new if isinstance(new, torch.Tensor) else torch.tensor(new)
            prev = loss
        out.append(float(t))
    return out


LOSSES = [2.0, 1.5, 1.2, 1.3, 1.0, 0.9, 0.95, 0.7, 0.72, 0.6] * 3


@pytest.mark.parametrize("alpha,disable", [(0.1, False), (5e-4, False), (0.1, True), (0.9, False)])
def test_schedule_matches_the_official_update_rule(alpha, disable):
    sched = TAIDSchedule(0.4, 1.0, alpha, 0.9, disable_adaptive=disable)
    ours = [sched.update(loss, step, 20) for step, loss in enumerate(LOSSES)]
    ref = official_update_t(LOSSES, 0.4, 1.0, alpha, 0.9, 20, disable)
    assert ours == pytest.approx(ref, abs=1e-6)


def test_schedule_golden_values_by_hand():
    sched = TAIDSchedule(0.4, 1.0, alpha=0.1, beta=0.9)
    assert sched.update(2.0, 0, 100) == 0.4  # the first call only records J_0
    # rc = 0.25, m = 0.025, sigmoid(m) = 0.50625; adaptive 0.4 + 0.1 * 0.50625 * 0.6 > floor 0.406
    sigma = 1 / (1 + math.exp(-0.025))
    assert sched.update(1.5, 1, 100) == pytest.approx(0.4 + 0.1 * sigma * 0.6, abs=1e-12)
    linear = TAIDSchedule(0.2, 1.0, alpha=0.1, disable_adaptive=True)
    linear.update(2.0, 0, 10)
    assert linear.update(1.0, 5, 10) == pytest.approx(0.6)


@pytest.mark.parametrize("alpha", [0.0, 5e-4, 0.05, 0.5])
def test_schedule_is_monotone_above_the_floor_and_capped(alpha):
    sched, n = TAIDSchedule(0.2, 0.9, alpha, 0.99), 40
    losses = (1 + torch.rand(60, generator=torch.Generator().manual_seed(1))).tolist()  # noisy, not decreasing
    ts = [sched.update(v, step, n) for step, v in enumerate(losses)]
    assert all(b >= a for a, b in zip(ts, ts[1:]))
    assert all(t <= 0.9 + 1e-12 for t in ts)
    assert all(t >= 0.2 + 0.7 * step / n - 1e-12 or t == 0.9 for step, t in enumerate(ts) if step > 0)
    assert ts[-1] == pytest.approx(0.9)


def test_schedule_rejects_bad_parameters():
    with pytest.raises(ValueError, match="t_start"):
        TAIDSchedule(t_start=1.0)
    with pytest.raises(ValueError, match="alpha"):
        TAIDSchedule(alpha=2.0)


def test_short_run_records_t_and_leaves_the_teacher_alone():
    oracle = MixtureHMMOracle(n_domains=2, n_states=8, n_vocab=10, seed=0)
    arch = dict(arch="gpt2", n_layer=1, n_embd=16, n_head=1)
    student = build_lm(vocab_size=oracle.vocab_size, seed=1, **arch)
    teacher = build_lm(vocab_size=oracle.vocab_size, seed=2, **{**arch, "n_embd": 32, "n_head": 2}).eval()
    before = [p.detach().clone() for p in teacher.parameters()]
    method = TAID(oracle.n_vocab, total_steps=4, alpha=0.2)
    history = train(student, method, oracle_stream(oracle, 4, 8, prompt_len=3), teacher=teacher, steps=4,
                    lr=1e-3, progress=False)
    assert len(history["loss"]) == 4 and all(math.isfinite(v) for v in history["loss"])
    assert method.t_history[0] == method.t_history[1] == 0.4  # t moves only after the second loss
    assert method.t_history[2] > 0.4 and all(b >= a for a, b in zip(method.t_history, method.t_history[1:]))
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
