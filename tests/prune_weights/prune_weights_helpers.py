"""Moved to tests/helpers/tiny.py: this re-export keeps `from prune_weights_helpers import ...` working."""

from helpers.tiny import CLASSES, IMAGE, TinyModule, loader, tiny_data, tiny_net, trainer  # noqa: F401
