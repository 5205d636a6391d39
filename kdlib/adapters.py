"""Adapters: small trainable maps from a student's features to the shape of a teacher's.

Feature distillation compares tensors of different widths (and, across architecture families,
of different kinds: a flat MLP layer, a (C, L) 1-D feature map, (P, D) transformer tokens).
FitNets' "regressor" is the original adapter; every method that matches features builds one per
matched pair with `adapter_for`. Adapters are trained with the student and discarded after.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .hooks import capture


class LinearAdapters(nn.Module):
    """One linear map per matched pair of flat features: student width -> teacher width."""

    def __init__(self, student_widths, teacher_widths):
        super().__init__()
        if len(student_widths) != len(teacher_widths):
            raise ValueError(f"LinearAdapters: {len(student_widths)} student widths but {len(teacher_widths)} teacher widths")
        self.maps = nn.ModuleList(nn.Linear(s, t) for s, t in zip(student_widths, teacher_widths))

    def forward(self, hidden: list[torch.Tensor]) -> list[torch.Tensor]:
        return [w(h) for w, h in zip(self.maps, hidden)]


class Conv1x1Adapter(nn.Module):
    """(N, C_s, L_s) -> (N, C_t, L_t): a 1x1 convolution over channels, then average pooling to the teacher's length."""

    def __init__(self, in_channels: int, out_channels: int, out_length: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=1)
        self.out_length = out_length

    def forward(self, x):
        return F.adaptive_avg_pool1d(self.conv(x), self.out_length)


class TokenAdapter(nn.Module):
    """(N, P_s, D_s) -> (N, P_t, D_t): a linear map per token, then average pooling over tokens to P_t."""

    def __init__(self, in_dim: int, out_dim: int, out_tokens: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)
        self.out_tokens = out_tokens

    def forward(self, x):
        return F.adaptive_avg_pool1d(self.proj(x).transpose(1, 2), self.out_tokens).transpose(1, 2)


class FlattenAdapter(nn.Module):
    """Any (N, ...) -> (N, *out_shape): flatten, one linear map, reshape (features of different kinds)."""

    def __init__(self, in_features: int, out_shape):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.proj = nn.Linear(in_features, int(torch.Size(self.out_shape).numel()))

    def forward(self, x):
        return self.proj(x.flatten(1)).view(len(x), *self.out_shape)


def adapter_for(student_shape, teacher_shape, tokens: bool = False) -> nn.Module:
    """The adapter from a student feature of shape `student_shape` to `teacher_shape` (both without the batch).

    (D_s,) -> (D_t,): Linear; (C_s, L_s) -> (C_t, L_t): 1x1 Conv1d + pooling to L_t, or with
    tokens=True (both are (P, D) token sequences) a per-token Linear + pooling to P_t;
    anything else (features of different kinds, e.g. CNN map -> flat MLP layer): flatten + Linear.
    """
    s, t = tuple(student_shape), tuple(teacher_shape)
    if len(s) == 1 and len(t) == 1:
        return nn.Linear(s[0], t[0])
    if len(s) == 2 and len(t) == 2:
        return TokenAdapter(s[1], t[1], t[0]) if tokens else Conv1x1Adapter(s[0], t[0], t[1])
    return FlattenAdapter(int(torch.Size(s).numel()), t)


@torch.no_grad()
def stage_shapes(model: nn.Module, x: torch.Tensor, names) -> list[tuple]:
    """The shape (without the batch) of each named module's output on one batch x (eval mode, no training)."""
    was_training = model.training
    model.eval()
    with capture(model, list(names)) as h:
        model(x)
    model.train(was_training)
    return [tuple(h[n].shape[1:]) for n in names]


class ExitBranch(nn.Module):
    """One-for-All's exit branch: a student stage's output, of any family, -> (N, num_classes) logits.

    Hao et al. (NeurIPS 2023) attach one branch per student stage and train it to match the
    teacher in logit space, where the families' features need not agree. The official branches
    (OFAKD distillers/ofa.py) are, for CNN stages, separable-conv downsampling, global average
    pooling and a linear classifier; for ViT stages, patch merging, transformer blocks, pooling
    and a linear classifier. kdlib's stages are small, so one block of each kind:

    (D,)    flat MLP layer:   Linear(D, width), ReLU, Linear(width, C);
    (C, L)  1-D feature map:  Conv1d(C, width, 3, stride 2), ReLU, global average pool, Linear(width, C);
    (P, D)  tokens (tokens=True): one pre-norm transformer block, LayerNorm, mean over tokens,
            Linear(D, C).

    A (C, L) shape is a feature map unless tokens=True (the shape alone cannot tell them apart;
    a PatchTransformer's stages are tokens). The branch is trained with the student and dropped
    at inference.
    """

    def __init__(self, feature_shape, num_classes: int, tokens: bool = False, width: int = 64):
        super().__init__()
        shape = tuple(int(s) for s in feature_shape)
        if len(shape) not in (1, 2) or min(shape) < 1:
            raise ValueError(f"ExitBranch: feature_shape must be (D,), (C, L) or (P, D) without the batch, got {shape}")
        if num_classes < 2:
            raise ValueError(f"ExitBranch: num_classes must be >= 2, got {num_classes}")
        self.feature_shape, self.tokens = shape, tokens
        if len(shape) == 1:
            self.body = nn.Sequential(nn.Linear(shape[0], width), nn.ReLU(), nn.Linear(width, num_classes))
        elif tokens:
            from .models.transformer import Block  # the PatchTransformer's own block

            dim = shape[1]
            heads = next(h for h in (4, 2, 1) if dim % h == 0)
            self.body = nn.Sequential(Block(dim, heads), _TokenMean(dim), nn.Linear(dim, num_classes))
        else:
            self.body = nn.Sequential(nn.Conv1d(shape[0], width, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x):
        if tuple(x.shape[1:]) != self.feature_shape:
            raise ValueError(f"ExitBranch: expected features of shape {self.feature_shape} (without the batch), "
                             f"got {tuple(x.shape[1:])}")
        return self.body(x)


class _TokenMean(nn.Module):
    """LayerNorm, then the mean over tokens: (N, P, D) -> (N, D)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x).mean(1)
