"""DisWOT: Student Architecture Search for Distillation WithOut Training (Dong, Li & Wei, CVPR 2023).

Training-free scores of a candidate student, computed at its initialisation on one batch:

* `diswot_score`: −(relation distance + semantic distance) between the teacher and the student
  (the official README's `batch_similarity` and `channel_similarity`, see below), and the book's
  earlier K×K variant of the semantic term (`class_similarity_distance`) as an extra;
* `naswot_score`: the log-determinant of the binary activation-code kernel (Mellor et al., ICML 2021);
* `count_flops` / `count_params`: multiply-adds of the Linear/Conv layers, and parameters.

Plus the search space of the MNIST-1D chapter (`search_space`, `build_candidate`). Plain functions:
nothing here trains; the ground truth is trained with `kdlib.batched.train_seeds` and KD / CE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import repro
from ..hooks import capture
from ..models import CNN1D
from ..tasks import make_model


def relation_distance(f_t: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
    """Relation (sample-similarity) distance of DisWOT: the README's `batch_similarity`.

    f_t: (B, ...) teacher features, f_s: (B, ...) student features of the same batch (any widths).
    Each is flattened to (B, D), its B×B Gram matrix G = F Fᵀ is L2-normalised row by row
    (`F.normalize(G)`, dim 1), and the distance is ‖norm(G_t) − norm(G_s)‖²_F / B² (a scalar ≥ 0;
    0 when the two Gram matrices agree up to a positive scale per row, e.g. f_s = c·f_t).
    """
    if f_t.shape[0] != f_s.shape[0]:
        raise ValueError(f"relation_distance: batch sizes differ (teacher {f_t.shape[0]}, student {f_s.shape[0]})")
    b = f_s.shape[0]
    g_t = F.normalize(f_t.reshape(b, -1) @ f_t.reshape(b, -1).T)
    g_s = F.normalize(f_s.reshape(b, -1) @ f_s.reshape(b, -1).T)
    return ((g_t - g_s) ** 2).sum() / (b * b)


def semantic_distance(grad_t: torch.Tensor, grad_s: torch.Tensor) -> torch.Tensor:
    """Semantic distance of DisWOT, the official README's `channel_similarity` on the fc-weight gradients.

    grad_t: (K, C_t), grad_s: (K, C_s): the gradient of the batch's cross-entropy w.r.t. each
    model's fc weight (one row g_k per class k). Per class, the C×C channel matrix g_k g_kᵀ is
    L2-normalised row by row (`F.normalize(·, dim=2)`), and the distance is the squared Frobenius
    norm of the teacher's minus the student's matrices summed over classes, / (C·K) (the README's
    `/ (ch * bsz)` with bsz = K rows). A scalar ≥ 0, 0 at equality, unchanged by scaling either gradient.

    Widths: the official code needs C_t = C_s (its ResNet pairs end in the same width). When they
    differ, the wider gradient is first brought to the narrower width C by averaging consecutive
    channels (`adaptive_avg_pool1d`); at equal widths this is the README's formula exactly.
    """
    if grad_t.dim() != 2 or grad_s.dim() != 2 or grad_t.shape[0] != grad_s.shape[0]:
        raise ValueError(f"semantic_distance: expected (K, C_t) and (K, C_s) gradients, got "
                         f"{tuple(grad_t.shape)} and {tuple(grad_s.shape)}")
    k, c = grad_s.shape[0], min(grad_t.shape[1], grad_s.shape[1])
    mats = []
    for g in (grad_t, grad_s):
        if g.shape[1] != c:  # (K, C_wide) -> (K, C): means of consecutive channels
            g = F.adaptive_avg_pool1d(g.unsqueeze(1), c).squeeze(1)
        g = g.reshape(k, c, 1)
        mats.append(F.normalize(torch.bmm(g, g.permute(0, 2, 1)), dim=2))  # (K, C, C)
    return ((mats[0] - mats[1]) ** 2).sum() / (c * k)


def class_similarity_distance(grad_t: torch.Tensor, grad_s: torch.Tensor) -> torch.Tensor:
    """The book's earlier K×K variant of the semantic term (kept as a descriptive extra, not DisWOT's).

    grad_t: (K, C_t), grad_s: (K, C_s), any widths: the rows are compared through their K×K class
    similarity, row-normalised G = g gᵀ, distance ‖norm(G_t) − norm(G_s)‖²_F / K² (≥ 0, 0 at
    equality, unchanged by scaling either gradient). It ranks students unlike the official C×C
    term, so it is no stand-in for it.
    """
    if grad_t.dim() != 2 or grad_s.dim() != 2 or grad_t.shape[0] != grad_s.shape[0]:
        raise ValueError(f"class_similarity_distance: expected (K, C_t) and (K, C_s) gradients, got "
                         f"{tuple(grad_t.shape)} and {tuple(grad_s.shape)}")
    return relation_distance(grad_t, grad_s)


def _features_and_fc_grad(model: nn.Module, x, y, layer: str):
    """The model's `layer` output on x and d CE(model(x), y) / d fc.weight, in closed form.

    For logits z = W h + b, the mean cross-entropy's gradient is (softmax(z) − onehot(y))ᵀ h / B:
    no autograd, so frozen teachers (requires_grad False) work and no .grad is touched.
    """
    seen = {}
    handle = model.fc.register_forward_hook(lambda mod, inputs, out: seen.__setitem__("h", inputs[0]))
    try:
        with torch.no_grad(), capture(model, [layer]) as feats:
            logits = model(x)
            feat = feats[layer]
    finally:
        handle.remove()
    err = logits.softmax(1) - F.one_hot(y, logits.shape[1]).to(logits.dtype)
    return feat, err.T @ seen["h"].flatten(1) / len(y)


def diswot_score(teacher: nn.Module, student: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 teacher_layer: str = "features", student_layer: str = "features") -> dict:
    """DisWOT's training-free score of `student` for `teacher` on one batch (higher = better).

    score = −(relation_distance(f_t, f_s) + semantic_distance(∇W_t, ∇W_s)), with f the hooked
    pre-classifier features and ∇W the CE gradient of the fc weight (both models need `.fc`).
    Returns floats {"relation", "semantic", "score"} and the K×K variant {"semantic_kxk",
    "score_kxk"} (`class_similarity_distance`). Neither model's parameters or .grad change.
    """
    f_t, g_t = _features_and_fc_grad(teacher, x, y, teacher_layer)
    f_s, g_s = _features_and_fc_grad(student, x, y, student_layer)
    with torch.no_grad():
        rel, sem = relation_distance(f_t, f_s).item(), semantic_distance(g_t, g_s).item()
        sem_kxk = class_similarity_distance(g_t, g_s).item()
    return {"relation": rel, "semantic": sem, "score": -(rel + sem),
            "semantic_kxk": sem_kxk, "score_kxk": -(rel + sem_kxk)}


def naswot_kernel(codes) -> torch.Tensor:
    """K_H = Σ_layers [c cᵀ + (1 − c)(1 − c)ᵀ] for binary codes c (B, units) per layer (Mellor et al. Eq. 1)."""
    b = codes[0].shape[0]
    k = torch.zeros(b, b, dtype=torch.float64)
    for c in codes:
        c = c.reshape(b, -1).to(torch.float64)
        k += c @ c.T + (1 - c) @ (1 - c).T
    return k


def naswot_score(model: nn.Module, x: torch.Tensor) -> float:
    """NASWOT (Mellor, Turner, Storkey & Crowley, ICML 2021): log|det K_H| of the ReLU codes on one batch.

    Each ReLU's output is binarised (> 0) per sample; K_H counts, for each pair of samples, the
    units on which they agree (N_A minus the Hamming distance). Higher = the network separates the
    batch's inputs better at initialisation. A singular K_H (fewer distinct codes than samples,
    common for narrow nets) scores −inf: its log-determinant is −∞, and the floating-point value
    would be rounding noise.
    """
    relus = [name for name, m in model.named_modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError(f"naswot_score: {type(model).__name__} has no nn.ReLU modules")
    with torch.no_grad(), capture(model, relus) as feats:
        model(x)
        codes = [(feats[n] > 0) for n in relus]
    k = naswot_kernel(codes)
    if torch.linalg.matrix_rank(k) < k.shape[0]:
        return float("-inf")
    return float(torch.linalg.slogdet(k)[1])


def count_flops(model: nn.Module, input_shape) -> int:
    """Multiply-adds of one sample's forward pass through the Linear and Conv1d layers.

    Linear: in × out; Conv1d: out_channels × out_length × (in_channels / groups) × kernel. The output
    lengths come from one forward pass of zeros of `input_shape` (without the batch dimension).
    """
    shapes = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: shapes.__setitem__(mod, o.shape))
             for m in model.modules() if isinstance(m, nn.Conv1d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    flops = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            flops += m.in_features * m.out_features
        elif isinstance(m, nn.Conv1d):
            flops += m.out_channels * shapes[m][-1] * (m.in_channels // m.groups) * m.kernel_size[0]
    return flops


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def search_space(mlp_depths=(1, 2, 3), mlp_widths=(8, 16, 32, 64, 128), cnn_channels=(4, 8, 16)) -> list[dict]:
    """The candidates: MLPs of every depth × width (equal hidden widths) and CNN1Ds of each channel count."""
    out = [{"name": f"mlp-{d}x{w}", "family": "mlp", "depth": d, "width": w}
           for d in mlp_depths for w in mlp_widths]
    out += [{"name": f"cnn-{c}", "family": "cnn1d", "depth": 3, "width": c} for c in cnn_channels]
    if not out:
        raise ValueError("search_space: empty (no depths × widths and no cnn_channels)")
    return out


def build_candidate(cand: dict, seed: int, num_classes: int = 10, dataset: str = "mnist1d") -> nn.Module:
    """A freshly initialised candidate, seeded like `make_model` (same seed ⇒ same init)."""
    if cand["family"] == "mlp":
        return make_model("mlp", num_classes, [cand["width"]] * cand["depth"], seed=seed, dataset=dataset)
    if cand["family"] == "cnn1d":
        repro.seed_everything(seed)
        return CNN1D(channels=cand["width"], num_classes=num_classes)
    raise ValueError(f"build_candidate: unknown family {cand['family']!r} (mlp | cnn1d)")
