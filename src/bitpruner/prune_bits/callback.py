"""Lightning callback: progressive bit pruning (step / agp schedule, or ADMM) inside one `fit`.

At each epoch start every layer's projection gets its k and group selection for that epoch (idempotent:
selections only grow, so re-applying an epoch after a resume changes nothing). Resuming from `last.ckpt`
works because `setup` registers the parametrizations before Lightning restores the module state (which
holds the latent weights, masks, k and selections); the callback's own state holds ADMM's Z, U and rho.

Mode `published` (LLSQ's bit pruning, published.py): at fit start every layer fixes its radix and target bit
sparsity (first and last layers with `edge_factor`), unless a restored checkpoint already holds them; after every
training batch (that is, after its optimizer step, before the next forward) the revert rule runs if `progressive`.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from bitpruner.models.layers import prunable_layers
from bitpruner.prune_bits.admm import AdmmState
from bitpruner.prune_bits.config import PUBLISHED, BitPruneConfig
from bitpruner.prune_bits.projected_weight import BitProjectedWeight, attach_projections, latent_weight
from bitpruner.prune_bits.schedule import layer_state
from bitpruner.quant.fixed_point import QuantConfig


class BitPruningCallback(pl.Callback):
    """Bit-prunes `getattr(pl_module, model_attr)` towards `targets` ({layer: k}); logs `prune_bits/*`."""

    def __init__(self, cfg: BitPruneConfig, quant: QuantConfig, targets: dict[str, int],
                 model_attr: str = "model") -> None:
        self.cfg = cfg
        self.quant = quant
        self.targets = dict(targets)
        self.model_attr = model_attr
        self.projections: dict[str, BitProjectedWeight] = {}
        self.admm = AdmmState(cfg.admm, targets) if cfg.admm.enabled else None
        self.last_applied_epoch: int | None = None

    def _network(self, pl_module: pl.LightningModule) -> nn.Module:
        return getattr(pl_module, self.model_attr) if self.model_attr else pl_module

    def _layers(self, pl_module: pl.LightningModule) -> dict[str, tuple[BitProjectedWeight, torch.Tensor]]:
        layers = prunable_layers(self._network(pl_module))
        return {n: (p, latent_weight(layers[n])) for n, p in self.projections.items()}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Runs before Lightning restores a checkpoint: the parametrized layout must exist by then.
        self.projections = attach_projections(self._network(pl_module), self.quant, self.cfg.mode,
                                              self.cfg.lanes, self.cfg.encoding, self.cfg.published)

    @property
    def published(self) -> bool:
        return self.cfg.mode == PUBLISHED

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning's restore: a resumed fit finds its layers ready and keeps their state.
        if not self.published:
            return
        layers = self._layers(pl_module)
        for index, (proj, w) in enumerate(layers.values()):
            proj.init_published(w, self.cfg.published.layer_factor(index, len(layers)))

    @torch.no_grad()
    def apply_epoch(self, pl_module: pl.LightningModule, epoch: int) -> None:
        """Set every layer's k and selection for `epoch`."""
        for name, (proj, w) in self._layers(pl_module).items():
            k, fraction = layer_state(self.cfg, epoch, self.targets[name], self.quant.bits)
            proj.k.fill_(k)
            if fraction >= 1.0:
                proj.group_selected.fill_(True)
            elif fraction > 0.0:
                proj.select_groups(w, self.targets[name], fraction)
        if self.admm_active(epoch):
            if self.admm.started:
                self.admm.to(pl_module.device)
            else:
                self.admm.start(self._layers(pl_module))
        self.last_applied_epoch = epoch

    def admm_active(self, epoch: int) -> bool:
        return self.admm is not None and epoch < self.cfg.admm.epochs

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        self.apply_epoch(pl_module, epoch)
        n = sum(p.mask.numel() for p in self.projections.values())
        k_mean = sum(int(p.k) * p.mask.numel() for p in self.projections.values()) / max(n, 1)
        selected = sum(float(p.group_selected.float().mean()) * p.mask.numel() for p in self.projections.values())
        pl_module.log("prune_bits/k_mean", float(k_mean), on_step=False, on_epoch=True)
        pl_module.log("prune_bits/projected_fraction", selected / max(n, 1), on_step=False, on_epoch=True)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        if self.admm_active(trainer.current_epoch):
            self.admm.add_penalty_grad(self._layers(pl_module))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.published:
            if self.cfg.published.progressive:
                self.revert_step(pl_module)
            return
        if not self.admm_active(trainer.current_epoch):
            return
        layers = self._layers(pl_module)
        if self.admm.step(layers):
            pl_module.log("prune_bits/admm_penalty", self.admm.penalty(layers), on_step=True, on_epoch=False)
            pl_module.log("prune_bits/admm_rho", self.admm.rho, on_step=True, on_epoch=False)

    def revert_step(self, pl_module: pl.LightningModule) -> None:
        """LLSQ's revert rule on every layer (after the optimizer step); logs the fraction of weights reverted."""
        reverted = sum(proj.published_step(w) for proj, w in self._layers(pl_module).values())
        n = sum(p.mask.numel() for p in self.projections.values())
        pl_module.log("prune_bits/published_reverted", reverted / max(n, 1), on_step=False, on_epoch=True)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"last_applied_epoch": self.last_applied_epoch}
        if self.admm is not None:
            state["admm"] = self.admm.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_applied_epoch = state_dict.get("last_applied_epoch")
        if self.admm is not None and "admm" in state_dict:
            self.admm.load_state_dict(state_dict["admm"])
