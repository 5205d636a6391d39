"""Small models for the cpu profile: an MLP (any flat input), a small CNN (8x8 digits), a 1-D CNN (MNIST-1D)."""

from __future__ import annotations

from torch import nn


class MLP(nn.Module):
    """MLP in_dim -> hidden... -> num_classes with ReLU (and optional dropout).

    `features` is everything up to the last hidden layer and `fc` the classifier, so a
    forward hook on `features` captures the penultimate embedding.
    """

    def __init__(self, in_dim=64, hidden=(32,), num_classes=10, dropout=0.0):
        super().__init__()
        layers, width = [], in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x.flatten(1)))


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks and a linear head for (N, 1, 8, 8) digits (or flat (N, 64) input)."""

    def __init__(self, channels=(16, 32), num_classes=10, dropout=0.0):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Dropout(dropout) if dropout else nn.Identity(),
        )
        self.fc = nn.Linear(c2, num_classes)

    def forward(self, x):
        if x.dim() == 2:
            x = x.view(-1, 1, 8, 8)
        return self.fc(self.features(x))


class CNN1D(nn.Module):
    """The MNIST-1D baseline ConvNet: three strided 1-D convolutions and a linear head (5,210 parameters).

    Layer for layer the `ConvBase` of github.com/greydanus/mnist1d (notebooks/models.py):
    Conv1d(1, 25, 5, stride 2, padding 1) -> Conv1d(25, 25, 3, 2, 1) -> Conv1d(25, 25, 3, 2, 1),
    ReLU after each, flattened (25 x 5 = 125 for length-40 input) into Linear(125, 10).
    `features` ends with the flattened 125-d embedding (the penultimate layer, for hooks) and
    `fc` is the classifier. Input: (N, 40) or (N, 1, 40).

    Published test accuracy on MNIST-1D (Greydanus & Kobak, ICML 2024; arXiv:2011.14439 v1
    abstract and the repo README's table): logistic regression 32 %, MLP 68 %, CNN 94 %,
    GRU 91 %, human 96 %. The repo's notebooks/mnist1d-classification.ipynb, run with the
    published recipe (Adam lr 1e-2, batch 100, 6,000 steps, weight decay 0), stores CNN 92.3 %,
    MLP 65.1 %, logistic 31.5 %. See benchmarks/mnist1d_baselines.py for kdlib's numbers.
    """

    def __init__(self, in_len=40, channels=25, num_classes=10):
        super().__init__()
        length = in_len
        for kernel in (5, 3, 3):  # output length of a stride-2, padding-1 convolution
            length = (length + 2 - kernel) // 2 + 1
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, 5, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )
        self.fc = nn.Linear(channels * length, num_classes)

    def forward(self, x):
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.fc(self.features(x))
