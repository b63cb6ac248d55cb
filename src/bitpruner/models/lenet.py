"""LeNet-5 (ReLU, max-pool), sized from the data module's input."""

from __future__ import annotations

import torch
from torch import nn


class LeNet5(nn.Module):
    """conv1(5x5, 6) -> pool -> conv2(5x5, 16) -> pool -> fc1(120) -> fc2(84) -> fc3(classes).

    conv1 keeps the spatial size (pad 2, as for 28x28 MNIST). On inputs too small for an
    unpadded conv2 (8x8 digits) conv2 is padded too, so the same model serves every data set.
    """

    def __init__(self, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10,
                 channels: tuple[int, int] = (6, 16), hidden: tuple[int, int] = (120, 84), kernel_size: int = 5):
        super().__init__()
        h, w = image_size
        pad1 = kernel_size // 2
        self.conv1 = nn.Conv2d(in_channels, channels[0], kernel_size, padding=pad1)
        h, w = h // 2, w // 2
        pad2 = 0 if min(h, w) >= kernel_size else kernel_size // 2
        self.conv2 = nn.Conv2d(channels[0], channels[1], kernel_size, padding=pad2)
        h, w = (h + 2 * pad2 - kernel_size + 1) // 2, (w + 2 * pad2 - kernel_size + 1) // 2
        self.fc1 = nn.Linear(channels[1] * h * w, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], num_classes)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)
