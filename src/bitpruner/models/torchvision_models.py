"""torchvision's ImageNet models (needs the `vision` extra), with optional local pretrained weights."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from bitpruner.errors import ConfigError

SUPPORTED = ("resnet18", "vgg16", "alexnet", "mobilenet_v2")


def torchvision_model(arch: str, in_channels: int = 3, image_size: tuple[int, int] = (224, 224),
                      num_classes: int = 1000, weights_path: str | None = None) -> nn.Module:
    """Build `torchvision.models.<arch>`; `weights_path` is a local state dict (nothing is downloaded)."""
    if arch not in SUPPORTED:
        raise ConfigError(f"model.arch: unknown torchvision model {arch!r}; expected one of {', '.join(SUPPORTED)}")
    if in_channels != 3:
        raise ConfigError(f"model.arch: {arch} expects 3 input channels, the data set has {in_channels}")
    try:
        import torchvision
    except Exception as exc:  # PyPI's torchvision may fail to import beside a CPU torch build
        raise ConfigError(
            f"model.arch: {arch} needs torchvision (pip install 'bitpruner[vision]'): {exc}".splitlines()[0]
        ) from exc
    model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    if weights_path:
        from bitpruner.models.checkpoint import load_state_dict_file

        path = Path(weights_path)
        if not path.is_file():
            raise ConfigError(f"model.weights_path: {path} does not exist (expected a torch state dict)")
        load_state_dict_file(model, path)
    return model
