"""EdgeFD's federated setting: Dirichlet client splits, the proxy-data filters and their cost, the
logit aggregation and the federated rounds (the loss of one round is `kdlib.methods.edgefd.ProxyKD`).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..method import CE
from ..methods.edgefd import ProxyKD
from ..train import predict_logits, train


def dirichlet_split(labels, n_clients: int, alpha, seed: int, min_size: int = 10) -> list[np.ndarray]:
    """Indices of each client: per class, proportions ~ Dirichlet(alpha · 1) over the clients.

    alpha=None (or inf) is the IID split: a uniformly random partition into equal shares.
    A draw that leaves a client with fewer than `min_size` samples is redrawn (the usual
    practice since Hsu et al. 2019), from the same seeded generator, so the split is
    deterministic per seed. Every sample goes to exactly one client.
    """
    labels = np.asarray(labels)
    if n_clients < 1:
        raise ValueError(f"dirichlet_split: n_clients must be >= 1, got {n_clients}")
    if alpha is not None and not (alpha > 0):
        raise ValueError(f"dirichlet_split: alpha must be > 0 (or None for IID), got {alpha!r}")
    rng = np.random.default_rng(seed)
    if alpha is None or math.isinf(alpha):
        return [np.sort(p) for p in np.array_split(rng.permutation(len(labels)), n_clients)]
    for _ in range(1000):
        parts = [[] for _ in range(n_clients)]
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(n_clients, float(alpha)))) * len(idx)).astype(int)[:-1]
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.array(p, dtype=int)) for p in parts]
    raise ValueError(f"dirichlet_split: no draw in 1000 gave every client >= {min_size} samples")


def label_skew(labels, parts, num_classes: int) -> float:
    """Mean over clients of the total-variation distance between the client's and the global
    class distribution: 0 for a perfectly IID split, up to 1 - 1/C for one class per client."""
    labels = np.asarray(labels)
    glob = np.bincount(labels, minlength=num_classes) / len(labels)
    tv = [0.5 * np.abs(np.bincount(labels[p], minlength=num_classes) / len(p) - glob).sum() for p in parts]
    return float(np.mean(tv))


class KMeansFilter:
    """EdgeFD's client-side filter (KMeans-DRE, our reading): KMeans on the client's own inputs;
    a proxy sample is kept (in-distribution for this client) when its distance to the nearest
    centroid is at most that cluster's radius, the `quantile` of its own members' distances.

    `ops` counts the multiply-adds of the fit (Lloyd iterations, n_init=1 so sklearn's n_iter_
    is the whole fit) and of scoring the proxy set: 2·n·k·d per distance pass.
    """

    def __init__(self, n_clusters: int = 10, quantile: float = 0.95, seed: int = 0):
        self.n_clusters, self.quantile, self.seed = n_clusters, quantile, seed

    def fit(self, x):
        from sklearn.cluster import KMeans

        x = np.asarray(x, dtype=np.float64)
        k = min(self.n_clusters, len(x))
        self.km = KMeans(n_clusters=k, n_init=1, random_state=self.seed).fit(x)
        dist = np.linalg.norm(x - self.km.cluster_centers_[self.km.labels_], axis=1)
        self.radius = np.array([np.quantile(dist[self.km.labels_ == j], self.quantile) if (self.km.labels_ == j).any()
                                else 0.0 for j in range(k)])
        n, d = x.shape
        self.ops = 2 * n * k * d * (int(self.km.n_iter_) + 1)  # Lloyd passes + the final assignment
        return self

    def score(self, x):
        """Distance to the nearest centroid over that cluster's radius (<= 1: inside)."""
        x = np.asarray(x, dtype=np.float64)
        d = np.linalg.norm(x[:, None, :] - self.km.cluster_centers_[None], axis=2)
        j = d.argmin(1)
        self.ops += 2 * x.shape[0] * d.shape[1] * x.shape[1]
        return d[np.arange(len(x)), j] / np.maximum(self.radius[j], 1e-12)

    def keep(self, x):
        return self.score(x) <= 1.0


class KernelRatioFilter:
    """The full estimator EdgeFD replaces: a kernel density-ratio fit r(x) = p_client(x) / p_proxy(x)
    (KuLSIF / uLSIF, Kanamori et al. 2009/2012, the estimator of Selective-FD), with Gaussian
    kernels centred on every client sample: alpha = (H + lam·I)^-1 h, H = Phi_p^T Phi_p / n_p,
    h = mean of Phi_c. A proxy sample is kept when r(x) is at least the (1 - quantile) quantile
    of r on the client's own samples. Bandwidth: the median pairwise distance (a common default).

    `ops`: kernel matrices 2·n·m·d, H 2·n_p·n², the solve n³/3 (Cholesky), scoring 2·n_p·n·d.
    """

    def __init__(self, lam: float = 1e-3, quantile: float = 0.95):
        self.lam, self.quantile = lam, quantile

    def _kernel(self, a, b):
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
        return np.exp(-np.maximum(sq, 0) / (2 * self.sigma**2))

    def fit(self, x, proxy):
        x, proxy = np.asarray(x, dtype=np.float64), np.asarray(proxy, dtype=np.float64)
        n, d = x.shape
        n_p = len(proxy)
        sub = x[: min(n, 200)]
        self.sigma = float(np.median(np.linalg.norm(sub[:, None] - sub[None], axis=2)[np.triu_indices(len(sub), 1)]))
        self.centers = x
        phi_p, phi_c = self._kernel(proxy, x), self._kernel(x, x)
        H = phi_p.T @ phi_p / n_p
        h = phi_c.mean(0)
        self.alpha = np.linalg.solve(H + self.lam * np.eye(n), h)
        self.threshold = np.quantile(phi_c @ self.alpha, 1 - self.quantile)
        self.ops = kernel_ratio_fit_ops(n, n_p, d)
        return self

    def score(self, x):
        x = np.asarray(x, dtype=np.float64)
        self.ops += 2 * len(x) * len(self.centers) * x.shape[1]
        return self._kernel(x, self.centers) @ self.alpha

    def keep(self, x):
        return self.score(x) >= self.threshold


def kernel_ratio_fit_ops(n: int, n_p: int, d: int) -> int:
    """Multiply-adds of `KernelRatioFilter.fit` on n client and n_p proxy samples of dimension d
    (scoring the proxy set adds 2·n_p·n·d): the cost of the full estimator without running it."""
    return 2 * (n_p + n) * n * d + 2 * n_p * n * n + n**3 // 3


def filter_cost(make_filter, x, proxy) -> dict:
    """Fit a filter on a client's inputs and score the proxy set: kept mask, op count, seconds."""
    t0 = time.perf_counter()
    f = make_filter()
    f = f.fit(x, proxy) if isinstance(f, KernelRatioFilter) else f.fit(x)
    kept = f.keep(proxy)
    return {"kept": kept, "ops": int(f.ops), "seconds": time.perf_counter() - t0}


def aggregate(probs, masks, temperature: float):
    """Server step: per proxy sample, the mean of the tempered probabilities of the clients that kept
    it. probs: (K, N, C); masks: (K, N) bool. Returns (target_logits (M, C), used (N,) bool), M = used.sum()."""
    w = masks.float().unsqueeze(-1)
    count = w.sum(0)
    used = count.squeeze(-1) > 0
    mean = (probs * w).sum(0)[used] / count[used]
    return temperature * mean.clamp_min(1e-8).log(), used


def run_federated(make_client, client_data, proxy_x, masks, *, rounds: int, local_epochs: int,
                  distill_epochs: int, temperature: float = 1.0, batch_size: int = 100, lr: float = 1e-2,
                  seed: int = 0, share: bool = True):
    """The round loop. make_client(k) -> a fresh model; client_data: list of (x, y); proxy_x: (N, d);
    masks: (K, N) bool, which proxy samples each client keeps (all True: no filter); share=False:
    local training only. Returns the K trained models and the share of proxy samples used per round.
    """
    models = [make_client(k) for k in range(len(client_data))]
    used_share = []
    for r in range(rounds):
        for k, m in enumerate(models):
            train(m, CE(), client_data[k], epochs=local_epochs, batch_size=batch_size, lr=lr,
                  seed=seed * 1000 + r * 10 + k, progress=False)
        if not share:
            continue
        probs = torch.stack([(predict_logits(m, proxy_x) / temperature).softmax(-1) for m in models])
        target, used = aggregate(probs, masks, temperature)
        used_share.append(float(used.float().mean()))
        if used.any():
            for k, m in enumerate(models):
                train(m, ProxyKD(temperature), (proxy_x[used], target), epochs=distill_epochs,
                      batch_size=batch_size, lr=lr, seed=seed * 1000 + r * 10 + k + 500, progress=False)
    return models, used_share
