"""Lightning callback: AGP / one-shot magnitude pruning at epoch starts, inside one `fit`.

Masks are recomputed at the start of each pruning epoch (before its first batch), so the
validation at the end of that epoch sees the new sparsity and the following batches fine-tune
the survivors. Resuming from `last.ckpt` works because `setup` attaches all-ones masks before
Lightning restores the module state (which holds `weight_orig`/`weight_mask`), and the callback's
own state records the last epoch it pruned, so a mid-epoch checkpoint does not prune twice.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch import nn

from bitpruner.prune_weights.config import PruningConfig
from bitpruner.prune_weights.pruner import MagnitudePruner, overall_sparsity


class MagnitudePruningCallback(pl.Callback):
    """Prunes `getattr(pl_module, model_attr)` on the schedule of `cfg`; logs `sparsity/*`."""

    def __init__(self, cfg: PruningConfig, model_attr: str = "model") -> None:
        self.cfg = cfg
        self.model_attr = model_attr
        self.pruner: MagnitudePruner | None = None
        self.last_pruned_epoch: int | None = None
        self.last_targets: dict[str, float] = {}

    def _network(self, pl_module: pl.LightningModule) -> nn.Module:
        return getattr(pl_module, self.model_attr) if self.model_attr else pl_module

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Runs before Lightning restores a checkpoint: the masked layout must exist by then.
        if self.pruner is None:
            self.pruner = MagnitudePruner(self._network(pl_module), self.cfg)
        self.pruner.attach()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if self.pruner.is_pruning_epoch(epoch) and self.last_pruned_epoch != epoch:
            self.last_targets = self.pruner.step(epoch)
            self.last_pruned_epoch = epoch
        network = self._network(pl_module)
        pl_module.log("sparsity/overall", overall_sparsity(network), on_step=False, on_epoch=True)
        pl_module.log("sparsity/pruned", overall_sparsity(network, self.pruner.plan.pruned),
                      on_step=False, on_epoch=True)

    def state_dict(self) -> dict[str, Any]:
        return {"last_pruned_epoch": self.last_pruned_epoch, "last_targets": dict(self.last_targets)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_pruned_epoch = state_dict.get("last_pruned_epoch")
        self.last_targets = dict(state_dict.get("last_targets", {}))
