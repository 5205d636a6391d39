"""Small models for the cpu profile (8x8 digits): an MLP and a small CNN."""

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
