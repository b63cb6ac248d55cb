"""Models: every conv/linear layer is reachable by a stable name (see `prunable_layers`)."""

from bitpruner.models.grouped import GroupedCNN
from bitpruner.models.layers import prunable_layers
from bitpruner.models.lenet import LeNet5
from bitpruner.models.mlp import MLP
from bitpruner.models.resnet import ResNetCifar, resnet20
from bitpruner.models.torchvision_models import torchvision_model
from bitpruner.models.vgg import VGGSmall

__all__ = ["GroupedCNN", "LeNet5", "MLP", "VGGSmall", "ResNetCifar", "resnet20", "torchvision_model", "prunable_layers"]
