"""Self-distillation of kernel ridge regression in closed form (Borup & Andersen, NeurIPS 2021).

"Even your Teacher Needs Guidance: Ground-Truth Targets Dampen Regularization Imposed by
Self-Distillation". Step τ fits a kernel ridge regression to a mix of the labels and the previous
step's predictions on the training points:

    f^(τ) = argmin_f  α ||y − f(X)||² + (1 − α) ||f^(τ−1)(X) − f(X)||² + c ||f||²_H,   f^(0)(X) := y,

whose minimiser is the ridge fit to the targets  y_τ = α y + (1 − α) f^(τ−1)(X):

    f^(τ)(x) = k(x, X) (K + cI)⁻¹ y_τ.

With K = V D Vᵀ and A = D (D + cI)⁻¹ the training predictions are f^(τ)(X) = V B^(τ) Vᵀ y, with
B^(0) = I and B^(τ) = A [(1 − α) B^(τ−1) + α I] (the recursion of the official `Recurser`), so
every step is a diagonal filter on the eigen-coefficients of y: no refit is needed. Its limit is
B^(∞) = α A (I − (1 − α) A)⁻¹ = α D (α D + cI)⁻¹: the ridge fit with c / α, zero for α = 0.

Everything here is a plain function on tensors (float64 recommended; any device). `y` is (n,) or
(n, C) (one-vs-rest: one column per class). `steps` are positive ints or `math.inf`.
"""

from __future__ import annotations

import math

import torch


def _check(alpha, c, steps=()):
    if not (0.0 <= float(alpha) <= 1.0):
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    if not (float(c) > 0.0 and math.isfinite(float(c))):
        raise ValueError(f"c (the ridge penalty) must be a finite number > 0, got {c!r}")
    for s in steps:
        if not (s == math.inf or (float(s) == int(s) and int(s) >= 1)):
            raise ValueError(f"steps must be integers >= 1 or math.inf, got {s!r}")


def rbf_kernel(a: torch.Tensor, b: torch.Tensor, gamma: float) -> torch.Tensor:
    """k(a_i, b_j) = exp(−γ ||a_i − b_j||²), as scikit-learn's `rbf_kernel`. a: (m, p), b: (n, p) -> (m, n)."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return torch.exp(-gamma * sq.clamp_min(0))


def kernel_eigh(k_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """K = V diag(d) Vᵀ. Returns (d, V) with d clamped at 0 (K is PSD; round-off gives tiny negatives)."""
    d, v = torch.linalg.eigh(k_train)
    return d.clamp_min(0), v


def b_diagonal(eigvals: torch.Tensor, c: float, alpha: float, step) -> torch.Tensor:
    """diag B^(τ): the filter that maps the eigen-coefficients of y to those of f^(τ)(X).

    Unrolls B^(τ) = A[(1 − α) B^(τ−1) + α I], B^(0) = I, a = d / (d + c), in closed form:
    b* = α a / (1 − (1 − α) a) is the fixed point and b_τ = b* + ((1 − α) a)^τ (1 − b*).
    step = 0 gives 1 (the labels), step = math.inf gives b* (0 when α = 0). eigvals: (n,) -> (n,).
    """
    _check(alpha, c)
    a = eigvals / (eigvals + c)
    fixed = alpha * a / (1 - (1 - alpha) * a)
    if step == math.inf:
        return fixed
    return fixed + ((1 - alpha) * a) ** int(step) * (1 - fixed)


def dual_weights(eigvals: torch.Tensor, c: float, alpha: float, step) -> torch.Tensor:
    """The filter w_τ with (K + cI)⁻¹ y_τ = V diag(w_τ) Vᵀ y, so that f^(τ)(x) = k(x, X) V diag(w_τ) Vᵀ y.

    y_τ = α y + (1 − α) f^(τ−1)(X) = V [α I + (1 − α) B^(τ−1)] Vᵀ y, hence
    w_τ = (α + (1 − α) b_{τ−1}) / (d + c); at τ = ∞, b_{τ−1} = b*. eigvals: (n,) -> (n,).
    """
    _check(alpha, c, [step])
    prev = b_diagonal(eigvals, c, alpha, math.inf if step == math.inf else int(step) - 1)
    return (alpha + (1 - alpha) * prev) / (eigvals + c)


def dual_filters(eigvals: torch.Tensor, c: float, alpha: float, steps) -> torch.Tensor:
    """`dual_weights` for each τ in `steps`, stacked: (len(steps), n).

    With proj = k(x, X) V and coef = Vᵀ y computed once, the predictions of every step are
    proj @ (w_τ * coef): one eigendecomposition serves every (c, α, τ).
    """
    steps = list(steps)
    _check(alpha, c, steps)
    return torch.stack([dual_weights(eigvals, c, alpha, s) for s in steps])


def distill_predict(k_eval, eigvals, eigvecs, y, c: float, alpha: float, steps) -> torch.Tensor:
    """Predictions of f^(τ) at the points of `k_eval` for each τ in `steps`, in closed form.

    k_eval: (m, n) kernel between evaluation points and the n training points (pass K itself for
    training predictions); eigvals, eigvecs: `kernel_eigh(K)`; y: (n,) or (n, C).
    Returns (len(steps), m) or (len(steps), m, C).
    """
    w = dual_filters(eigvals, c, alpha, steps)  # (S, n)
    proj = k_eval @ eigvecs  # (m, n): evaluation kernel in the eigenbasis, shared by all steps
    coef = eigvecs.T @ y  # (n,) or (n, C): eigen-coefficients of the labels
    if y.dim() == 1:
        return (w * coef) @ proj.T
    return proj @ (w[:, :, None] * coef)  # (S, m, C)


def distill_brute(k_train, k_eval, y, c: float, alpha: float, steps: int) -> torch.Tensor:
    """The definition, step by step: refit kernel ridge on y_τ = α y + (1 − α) f^(τ−1)(X), τ = 1..steps.

    One linear solve per step (the reference the closed forms are tested against).
    Returns the predictions at `k_eval`'s points for τ = 1..steps: (steps, m) or (steps, m, C).
    """
    _check(alpha, c, [steps])
    system = k_train + c * torch.eye(len(k_train), dtype=k_train.dtype, device=k_train.device)
    fit_train, out = y, []  # f^(0)(X) := y, so y_1 = y: the first step is the plain teacher
    for _ in range(int(steps)):
        dual = torch.linalg.solve(system, alpha * y + (1 - alpha) * fit_train)
        fit_train = k_train @ dual
        out.append(k_eval @ dual)
    return torch.stack(out)


def distill_limit(k_train, k_eval, y, c: float, alpha: float) -> torch.Tensor:
    """f^(∞)(x) = α k(x, X) (α K + cI)⁻¹ y: kernel ridge with penalty c / α (the zero function at α = 0).

    Written as the official notebook computes it (`Y_lim`), directly, without an eigendecomposition.
    """
    _check(alpha, c)
    if alpha == 0:
        return torch.zeros(k_eval.shape[:1] + y.shape[1:], dtype=y.dtype, device=y.device)
    system = alpha * k_train + c * torch.eye(len(k_train), dtype=k_train.dtype, device=k_train.device)
    return alpha * k_eval @ torch.linalg.solve(system, y)


def squared_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error summed over outputs, averaged over points. pred, target: (..., m) or (..., m, C) -> (...)."""
    err = (pred - target) ** 2
    return err.sum(-1).mean(-1) if target.dim() > 1 else err.mean(-1)
