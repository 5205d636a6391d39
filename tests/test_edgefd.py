"""EdgeFD (Mujtaba et al., FLTA 2025): the Dirichlet client split, the KMeans filter, the round loop."""

import numpy as np
import pytest
import torch

from kdlib.experiments.edgefd import (KernelRatioFilter, KMeansFilter, aggregate, dirichlet_split, filter_cost,
                                      label_skew, run_federated)
from kdlib.methods.edgefd import ProxyKD
from kdlib.models import MLP

LABELS = np.repeat(np.arange(10), 100)


@pytest.mark.parametrize("alpha", [0.1, 1.0, None])
def test_split_assigns_every_sample_exactly_once(alpha):
    parts = dirichlet_split(LABELS, 5, alpha, seed=3)
    assert len(parts) == 5
    joined = np.concatenate(parts)
    assert len(joined) == len(LABELS) and np.array_equal(np.sort(joined), np.arange(len(LABELS)))
    assert min(len(p) for p in parts) >= 10


def test_split_is_deterministic_per_seed_and_changes_with_it():
    a, b, c = (dirichlet_split(LABELS, 5, 0.5, seed=s) for s in (7, 7, 8))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(len(x) == len(z) and np.array_equal(x, z) for x, z in zip(a, c))


def test_strong_non_iid_is_more_skewed_than_weak_and_iid():
    skew = {a: np.mean([label_skew(LABELS, dirichlet_split(LABELS, 5, a, seed=s), 10) for s in range(5)])
            for a in (0.1, 1.0, None)}
    assert skew[0.1] > skew[1.0] + 0.1 > skew[None] + 0.1
    assert skew[None] < 0.1  # an IID split of 200 per client is close to the global distribution


def test_label_skew_limits():
    iid = [np.arange(i, 1000, 5) for i in range(5)]  # every client: 20 of each class
    one_class = [np.flatnonzero(LABELS == c) for c in range(10)]
    assert label_skew(LABELS, iid, 10) == pytest.approx(0.0)
    assert label_skew(LABELS, one_class, 10) == pytest.approx(0.9)


def test_split_rejects_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        dirichlet_split(LABELS, 5, 0.0, seed=0)


def _blobs(seed=0):
    """Client data: two tight blobs; proxy: 50 samples from those blobs and 50 far away (OOD)."""
    g = np.random.default_rng(seed)
    centres = np.array([[0.0] * 8, [3.0] * 8])
    client = np.concatenate([c + 0.3 * g.standard_normal((100, 8)) for c in centres])
    proxy_in = np.concatenate([c + 0.3 * g.standard_normal((25, 8)) for c in centres])
    proxy_out = 10.0 + 0.3 * g.standard_normal((50, 8))
    return client, np.concatenate([proxy_in, proxy_out])


@pytest.mark.parametrize("make", [lambda: KMeansFilter(n_clusters=2, quantile=0.95, seed=0), lambda: KernelRatioFilter()])
def test_filters_keep_in_distribution_over_ood(make):
    client, proxy = _blobs()
    r = filter_cost(make, client, proxy)
    kept = r["kept"]
    assert kept[:50].mean() > 0.8 and kept[50:].mean() < 0.05
    assert r["ops"] > 0


def test_kmeans_filter_is_cheaper_than_the_kernel_ratio_fit():
    client, proxy = _blobs()
    km = filter_cost(lambda: KMeansFilter(2, 0.95, 0), client, proxy)
    kr = filter_cost(lambda: KernelRatioFilter(), client, proxy)
    assert kr["ops"] > 10 * km["ops"]


def test_aggregate_averages_over_the_clients_that_kept_a_sample():
    probs = torch.tensor([[[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]],
                          [[0.7, 0.3], [0.1, 0.9], [0.6, 0.4]]])
    masks = torch.tensor([[True, True, False], [True, False, False]])
    target, used = aggregate(probs, masks, temperature=2.0)
    assert used.tolist() == [True, True, False]
    p = (target / 2.0).softmax(-1)
    assert torch.allclose(p, torch.tensor([[0.8, 0.2], [0.5, 0.5]]), atol=1e-6)


def test_proxy_kd_is_zero_when_the_student_matches_the_shared_labels():
    student = MLP(in_dim=4, hidden=(8,), num_classes=3)
    x = torch.randn(5, 4)
    with torch.no_grad():
        target = student(x)
    terms = ProxyKD(temperature=2.0)(student, None, (x, target))
    assert abs(float(terms["kd"].detach())) < 1e-6
    terms = ProxyKD(temperature=2.0)(student, None, (x, target + torch.randn(5, 3)))
    assert float(terms["kd"].detach()) > 0


def test_a_short_federated_run_trains_every_client():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=g)
    y = (x[:, 0] > 0).long()
    parts = dirichlet_split(y.numpy(), 3, 0.5, seed=0)
    data = [(x[p], y[p]) for p in parts]
    proxy = torch.randn(40, 6, generator=g)
    masks = torch.ones(3, 40, dtype=torch.bool)
    masks[0, :20] = False

    def make(k):
        torch.manual_seed(k)
        return MLP(in_dim=6, hidden=(8,), num_classes=2)

    before = [make(k).state_dict() for k in range(3)]
    models, used = run_federated(make, data, proxy, masks, rounds=2, local_epochs=1, distill_epochs=1, seed=0)
    assert len(models) == 3 and used == [1.0, 1.0]
    for m, s in zip(models, before):
        assert any(not torch.equal(p, s[n]) for n, p in m.state_dict().items())
    _, used = run_federated(make, data, proxy, masks, rounds=1, local_epochs=1, distill_epochs=1, share=False)
    assert used == []
