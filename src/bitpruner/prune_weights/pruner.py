"""Apply a `PruningConfig` to a model at a given epoch: the schedule's targets, the scope, the masks."""

from __future__ import annotations

from torch import nn

from bitpruner.models.layers import prunable_layers
from bitpruner.prune_weights.config import LayerPlan, PruningConfig, plan_layers
from bitpruner.prune_weights.masks import (
    attach_masks,
    effective_weight,
    prune_layers_globally,
    prune_layers_separately,
)
from bitpruner.prune_weights.schedule import pruning_epochs, target_sparsity


class MagnitudePruner:
    """Owns the layer plan; `step(epoch)` sets every pruned layer's mask to the schedule's target."""

    def __init__(self, model: nn.Module, cfg: PruningConfig) -> None:
        self.model = model
        self.cfg = cfg
        self.plan: LayerPlan = plan_layers(model, cfg)

    def attach(self) -> None:
        """All-ones masks on the pruned layers (idempotent); needed before loading a masked state dict."""
        attach_masks(self.model, self.plan.pruned)

    def is_pruning_epoch(self, epoch: int) -> bool:
        return epoch in pruning_epochs(self.cfg)

    def targets(self, epoch: int) -> dict[str, float]:
        """Target sparsity per pruned layer at `epoch`; pooled layers under global scope share one value."""
        out = {name: target_sparsity(self.cfg, epoch) for name in self.plan.pooled}
        out.update({name: target_sparsity(self.cfg, epoch, final) for name, final in self.plan.own_target.items()})
        return out

    def step(self, epoch: int) -> dict[str, float]:
        """Recompute the masks for `epoch` from the current weight magnitudes; returns the targets."""
        self.attach()
        targets = self.targets(epoch)
        pool_target = target_sparsity(self.cfg, epoch)
        if self.cfg.scope == "global":
            prune_layers_globally(self.model, self.plan.pooled, pool_target)
            prune_layers_separately(self.model, {n: targets[n] for n in self.plan.own_target})
        else:
            prune_layers_separately(self.model, targets)
        return targets


def sparsity_by_layer(model: nn.Module) -> dict[str, float]:
    """Fraction of exactly-zero effective weights per prunable layer."""
    out = {}
    for name, module in prunable_layers(model).items():
        w = effective_weight(module)
        out[name] = 1.0 - int(w.count_nonzero()) / w.numel()
    return out


def overall_sparsity(model: nn.Module, names: list[str] | None = None) -> float:
    """Fraction of exactly-zero effective weights over the named prunable layers (default: all)."""
    layers = prunable_layers(model)
    names = list(layers) if names is None else names
    weights = [effective_weight(layers[n]) for n in names]
    total = sum(w.numel() for w in weights)
    nonzero = sum(int(w.count_nonzero()) for w in weights)
    return 1.0 - nonzero / total if total else 0.0
