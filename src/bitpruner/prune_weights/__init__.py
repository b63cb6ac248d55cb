"""Unstructured magnitude pruning of conv/linear weights: masks, AGP schedule, callback, reports.

Names are imported lazily so that `bitpruner.prune_weights.cli` (loaded by `bitpruner --help`) stays
free of torch/lightning imports.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "MagnitudePruningCallback": "callback",
    "LayerPlan": "config", "PruningConfig": "config", "plan_layers": "config",
    "attach_masks": "masks", "attach_masks_for_state_dict": "masks", "effective_weight": "masks",
    "is_masked": "masks", "squash": "masks", "squashed_state_dict": "masks",
    "MagnitudePruner": "pruner", "overall_sparsity": "pruner", "sparsity_by_layer": "pruner",
    "layer_sparsity_table": "report", "plot_layer_sparsity": "report", "print_layer_sparsity": "report",
    "agp_sparsity": "schedule", "pruning_epochs": "schedule", "target_sparsity": "schedule",
    "layer_sensitivity": "sensitivity", "magnitude_prune_weight": "sensitivity", "plot_sensitivity": "sensitivity",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bitpruner.prune_weights' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bitpruner.prune_weights.{_EXPORTS[name]}"), name)
