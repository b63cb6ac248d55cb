"""A plain multi-layer perceptron over flattened images."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """fc1 .. fcN with ReLU between; layer names are `fc1`, `fc2`, ... (stable for pruning)."""

    def __init__(self, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10,
                 hidden: tuple[int, ...] = (300, 100), dropout: float = 0.0):
        super().__init__()
        sizes = [in_channels * image_size[0] * image_size[1], *hidden, num_classes]
        self.layers = nn.ModuleDict(
            {f"fc{i + 1}": nn.Linear(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)}
        )
        self.dropout = nn.Dropout(dropout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers.values()):
            x = layer(x)
            if i < last:
                x = self.dropout(self.relu(x))
        return x
