"""Distilling the Knowledge in Data Pruning (Ben-Baruch et al., ICML 2025): the pruning half.

The training half is plain Hinton KD on the kept subset, L = (1 - alpha) CE + alpha T^2 KL(p_t || p_s)
(`kdlib.methods.KD`), with a teacher trained on *all* the data. What is new here is only how
the subset is chosen: at random, or by a data-pruning score. The score is EL2N (Paul, Ganguli &
Dziugaite, NeurIPS 2021), one of the scores the paper prunes with: the L2 distance between an
early-training model's softmax and the one-hot label; a high score marks a hard (or mislabelled)
example, and score-based pruning keeps the hardest. Both rules keep the same number of examples
of every class, so a random and a score-based subset at one fraction have the same size (the
batched trainer needs that, and the comparison is fairer for it).
"""

from __future__ import annotations

import torch


def el2n_scores(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """EL2N score per example: ||softmax(z) - onehot(y)||_2 (Paul et al. 2021, Sec. 2, "EL2N").

    logits (N, C) of an early-training model, target (N,) class indices -> (N,) scores in
    [0, sqrt(2)], no reduction (a score per example, not a loss). No gradient is needed, none is kept.
    """
    if logits.dim() != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"el2n_scores: logits must be (N, C) and target (N,), got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    with torch.no_grad():
        p = logits.float().softmax(-1)
        onehot = torch.nn.functional.one_hot(target.long(), logits.shape[-1]).float()
        return (p - onehot).norm(dim=-1)


def kept_per_class(target: torch.Tensor, fraction: float) -> dict:
    """How many examples of each class a `fraction` keeps: max(1, round(fraction * n_c))."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return {int(c): max(1, round(fraction * int((target == c).sum()))) for c in torch.unique(target)}


def prune_indices(target: torch.Tensor, fraction: float, scores: torch.Tensor | None = None, seed: int = 0):
    """Sorted indices of the kept examples, class by class.

    scores None: a random `fraction` of each class (a generator seeded with `seed`).
    scores (N,): the highest-scoring `fraction` of each class (score-based pruning keeps the
    hardest examples; ties broken by index). Both keep `kept_per_class(target, fraction)`.
    """
    if scores is not None and scores.shape != target.shape:
        raise ValueError(f"scores must have one value per example, got {tuple(scores.shape)} for {len(target)} examples")
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c, n in kept_per_class(target, fraction).items():
        idx = torch.nonzero(target == c).flatten()
        if scores is None:
            order = torch.randperm(len(idx), generator=g)
        else:
            order = torch.sort(scores.cpu()[idx.cpu()], descending=True, stable=True).indices
        keep.append(idx[order[:n].to(idx.device)])
    return torch.sort(torch.cat(keep)).values


def prune(data, fraction: float, scores: torch.Tensor | None = None, seed: int = 0):
    """The kept subset of `data = (x, y, ...)` (see `prune_indices`); fraction 1 returns `data` itself."""
    if fraction == 1:
        return tuple(data)
    keep = prune_indices(data[1], fraction, scores, seed)
    return tuple(t[keep] for t in data)
