"""Layer sensitivity: accuracy with only one layer perturbed (no retraining), for a list of levels.

Generic over the evaluation (`evaluate(model) -> float`) and the perturbation
(`perturb(module, level)`, in place), so the bit-pruning plan can pass a bit projection instead of
the default magnitude prune. Each probe restores the layer's exact state afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from bitpruner.errors import ConfigError
from bitpruner.models.layers import prunable_layers
from bitpruner.prune_weights.masks import is_masked, n_to_prune

Perturb = Callable[[nn.Module, float], None]


@torch.no_grad()
def magnitude_prune_weight(module: nn.Module, sparsity: float) -> None:
    """Zero exactly round(s * n) smallest-|w| weights of a plain (unmasked) layer; ties by index."""
    flat = module.weight.detach().abs().flatten()
    order = torch.sort(flat, stable=True).indices
    module.weight.view(-1)[order[: n_to_prune(sparsity, flat.numel())]] = 0.0


def layer_sensitivity(
    model: nn.Module,
    evaluate: Callable[[nn.Module], float],
    levels: Iterable[float],
    layers: Iterable[str] | None = None,
    perturb: Perturb = magnitude_prune_weight,
    level_name: str = "sparsity",
) -> pd.DataFrame:
    """Rows (layer, <level_name>, val_acc, drop) with drop = baseline - val_acc, baseline = unperturbed.

    The model must be plain (squash masked models first); its state is restored after each probe.
    """
    available = prunable_layers(model)
    names = list(available) if layers is None else list(layers)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(f"sensitivity: no prunable layer named {', '.join(unknown)}; layers: {', '.join(available)}")
    if any(is_masked(m) for m in available.values()):
        raise ConfigError("sensitivity: the model still has pruning masks; squash it first")
    levels = [float(v) for v in levels]

    was_training = model.training
    model.eval()
    baseline = float(evaluate(model))
    rows = []
    for name in names:
        module = available[name]
        saved = {k: v.detach().clone() for k, v in module.state_dict().items()}
        for level in levels:
            perturb(module, level)
            acc = float(evaluate(model))
            module.load_state_dict(saved)
            rows.append({"layer": name, level_name: level, "val_acc": acc, "drop": baseline - acc})
    model.train(was_training)
    table = pd.DataFrame(rows, columns=["layer", level_name, "val_acc", "drop"])
    table.attrs["baseline"] = baseline
    return table


def plot_sensitivity(table: pd.DataFrame, path: str | Path, title: str = "Layer sensitivity") -> Path:
    """One line per layer: accuracy against the perturbation level; the baseline as a dashed line."""
    from matplotlib.figure import Figure

    level_name = table.columns[1]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, group in table.groupby("layer", sort=False):
        ax.plot(group[level_name], group["val_acc"], marker="o", label=name)
    if "baseline" in table.attrs:
        ax.axhline(table.attrs["baseline"], color="grey", linestyle="--", label="baseline")
    ax.set_xlabel(level_name)
    ax.set_ylabel("val accuracy")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
