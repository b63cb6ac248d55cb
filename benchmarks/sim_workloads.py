"""Synthetic simulator workloads shared by the simulator benchmarks (``sim_vs_dnnsim.py``, ``sim_scaling.py``).

Integer traces shaped like real networks, with random values: activations |N(0, 30)| clipped to 8-bit
magnitudes with half of them zero (after ReLU), weights signed with 30 % zeros. The values are not those of a
trained network (the simulators' speed depends on the shapes and the zero/bit density, not on accuracy); every
generator is seeded, so a workload is the same on every run.

- ``conv2x_fc``: one ResNet-18 conv2_x layer (64 x 56 x 56 input, 3 x 3, pad 1, K = 64) + fc 512 x 1000;
- ``resnet18``: a ResNet-18-shaped network without its 7 x 7 first layer (DNNsim reshapes a first layer with
  C = 3 and stride > 1, so the two simulators would not simulate the same layer): 19 convs (16 3 x 3, three
  1 x 1 downsamples) on a 56 x 56 input (a 224 x 224 image after the stem) + fc 512 x 1000;
- ``lenet5``: LeNet-5 (two 5 x 5 convs on 32 x 32, three fc).
"""

from __future__ import annotations

import numpy as np

from bitpruner.sim.traces import LayerTrace, NetworkTrace

RELU_SPARSITY = 0.5  # fraction of zero activations after ReLU
WEIGHT_SPARSITY = 0.3
VALUE_SCALE = 30.0  # |N(0, 30)| ...
MAX_MAGNITUDE = 127  # ... clipped to 8-bit magnitudes
SEED = 0
RESNET_STAGES = ((64, 56), (128, 28), (256, 14), (512, 7))  # (channels, output size) of conv2_x .. conv5_x
BLOCKS_PER_STAGE = 2
CLASSES = 1000


def values(rng: np.random.Generator, shape: tuple[int, ...], sparsity: float, signed: bool) -> np.ndarray:
    """int64 array of `shape`: |N(0, VALUE_SCALE)| rounded and clipped to MAX_MAGNITUDE, a `sparsity` fraction
    set to zero, random signs when `signed`."""
    v = np.round(np.abs(rng.normal(0.0, VALUE_SCALE, shape))).clip(0, MAX_MAGNITUDE).astype(np.int64)
    v[rng.random(shape) < sparsity] = 0
    return v * rng.choice([-1, 1], shape) if signed else v


def conv(rng, name: str, K: int, C: int, k: int, X: int, images: int = 1, stride: int = 1, pad: int = 0):
    """A conv layer: K filters of C x k x k, `images` inputs of C x X x X (x-first axes, as DNNsim)."""
    return LayerTrace(name, "conv", values(rng, (K, C, k, k), WEIGHT_SPARSITY, True),
                      values(rng, (images, C, X, X), RELU_SPARSITY, False), stride=stride, pad=pad)


def fc(rng, name: str, K: int, C: int, images: int = 1) -> LayerTrace:
    """An fc layer: K x C weights, `images` inputs of C values."""
    return LayerTrace(name, "fc", values(rng, (K, C), WEIGHT_SPARSITY, True),
                      values(rng, (images, C), RELU_SPARSITY, False))


def conv2x_fc(images: int = 1) -> NetworkTrace:
    """One ResNet-18 conv2_x layer and the fc 512 x 1000 classifier."""
    rng = np.random.default_rng(SEED)
    return NetworkTrace("conv2x_fc", [conv(rng, "conv2_x", 64, 64, 3, 56, images, pad=1),
                                      fc(rng, "fc", CLASSES, 512, images)])


def resnet18(images: int = 1) -> NetworkTrace:
    """ResNet-18's 19 convs after the 7 x 7 stem (downsample 1 x 1 convs included) and its fc."""
    rng = np.random.default_rng(SEED + 1)
    layers, c_in = [], RESNET_STAGES[0][0]
    for stage, (channels, size) in enumerate(RESNET_STAGES, start=2):
        for block in range(BLOCKS_PER_STAGE):
            stride = 2 if block == 0 and channels != c_in else 1  # a stage's first block halves the size
            prefix = f"conv{stage}_{block + 1}"
            layers.append(conv(rng, f"{prefix}a", channels, c_in, 3, size * stride, images, stride=stride, pad=1))
            if stride > 1:
                layers.append(conv(rng, f"{prefix}ds", channels, c_in, 1, size * stride, images, stride=stride))
            layers.append(conv(rng, f"{prefix}b", channels, channels, 3, size, images, pad=1))
            c_in = channels
    layers.append(fc(rng, "fc", CLASSES, c_in, images))
    return NetworkTrace("resnet18", layers)


def lenet5(images: int = 1) -> NetworkTrace:
    """LeNet-5: conv 6 x 1 x 5 x 5 on 32 x 32, conv 16 x 6 x 5 x 5 on 14 x 14, fc 400-120-84-10."""
    rng = np.random.default_rng(SEED + 2)
    return NetworkTrace("lenet5", [conv(rng, "conv1", 6, 1, 5, 32, images), conv(rng, "conv2", 16, 6, 5, 14, images),
                                   fc(rng, "fc1", 120, 400, images), fc(rng, "fc2", 84, 120, images),
                                   fc(rng, "fc3", 10, 84, images)])


WORKLOADS = {"conv2x_fc": conv2x_fc, "resnet18": resnet18, "lenet5": lenet5}
