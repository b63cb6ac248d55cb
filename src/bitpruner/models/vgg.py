"""A small VGG: 3x3 conv blocks with batch norm, max-pool, and a linear classifier."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class VGGSmall(nn.Module):
    """`plan` lists conv widths and "M" for a 2x2 max-pool (VGG notation).

    Convs are named `features.conv1`, `features.conv2`, ...; the classifier `classifier.fc1`, ...
    Pools that would shrink the map below 1x1 are skipped, so the plan works on 8x8 inputs too.
    """

    def __init__(self, in_channels: int = 3, image_size: tuple[int, int] = (32, 32), num_classes: int = 10,
                 plan: tuple = (32, 32, "M", 64, 64, "M", 128, 128, "M"), hidden: int = 256,
                 dropout: float = 0.0):
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        h, w = image_size
        channels, n_conv, n_pool = in_channels, 0, 0
        for item in plan:
            if item == "M":
                if min(h, w) >= 2:
                    n_pool += 1
                    layers[f"pool{n_pool}"] = nn.MaxPool2d(2)
                    h, w = h // 2, w // 2
                continue
            n_conv += 1
            layers[f"conv{n_conv}"] = nn.Conv2d(channels, int(item), 3, padding=1, bias=False)
            layers[f"bn{n_conv}"] = nn.BatchNorm2d(int(item))
            layers[f"relu{n_conv}"] = nn.ReLU()
            channels = int(item)
        self.features = nn.Sequential(layers)
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(channels * h * w, hidden)),
            ("relu", nn.ReLU()),
            ("dropout", nn.Dropout(dropout)),
            ("fc2", nn.Linear(hidden, num_classes)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))
