"""Teacher-Class Network (Malik, Mohbat, Haider, Rasheed & Taj, BMVC 2021).

The teacher's penultimate ("dense") representation d = h_T(x) in R^D is cut into n chunks
d_1 .. d_n; student i regresses chunk d_i from the input with a mean-squared error, each student on
its own. The students' outputs are concatenated, passed through the ReLU the teacher's dense layer
ends with, and fed to the teacher's output layer. In the official code (github.com/musab-r/TCN,
e.g. `MNIST/Feed Forward Files/[4] Students Configuration On MNIST Using FF.ipynb`) the students are
then frozen and the output layer, initialised with the teacher's weights, is fine-tuned for a few
epochs with cross-entropy: that is stage 2 here (`freeze_students`, then any CE training of the
`TeacherClass`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..method import Method
from .rkd import embed


def split_sizes(dim: int, n: int) -> list[int]:
    """The sizes of n near-equal contiguous chunks of a dim-wide vector (`torch.tensor_split`'s rule:
    the first dim % n chunks are one wider). split_sizes(125, 4) == [32, 31, 31, 31]."""
    if not 1 <= n <= dim:
        raise ValueError(f"split_sizes: n must be in [1, dim={dim}], got n={n}")
    return [len(c) for c in torch.arange(dim).tensor_split(n)]


def chunked_mse(student_features: torch.Tensor, teacher_features: torch.Tensor, sizes) -> torch.Tensor:
    """TCN's feature loss: sum over chunks i of MSE(s_i, d_i), the mean over samples and the chunk's dims.

    student_features, teacher_features: (N, D), the concatenated student outputs and the teacher's
    penultimate features; sizes: the chunk widths (sum D). Each student regresses its own chunk with
    the mean-squared error (the official code's Keras 'mean_squared_error'); since chunk i depends only
    on student i's parameters, the sum trains every student exactly as its own loss would. Returns a
    scalar >= 0, zero iff the features agree.
    """
    if student_features.shape != teacher_features.shape or student_features.dim() != 2:
        raise ValueError(f"chunked_mse: need two (N, D) tensors of one shape, got {tuple(student_features.shape)} "
                         f"and {tuple(teacher_features.shape)}")
    if sum(sizes) != student_features.shape[1]:
        raise ValueError(f"chunked_mse: sizes sum to {sum(sizes)}, features are {student_features.shape[1]}-d")
    s_chunks = student_features.split(list(sizes), dim=1)
    t_chunks = teacher_features.split(list(sizes), dim=1)
    return sum(((s - t) ** 2).mean() for s, t in zip(s_chunks, t_chunks))


class TeacherClass(nn.Module):
    """n students and the teacher's output layer as one model: forward(x) -> logits.

    students: n modules, student i mapping x to (N, sizes[i]); head: the teacher's classifier
    (copied, so fine-tuning it leaves the teacher untouched). forward concatenates the students'
    outputs, applies the ReLU that ends the teacher's representation, and applies the head; with
    perfect students this is the teacher's logits exactly. The head starts frozen (stage 1 trains the
    students only); `freeze_students` swaps that for stage 2.
    """

    def __init__(self, students, head: nn.Linear, sizes):
        super().__init__()
        sizes = list(sizes)
        if len(students) != len(sizes):
            raise ValueError(f"TeacherClass: {len(students)} students but {len(sizes)} chunk sizes")
        if sum(sizes) != head.in_features:
            raise ValueError(f"TeacherClass: chunks sum to {sum(sizes)}, the head takes {head.in_features}")
        self.students = nn.ModuleList(students)
        self.head = copy.deepcopy(head)
        self.sizes = sizes
        self.head.requires_grad_(False)

    def regress(self, x) -> torch.Tensor:
        """(N, D): the students' outputs, concatenated in chunk order (before the ReLU)."""
        return torch.cat([s(x) for s in self.students], dim=1)

    def forward(self, x):
        return self.head(torch.relu(self.regress(x)))

    @torch.no_grad()
    def combined(self, x, batch_size: int = 2048) -> torch.Tensor:
        """(N, D): the head's input, relu(students' outputs), with no graph: with the students frozen,
        stage 2 is the head alone trained on these (the same numbers as training the whole model)."""
        return torch.cat([torch.relu(self.regress(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])

    def freeze_students(self):
        """Stage 2: students frozen, the head (initialised from the teacher's) trainable."""
        self.students.requires_grad_(False)
        self.head.requires_grad_(True)
        return self

    def student_params(self) -> list[int]:
        return [sum(p.numel() for p in s.parameters()) for s in self.students]


class TCN(Method):
    """Stage 1 of the Teacher-Class Network: weight * sum_i MSE(student_i(x), d_i(x)).

    `student` is a `TeacherClass`; d(x) is the teacher's output of `layer` (flattened; the book's
    CNN1D: its 125-d `features`), captured with a forward hook under no_grad, so nothing flows into
    the teacher. No labels are used: the students learn the teacher's representation, not a task.
    """

    def __init__(self, layer: str = "features", weight: float = 1.0):
        super().__init__()
        if weight <= 0:
            raise ValueError(f"TCN: weight must be > 0, got {weight}")
        self.layer, self.weight = layer, weight

    def forward(self, student, teacher, batch):
        if not isinstance(student, TeacherClass):
            raise TypeError(f"TCN: the student must be a TeacherClass, got {type(student).__name__}")
        x = batch[0]
        if len(batch) > 2:  # (x, y, d): the targets precomputed once by `teacher_features` (same numbers)
            target = batch[2]
        elif teacher is None:
            raise ValueError("TCN needs a teacher (teacher=None) or precomputed targets (x, y, d)")
        else:
            target = teacher_features(teacher, x, self.layer)
        return {"mse": self.weight * chunked_mse(student.regress(x), target, student.sizes)}


@torch.no_grad()
def teacher_features(teacher, x, layer: str = "features", batch_size: int = 2048) -> torch.Tensor:
    """(N, D) on x's device: the frozen teacher's `layer` output on x (`kdlib.methods.rkd.embed`), detached.

    The inputs never change between epochs (no augmentation), so the stage-1 targets can be computed
    once and carried as the batch's third tensor, as `kdlib.train` caches a teacher's logits."""
    return embed(teacher, x, layer, batch_size).detach().to(x.device)


def mlp_params(in_dim: int, hidden, out_dim: int) -> int:
    """Parameters of a kdlib MLP in_dim -> hidden... -> out_dim (weights and biases)."""
    widths = [in_dim, *hidden, out_dim]
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def width_for_budget(n: int, budget: int, in_dim: int, dim: int, depth: int = 2, head_params: int = 0) -> int:
    """The widest hidden width h such that n MLP students in_dim -> [h] * depth -> chunk_i (the chunks
    of a dim-wide representation) plus a head of head_params parameters fit in `budget` parameters."""
    sizes = split_sizes(dim, n)

    def total(h):
        return head_params + sum(mlp_params(in_dim, [h] * depth, c) for c in sizes)

    if total(1) > budget:
        raise ValueError(f"width_for_budget: {n} students do not fit in budget={budget} even at width 1")
    h = 1
    while total(h + 1) <= budget:
        h += 1
    return h
