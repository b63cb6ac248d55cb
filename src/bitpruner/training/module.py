"""The Lightning module for image classification; the network itself lives at `.model`."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

# Top-5 accuracy says little when there are only a handful of classes.
TOP5_MIN_CLASSES = 20


class ClassifierModule(L.LightningModule):
    """Cross-entropy classification of `model`'s logits [N, num_classes].

    `optimizer(params) -> torch.optim.Optimizer` and `scheduler(optimizer) -> LRScheduler` (stepped once per
    epoch; None: constant rate) are the partials `hydra.utils.instantiate` builds from the `optimizer` and
    `scheduler` config groups.
    """

    def __init__(self, model: nn.Module, optimizer: Callable, scheduler: Callable | None, num_classes: int):
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.num_classes = num_classes
        # Plain values only: the partials are rebuilt from the config on resume, not unpickled.
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"])
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
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"}}
