"""A quiet CPU Lightning `Trainer` and a linear classifier module to fit with it."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn

# No logger, progress bar or model summary: test output stays readable; CPU only, one device.
QUIET_TRAINER = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                 "accelerator": "cpu", "devices": 1}


def quiet_trainer(root: Path, **kwargs) -> pl.Trainer:
    """`pl.Trainer` with `QUIET_TRAINER` defaults rooted in `root`; `kwargs` override or add options."""
    return pl.Trainer(**{**QUIET_TRAINER, "default_root_dir": str(root), **kwargs})


class LinearClassifier(pl.LightningModule):
    """Flatten + one Linear(inputs, classes), Adam; logs test accuracy (a fraction) as "acc"."""

    def __init__(self, inputs: int, classes: int, lr: float = 0.05):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(inputs, classes))
        self.lr = lr

    def training_step(self, batch, _):
        images, labels = batch
        return nn.functional.cross_entropy(self.net(images), labels)

    def test_step(self, batch, _):
        images, labels = batch
        self.log("acc", (self.net(images).argmax(1) == labels).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)
