"""Less or More From Teacher: Exploiting Trilateral Geometry for KD (TGeo-KD; Hu, Wu et al., ICLR 2024).

Official code: Chengming0501/TGeo-KD (`src/fusion_ratio_bilevel.py`). Each training sample gets
its own fusion ratio alpha_i between the teacher's soft targets and the label, predicted by a
small network from the trilateral geometry of student (S), teacher (T) and ground truth (G),
plus the teacher's class-mean prediction (T-bar). The network is trained so that one student
step with its ratios lowers the loss on a held-out validation batch (bilevel optimisation).

The released script computes alpha under `torch.no_grad`, so its controller never receives a
gradient; here the hypergradient is a proper one-step lookahead with `torch.func`.

The pure functions (kept in this file, the chapter's one method file): `per_sample_kd`,
`fused_kd_loss`, `trilateral_state`, `class_mean_probs`, `wls_alpha`, `lookahead_hypergrad`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad

from ..losses import per_sample_cross_entropy
from ..method import Method


def _f32(t):
    """At least float32 (half and bfloat16 are upcast; float64 stays, for exact tests)."""
    return t if t.dtype == torch.float64 else t.float()


def per_sample_kd(student_logits, teacher_logits, temperature):
    """Per-sample T^2 KL(p_t^T || p_s^T) (Hinton et al. 2015, Eq. 2, unreduced): (N, C), (N, C) -> (N,)."""
    log_p_s = F.log_softmax(_f32(student_logits) / temperature, dim=-1)
    log_p_t = F.log_softmax(_f32(teacher_logits) / temperature, dim=-1)
    return temperature**2 * (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)


def fused_kd_loss(student_logits, teacher_logits, target, alpha, temperature):
    """TGeo-KD's per-sample fused loss (paper Eq. 1 with a ratio per sample), mean over samples:

        L = mean_i [ alpha_i * T^2 KL(p_t^T || p_s^T)_i + (1 - alpha_i) * CE(y_i, p_s)_i ].

    student_logits, teacher_logits: (N, C); target: (N,) labels; alpha: (N,) in [0, 1] or a float
    (a constant alpha gives back Hinton KD with soft weight alpha). Returns a scalar. Gradients flow
    into the student logits and into alpha (the bilevel step needs them); none into the teacher's.
    """
    kd = per_sample_kd(student_logits, teacher_logits.detach(), temperature)
    ce = per_sample_cross_entropy(_f32(student_logits), target)
    return (alpha * kd + (1 - alpha) * ce).mean(-1)


@torch.no_grad()
def class_mean_probs(teacher_logits, target, num_classes):
    """T-bar: the teacher's mean probability vector over the training samples of each label, (C, C).

    teacher_logits (N, C), target (N,) -> row c = mean of softmax(z_t) over samples labelled c
    (a class with no sample gets the uniform vector). The paper's inter-sample relation.
    """
    p = teacher_logits.float().softmax(-1)
    sums = torch.zeros(num_classes, p.shape[1], device=p.device).index_add_(0, target, p)
    counts = torch.bincount(target, minlength=num_classes).to(p.dtype)[:, None]
    return torch.where(counts > 0, sums / counts.clamp_min(1), torch.full_like(sums, 1.0 / p.shape[1]))


def trilateral_state(student_logits, teacher_logits, target, class_means):
    """The controller's input s_i: intra-sample S-T-G geometry plus the inter-sample T-bar.

    With p_s, p_t the softmax probabilities (T = 1), y the one-hot label and t = T-bar[y_i]:
        s_i = [p_s, p_t, y, t, (t - p_s)^2, (y - p_s)^2, (p_t - p_s)^2, (p_t - y)^2, (t - y)^2],
    the squares element-wise (option 3 of the official `fusion_ratio_bilevel.py`; their sums are the
    squared Euclidean edges of the S-T-G(-T-bar) triangle). (N, C), (N, C), (N,), (C, C) -> (N, 9C).
    Detached: the state is an input of the controller, not a path for gradients.
    """
    p_s = _f32(student_logits.detach()).softmax(-1)
    p_t = _f32(teacher_logits.detach()).to(p_s.dtype).softmax(-1)
    y = F.one_hot(target, p_s.shape[1]).to(p_s.dtype)
    t = class_means[target].to(p_s.dtype)
    return torch.cat([p_s, p_t, y, t, (t - p_s) ** 2, (y - p_s) ** 2, (p_t - p_s) ** 2, (p_t - y) ** 2,
                      (t - y) ** 2], dim=-1)


@torch.no_grad()
def wls_alpha(student_logits, teacher_logits, target):
    """The heuristic baseline's per-sample ratio (weighted soft labels, Zhou et al. ICLR 2021):

        alpha_i = 1 - exp(-CE(y_i, p_s) / CE(y_i, p_t)),

    close to 1 where the teacher fits the label much better than the student, close to 0 where the
    teacher's loss on the label is the larger. (N, C), (N, C), (N,) -> (N,), detached, in [0, 1).
    """
    ce_s = per_sample_cross_entropy(student_logits.float(), target)
    ce_t = per_sample_cross_entropy(teacher_logits.float(), target)
    return 1 - torch.exp(-ce_s / ce_t.clamp_min(1e-8))


class Controller(nn.Module):
    """alpha_i = sigmoid(MLP(s_i)): the official `Controller` (`src/network.py`), 9C-32-16-1,
    LeakyReLU with PyTorch's default negative slope 0.01 (the official `nn.LeakyReLU()`), sigmoid
    output. The last bias starts at logit(alpha_init), so training starts from a constant ratio."""

    negative_slope = 0.01  # nn.LeakyReLU()'s default, as in the official network.py

    def __init__(self, in_dim, hidden=(32, 16), alpha_init=0.5):
        super().__init__()
        dims = [in_dim, *hidden, 1]
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(self.negative_slope)]
        self.net = nn.Sequential(*layers[:-1])
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.fill_(float(torch.logit(torch.tensor(alpha_init))))

    def forward(self, state):
        return torch.sigmoid(self.net(state)).squeeze(-1)


def lookahead_hypergrad(student, controller, batch, val_batch, class_means, temperature, inner_lr):
    """d L_val(theta') / d omega with theta' = theta - inner_lr * grad_theta L_train(theta, alpha(omega)).

    The one-step lookahead of bilevel optimisation (DARTS-style): train loss `fused_kd_loss` with the
    controller's ratios on `batch = (x, y, teacher_logits)`, validation loss the student's cross-entropy
    on clean `val_batch = (x_val, y_val)`. Returns (hypergradients as a dict name -> tensor, val loss).
    The student's buffers (BatchNorm statistics) are copied, so the lookahead leaves them untouched.
    """
    x, y, z_t = batch
    x_val, y_val = val_batch
    theta = {k: v.detach() for k, v in student.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in student.named_buffers()}
    omega = {k: v.detach() for k, v in controller.named_parameters()}
    with torch.no_grad():
        state = trilateral_state(functional_call(student, (theta, buffers), (x,)), z_t, y, class_means)

    # buffers are passed as arguments (not captured): BatchNorm updates its statistics in place
    def train_loss(params, alpha, buffers):
        logits = functional_call(student, (params, buffers), (x,))
        return fused_kd_loss(logits, z_t, y, alpha, temperature)

    def val_loss(omega, buffers):
        alpha = functional_call(controller, omega, (state,))
        g = grad(train_loss)(theta, alpha, buffers)
        theta_next = {k: theta[k] - inner_lr * g[k] for k in theta}
        loss = F.cross_entropy(_f32(functional_call(student, (theta_next, buffers), (x_val,))), y_val)
        return loss, loss.detach()

    return grad(val_loss, has_aux=True)(omega, buffers)


class TGeoKD(Method):
    """TGeo-KD: per-sample alpha_i = controller(s_i) in `fused_kd_loss`, the controller trained by a
    one-step lookahead on a clean validation set (paper Sec. 3; code `fusion_ratio_bilevel.py`).

    class_means: T-bar (C, C) from `class_mean_probs` on the training set. val: (x_val, y_val).
    Each step: (1) every `meta_every` steps, one Adam step of the controller on the lookahead
    hypergradient (own optimiser, lr `controller_lr`); (2) the student's terms with the controller's
    current ratios, detached (the student's optimiser never moves the controller).
    A batch may carry the teacher's logits as its third tensor (cached); otherwise the teacher runs.
    """

    def __init__(self, class_means, val, temperature=4.0, controller_lr=1e-3, inner_lr=0.1, val_batch_size=100,
                 meta_every=1, hidden=(32, 16), alpha_init=0.5, seed=0):
        super().__init__()
        num_classes = class_means.shape[0]
        self.register_buffer("class_means", class_means.float())
        self.val = val
        self.temperature, self.inner_lr, self.val_batch_size, self.meta_every = temperature, inner_lr, val_batch_size, meta_every
        self.controller = Controller(9 * num_classes, hidden, alpha_init)
        self.meta_opt = torch.optim.Adam(self.controller.parameters(), lr=controller_lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.val_losses: list = []  # lookahead validation loss per meta step (tensors)
        self.alpha_trace: list = []  # mean alpha of the batch per meta step (tensors)

    def alphas(self, student_logits, teacher_logits, target):
        """The controller's ratios for a batch, (N,), detached."""
        with torch.no_grad():
            return self.controller(trilateral_state(student_logits, teacher_logits, target, self.class_means))

    def forward(self, student, teacher, batch):
        x, y = batch[0], batch[1]
        if len(batch) > 2:
            z_t = batch[2]
        else:
            with torch.no_grad():
                z_t = teacher(x)
        if self.step % self.meta_every == 0:
            x_val, y_val = self.val
            idx = torch.randint(len(x_val), (self.val_batch_size,), generator=self.generator).to(x_val.device)
            hyper, val_loss = lookahead_hypergrad(student, self.controller, (x, y, z_t), (x_val[idx], y_val[idx]),
                                                  self.class_means, self.temperature, self.inner_lr)
            for name, p in self.controller.named_parameters():
                p.grad = hyper[name]
            self.meta_opt.step()
            for p in self.controller.parameters():
                p.grad = None  # the loop's optimiser sees no gradient here, so it never moves the controller
            self.val_losses.append(val_loss)
        student_logits = student(x)
        alpha = self.alphas(student_logits, z_t, y)
        if self.step % self.meta_every == 0:
            self.alpha_trace.append(alpha.mean())  # a tensor: no host sync per step
        return {"fused": fused_kd_loss(student_logits, z_t, y, alpha, self.temperature)}


class WLSKD(Method):
    """The heuristic baseline: `fused_kd_loss` with the per-sample ratio `wls_alpha` (weighted soft
    labels, Zhou et al. 2021), recomputed from the current student at every step."""

    def __init__(self, temperature=4.0):
        super().__init__()
        self.temperature = temperature

    def terms_from_logits(self, student_logits, teacher_logits, target):
        alpha = wls_alpha(student_logits, teacher_logits, target)
        return {"fused": fused_kd_loss(student_logits, teacher_logits, target, alpha, self.temperature)}


def symmetric_noise(target, rate, num_classes, seed):
    """Symmetric label noise: each label, with probability `rate`, is replaced by a uniformly drawn
    *other* class. (N,) -> (noisy labels (N,), flipped mask (N,) bool). Seeded, CPU generator."""
    if not 0 <= rate < 1:
        raise ValueError(f"symmetric_noise: rate must be in [0, 1), got {rate}")
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(len(target), generator=g) < rate
    shift = torch.randint(1, num_classes, (len(target),), generator=g)
    noisy = torch.where(flip.to(target.device), (target + shift.to(target.device)) % num_classes, target)
    return noisy, flip.to(target.device)
