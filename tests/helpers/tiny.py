"""A tiny conv+linear network, random data and the Lightning plumbing the pruning tests fit it with."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.lightning import quiet_trainer

IMAGE = 8  # pixels per side of `tiny_data`'s images
CLASSES = 3


def tiny_net(seed: int = 0) -> nn.Sequential:
    """Layers "0" (conv 1->4), "2" (conv 4->6), "5" (linear 96->10), "7" (linear 10->3); float32, seeded."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(6 * (IMAGE - 4) ** 2, 10), nn.ReLU(), nn.Linear(10, CLASSES),
    )


def tiny_data(n: int = 64, seed: int = 1) -> TensorDataset:
    """`n` random images [n, 1, 8, 8] (float32, N(0, 1)) with random labels in [0, 3) (int64)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, IMAGE, IMAGE, generator=g)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    return TensorDataset(x, y)


def trainer(tmp_path: Path, max_epochs: int, callbacks: list, **kwargs) -> pl.Trainer:
    """A deterministic quiet trainer without sanity validation, for the pruning callbacks' tests."""
    return quiet_trainer(tmp_path, max_epochs=max_epochs, callbacks=callbacks, num_sanity_val_steps=0,
                         deterministic=True, **kwargs)


def loader(data: TensorDataset, batch_size: int = 16) -> DataLoader:
    """An unshuffled loader: the same batches every epoch and run."""
    return DataLoader(data, batch_size=batch_size, shuffle=False)


class TinyModule(pl.LightningModule):
    """Cross-entropy training of `model`, which lives at `.model` as in `bitpruner.training.module.ClassifierModule`.

    `optimizer` is "sgd" (momentum 0.9, weight decay 0.01) or "adamw" (weight decay 0.1); `steps_seen`
    counts training steps.
    """

    def __init__(self, model: nn.Module, optimizer: str = "sgd", lr: float = 0.05) -> None:
        super().__init__()
        self.model = model
        self.optimizer_name = optimizer
        self.lr = lr
        self.steps_seen = 0

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        self.steps_seen += 1
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        if self.optimizer_name == "adamw":
            return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.1)
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9, weight_decay=0.01)
