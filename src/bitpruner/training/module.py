"""The Lightning module for image classification; the network itself lives at `.model`."""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from bitpruner.training.optim import build_optimizer, build_scheduler

# Top-5 accuracy says little when there are only a handful of classes.
TOP5_MIN_CLASSES = 20


class ClassifierModule(L.LightningModule):
    def __init__(self, model: nn.Module, optimizer: Mapping, scheduler: Mapping | None, num_classes: int):
        super().__init__()
        self.model = model
        self.optimizer_cfg = dict(optimizer)
        self.scheduler_cfg = dict(scheduler or {"name": "none"})
        self.num_classes = num_classes
        self.save_hyperparameters(ignore=["model"])
        self.top5 = num_classes >= TOP5_MIN_CLASSES
        for split in ("train", "val", "test"):
            setattr(self, f"{split}_acc", MulticlassAccuracy(num_classes=num_classes, average="micro"))
            if self.top5:
                setattr(self, f"{split}_acc5", MulticlassAccuracy(num_classes=num_classes, top_k=5, average="micro"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        acc = getattr(self, f"{split}_acc")
        acc(logits, y)
        on_step = split == "train"
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=split != "test")
        self.log(f"{split}/acc", acc, on_step=False, on_epoch=True, prog_bar=True)
        if self.top5:
            acc5 = getattr(self, f"{split}_acc5")
            acc5(logits, y)
            self.log(f"{split}/acc_top5", acc5, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        optimizer = build_optimizer(self.parameters(), self.optimizer_cfg)
        max_epochs = self.trainer.max_epochs if self.trainer is not None else 1
        scheduler = build_scheduler(optimizer, self.scheduler_cfg, max_epochs)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
