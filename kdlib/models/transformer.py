"""A small vision-transformer-style classifier for 1-D signals (MNIST-1D): patches as tokens.

The third architecture family of Part III (next to the MLP and the 1-D CNN): One-for-All
distils across families, and the token-relation-graph chapter needs token features. Built in
plain PyTorch (a pre-norm block as in ViT: x + MHA(LN(x)), then x + MLP(LN(x))), so every
intermediate tensor is a module output that `kdlib.hooks` can capture:

    features.0            PatchEmbed   -> (N, P, D) tokens (+ learned position embeddings)
    features.1 .. depth   Block        -> (N, P, D) tokens after each block
    features.{depth + 1}  TokenPool    -> (N, D) mean over tokens after a final LayerNorm
    fc                    Linear       -> (N, num_classes)

as in every kdlib model, `features` ends with the penultimate embedding and `fc` is the classifier.
(This module is not in `kdlib.models.build`'s registry yet: import `PatchTransformer` from here.)
"""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """Non-overlapping patches of length `patch`, each projected to `dim`, plus a learned position embedding."""

    def __init__(self, in_len: int, patch: int, dim: int):
        super().__init__()
        if in_len % patch:
            raise ValueError(f"PatchEmbed: in_len={in_len} is not a multiple of patch={patch}")
        self.proj = nn.Conv1d(1, dim, kernel_size=patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, in_len // patch, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, x):
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.proj(x).transpose(1, 2) + self.pos  # (N, P, D)


class Block(nn.Module):
    """Pre-norm transformer block: x + MHA(LN(x)); x + MLP(LN(x)) (GELU, hidden = mlp_ratio * dim)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TokenPool(nn.Module):
    """Final LayerNorm, then the mean over tokens: (N, P, D) -> (N, D)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x).mean(1)


class PatchTransformer(nn.Module):
    """Transformer over patches of a 1-D signal (defaults: 40 samples -> 10 tokens of 4, dim 32, 2 blocks, 4 heads)."""

    def __init__(self, in_len: int = 40, patch: int = 4, dim: int = 32, depth: int = 2, heads: int = 4,
                 mlp_ratio: int = 2, num_classes: int = 10, dropout: float = 0.0):
        super().__init__()
        if depth < 1:
            raise ValueError(f"PatchTransformer: depth must be >= 1, got {depth}")
        if dim % heads:
            raise ValueError(f"PatchTransformer: dim={dim} is not a multiple of heads={heads}")
        self.depth = depth
        self.features = nn.Sequential(
            PatchEmbed(in_len, patch, dim),
            *[Block(dim, heads, mlp_ratio, dropout) for _ in range(depth)],
            TokenPool(dim),
        )
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))
