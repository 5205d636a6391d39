"""kdlib.losses.stacked: K seeds' losses at once equal each seed's own loss, values and gradients, bit for bit."""

import pytest
import torch

from kdlib.losses import cross_entropy, dkd_terms, kd_loss, stacked
from kdlib.methods import CE, CWTM, DKD, KD, BornAgain, LogitMatching


pytestmark = pytest.mark.usefixtures("one_thread")  # bit-identity is a one-thread property


@pytest.mark.parametrize("batch", [64, 14])  # 14: 1/B is not a power of two, so the mean's backward must match too
def test_stacked_losses_equal_each_seeds_loss(batch):
    g = torch.Generator().manual_seed(batch)
    k = 5
    s0, t = 3 * torch.randn(k, batch, 10, generator=g), 3 * torch.randn(k, batch, 10, generator=g)
    y = torch.randint(0, 10, (k, batch), generator=g)
    pairs = [(lambda s, t, y: stacked.kd_loss(s, t, 4.0), lambda s, t, y: kd_loss(s, t, 4.0)),
             (lambda s, t, y: stacked.cross_entropy(s, y), lambda s, t, y: cross_entropy(s, y)),
             (lambda s, t, y: stacked.dkd_means(s, t, y, 4.0)[1], lambda s, t, y: dkd_terms(s, t, y, 4.0)[1].mean())]
    for many, one in pairs:
        s = s0.clone().requires_grad_()
        values = many(s, t, y)
        values.sum().backward()
        for i in range(k):
            si = s0[i].clone().requires_grad_()
            value = one(si, t[i], y[i])
            value.backward()
            assert torch.equal(values[i], value) and torch.equal(s.grad[i], si.grad)


def test_only_methods_that_define_a_stacked_form_use_it():
    assert all(m.has_stacked_form for m in (CE(), KD(), DKD()))
    assert not any(m.has_stacked_form for m in (BornAgain(), CWTM(), LogitMatching()))

    class SquaredKD(KD):  # changes the loss: must not inherit KD's stacked form
        def terms_from_logits(self, student_logits, teacher_logits, target):
            return {"kd": kd_loss(student_logits, teacher_logits, 1.0) ** 2}

    assert not SquaredKD().has_stacked_form
