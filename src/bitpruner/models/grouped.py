"""A small MobileNet-style network of grouped, depthwise and pointwise convolutions (no torchvision needed).

It exists so that grouped convolutions (PyTorch ``groups``) run through training, trace capture and the
simulator in tests and on the small data sets; `model=mobilenet_v2` (torchvision) is the full-size one.
Layout: a dense stem conv, then blocks of a depthwise 3x3 conv (``groups = C``) and a pointwise 1x1 conv,
one grouped 3x3 conv (``groups``), global average pooling and an fc classifier (MobileNet v1, Howard et al.
2017, without batch norm).
"""

from __future__ import annotations

import torch
from torch import nn

from bitpruner.errors import ConfigError


class GroupedCNN(nn.Module):
    """stem (3x3, ``channels[0]``) -> per later entry c of ``channels``: depthwise 3x3 (stride ``strides[i]``) +
    pointwise 1x1 to c -> grouped 3x3 (``groups``) -> average pool -> fc.

    Layer names: ``stem``, ``blocks.blockN.dw``, ``blocks.blockN.pw``, ``grouped``, ``fc`` (stable for pruning). Raises
    ConfigError when the last width is not a multiple of ``groups`` or the lists disagree in length.
    """

    def __init__(self, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10,
                 channels: tuple[int, ...] = (8, 16, 32), strides: tuple[int, ...] = (1, 2), groups: int = 4):
        super().__init__()
        channels, strides = tuple(channels), tuple(strides)
        if len(channels) < 1 or len(strides) != len(channels) - 1:
            raise ConfigError(f"model.strides: {len(strides)} entries; expected one per block "
                              f"({len(channels) - 1}: len(channels) - 1)")
        if groups < 1 or channels[-1] % groups:
            raise ConfigError(f"model.groups: {groups}; expected a divisor of the last width {channels[-1]}")
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.blocks = nn.ModuleDict()
        for i, (c_in, c_out, s) in enumerate(zip(channels[:-1], channels[1:], strides, strict=True)):
            self.blocks[f"block{i + 1}"] = nn.ModuleDict({
                "dw": nn.Conv2d(c_in, c_in, 3, stride=s, padding=1, groups=c_in),
                "pw": nn.Conv2d(c_in, c_out, 1),
            })
        self.grouped = nn.Conv2d(channels[-1], channels[-1], 3, padding=1, groups=groups)
        self.fc = nn.Linear(channels[-1], num_classes)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.stem(x))
        for block in self.blocks.values():
            x = self.relu(block["pw"](self.relu(block["dw"](x))))
        x = self.relu(self.grouped(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
