"""Federated Distillation on Edge Devices: Efficient Client-Side Filtering for Non-IID Data
(EdgeFD; Mujtaba, Radchenko, Prodan & Masana, FLTA 2025, arXiv:2508.14769).

Federated distillation as plain functions around the book's one loop (`kdlib.train.train`):
clients train locally on private data, share soft labels on the shared proxy samples they
*keep*, the server averages them per sample over the clients that kept it, and every client
distils on the averaged labels. EdgeFD's contribution is the client-side filter: a KMeans model
of the client's own data stands in for a density-ratio estimator, and a proxy sample is kept
when it falls inside one of the client's clusters. The full estimator it replaces (Selective-FD's
kernel density-ratio fit, KuLSIF) is here as `KernelRatioFilter`, for the cost comparison.

What "inside a cluster" means exactly is our reading (the paper's text could not be checked):
the per-cluster radius is a quantile of the client's own samples' distances to their centroid.
"""

from __future__ import annotations



from ..losses import kd_loss
from ..method import Method

# --------------------------------------------------------------------------- the client split


# --------------------------------------------------------------------------- the filters


# --------------------------------------------------------------------------- distillation on shared labels


class ProxyKD(Method):
    """Distil on server-aggregated soft labels: T^2 KL(p_agg^T || p_s^T) on proxy samples.

    The batch is (x, target_logits): logits whose tempered softmax is the server's average of the
    clients' tempered probabilities (`aggregate` returns T·log p̄, so softmax(z/T) = p̄)."""

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student, teacher, batch):
        x, target_logits = batch[0], batch[1]
        return {"kd": kd_loss(student(x), target_logits, self.temperature)}
