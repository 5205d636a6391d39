"""KD^3: the shift is what it claims, selection keeps confident and agreeing instances, the weighted
losses' properties (>= 0, zero at equality, reduce to the unweighted forms, no gradient into the
teacher), MixDistribution's statistics, golden values, and a short run of each ablation."""

import pytest
import torch

from kdlib.data import mnist1d, mnist1d_shifted
from kdlib.losses import kd_loss
from kdlib.methods import METHODS
from kdlib.methods.kd3 import (KD3, classifier_alignment_loss, combined_probs, instance_contrastive_loss, kept_share,
                               mix_distribution, selection_weights, teacher_weight_at, unrelated_signals,
                               web_transfer_set, weighted_feature_loss, weighted_kd_loss)
from kdlib.models import CNN1D, MLP
from kdlib.train import train


def high_freq_energy(x):
    """Mean squared first difference: rises with the generator's iid noise (the set is standardised)."""
    return float(((x[:, 1:] - x[:, :-1]) ** 2).mean())


def test_the_shift_is_what_it_claims():
    base = mnist1d()["train"][0]
    shifted = mnist1d_shifted(iid_noise_scale=0.2, num_samples=1250)["train"][0]
    # more iid noise -> more energy at the highest frequency, in the expected direction and clearly
    assert high_freq_energy(shifted) > 1.5 * high_freq_energy(base)
    # a fresh draw: no shifted signal equals any original one
    d = torch.cdist(shifted.double(), base.double())
    assert float(d.min()) > 1e-3
    # and the unshifted generator with the shift seed is a different draw, with the base statistic
    same_args = mnist1d_shifted(num_samples=1250)["train"][0]
    assert abs(high_freq_energy(same_args) - high_freq_energy(base)) < 0.2 * high_freq_energy(base)


def test_selection_keeps_confident_agreeing_instances():
    big = 8.0
    eye = torch.eye(3) * big
    teacher = torch.stack([eye[0], eye[1], torch.zeros(3)])       # confident, confident, unsure
    student = torch.stack([eye[0], eye[2], eye[2]])                # agrees, disagrees, (confident)
    w = selection_weights(student, teacher, teacher_weight=0.5, threshold=0.7)
    assert w[0] > 0.99 and w[1] == 0 and w[2] == 0
    # early in training the teacher alone decides: the disagreeing instance is kept
    w_early = selection_weights(student, teacher, teacher_weight=1.0, threshold=0.7)
    assert w_early[1] > 0.99 and w_early[2] == 0
    p = combined_probs(student, teacher, 0.3)
    assert torch.allclose(p.sum(-1), torch.ones(3))
    with pytest.raises(ValueError, match="teacher_weight"):
        combined_probs(student, teacher, 1.5)


def test_teacher_weight_schedule():
    assert teacher_weight_at(0, 10, 0.5) == 1.0
    assert teacher_weight_at(9, 10, 0.5) == pytest.approx(0.5)
    assert 0.5 < teacher_weight_at(4, 10, 0.5) < 1.0


def seeded(n=8, c=10, d=6):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, c, generator=g), 2 * torch.randn(n, c, generator=g), torch.randn(n, d, generator=g), \
        torch.randn(n, d, generator=g), torch.rand(n, generator=g)


def test_weighted_kd_reduces_to_kd_and_is_zero_at_equality():
    s, t, _, _, w = seeded()
    assert weighted_kd_loss(s, t, torch.ones(8), 4.0) == pytest.approx(float(kd_loss(s, t, 4.0)), rel=1e-5)
    assert float(weighted_kd_loss(s, t, w, 4.0)) >= 0
    assert float(weighted_kd_loss(t, t, w, 4.0)) == pytest.approx(0.0, abs=1e-5)
    # a zero weight removes an instance: only instance 0 counts
    one = torch.zeros(8)
    one[0] = 0.3
    assert weighted_kd_loss(s, t, one, 4.0) == pytest.approx(float(kd_loss(s[:1], t[:1], 4.0)), rel=1e-5)
    assert float(weighted_kd_loss(s, t, torch.zeros(8), 4.0)) == 0.0


def test_feature_and_classifier_alignment():
    _, _, fs, ft, w = seeded()
    assert float(weighted_feature_loss(fs, ft, w)) > 0
    assert float(weighted_feature_loss(ft, ft, w)) == 0.0
    assert weighted_feature_loss(fs, ft, torch.ones(8)) == pytest.approx(float(((fs - ft) ** 2).mean()), rel=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        weighted_feature_loss(fs[:, :3], ft, w)
    g = torch.Generator().manual_seed(1)
    wt, bt, proj = torch.randn(10, 12, generator=g), torch.randn(10, generator=g), torch.randn(12, 5, generator=g)
    assert float(classifier_alignment_loss(wt @ proj, bt, wt, bt, proj)) == pytest.approx(0.0, abs=1e-10)
    # no gradient into the teacher's classifier
    wt.requires_grad_(True)
    ws = torch.randn(10, 5, requires_grad=True)
    classifier_alignment_loss(ws, bt, wt, bt, proj).backward()
    assert wt.grad is None and ws.grad is not None


def test_golden_values():
    s, t, fs, ft, w = seeded()
    got = [float(weighted_kd_loss(s, t, w, 4.0)), float(weighted_feature_loss(fs, ft, w)),
           float(instance_contrastive_loss(fs, ft, w, 0.1))]
    assert got == pytest.approx(GOLDEN, rel=1e-4)


GOLDEN = [1.9050381, 1.6392715, 7.3723145]  # regression values: these functions on the seeded tensors, computed once


def test_contrastive_loss_prefers_matching_pairs():
    g = torch.Generator().manual_seed(2)
    t = torch.randn(16, 8, generator=g)
    w = torch.ones(16)
    matched = instance_contrastive_loss(3 * t, t, w, 0.1)
    shuffled = instance_contrastive_loss(t[torch.randperm(16, generator=g)], t, w, 0.1)
    assert float(matched) < 0.05 < float(shuffled)
    t.requires_grad_(True)
    s = torch.randn(16, 8, requires_grad=True)
    instance_contrastive_loss(s, t, w).backward()
    assert t.grad is None


def test_mix_distribution_mixes_statistics_and_keeps_shape():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 40, generator=g) * torch.linspace(0.5, 3, 64)[:, None] + torch.linspace(-2, 2, 64)[:, None]
    mixed = mix_distribution(x, torch.Generator().manual_seed(1), alpha=0.1)
    assert mixed.shape == x.shape
    norm = lambda v: (v - v.mean(-1, keepdim=True)) / v.std(-1, keepdim=True)  # noqa: E731
    assert torch.allclose(norm(mixed), norm(x), atol=1e-4)  # the normalised content is unchanged
    assert (mixed.mean(-1) - x.mean(-1)).abs().max() > 0.5  # the statistics are not
    again = mix_distribution(x, torch.Generator().manual_seed(1), alpha=0.1)
    assert torch.equal(mixed, again)  # seeded
    with pytest.raises(ValueError, match="alpha"):
        mix_distribution(x, alpha=0.0)


def test_web_transfer_set_has_no_labels_and_marks_unrelated():
    shifted = torch.randn(30, 40)
    x, y, unrelated = web_transfer_set(shifted, 10, seed=0)
    assert x.shape == (40, 40) and bool((y == -1).all()) and int(unrelated.sum()) == 10
    other = unrelated_signals(10, 40, seed=0)
    assert torch.allclose(other.mean(1), torch.zeros(10), atol=1e-5)
    with pytest.raises(ValueError, match="n_unrelated"):
        web_transfer_set(shifted, -1)


@pytest.mark.parametrize("kw", [{}, {"select": False}, {"feature_weight": 0.0, "classifier_weight": 0.0},
                                {"mix_weight": 0.0}])
def test_short_run(kw):
    torch.manual_seed(0)
    teacher = CNN1D().eval()
    student = MLP(in_dim=40, hidden=(16, 16))
    x = torch.randn(64, 40)
    y = torch.full((64,), -1)
    method = KD3(student_dim=16, teacher_dim=125, threshold=0.0, **kw).reseed(0)
    before = [p.clone() for p in teacher.parameters()]
    hist = train(student, method, (x, y), teacher=teacher, epochs=2, batch_size=32, progress=False)
    assert all(torch.isfinite(torch.tensor(v)).all() for v in hist.values())
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    assert ("mix" in hist) == (kw.get("mix_weight", 1) != 0)
    assert ("feat" in hist) == (kw.get("feature_weight", 1) != 0)
    keep = kept_share(student, teacher, x, 0.5, 0.0)
    assert keep.shape == (64,) and bool(keep.all())


def test_registered():
    assert METHODS["kd3"] is KD3
    with pytest.raises(ValueError, match="threshold"):
        KD3(threshold=2.0)
