"""PNG plots of the comparison: speedups per accelerator and cycles per image per layer (grouped bars per variant)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bitpruner.reports.comparison import ordered_unique, per_image, traced_images
from bitpruner.utils.atomic import save_figure

BAR_GROUP_WIDTH = 0.8  # share of each x slot taken by its group of bars


def _grouped_bars(ax, labels: list[str], series: dict[str, list[float]]) -> None:
    x = np.arange(len(labels))
    width = BAR_GROUP_WIDTH / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, labels, rotation=30, ha="right")


def plot_speedups(table: pd.DataFrame, path: str | Path, baseline: str, weight_pruned: str | None = None) -> Path:
    """Speedup over `baseline` (and over `weight_pruned` when present) per accelerator, one bar per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    accels = ordered_unique(table["accelerator"])
    variants = ordered_unique(table["variant"])
    panels = [("speedup_vs_nonpruned", baseline)]
    if weight_pruned and weight_pruned in variants:
        panels.append(("speedup_vs_weightpruned", weight_pruned))
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 * len(accels) * len(panels) + 3, 4), squeeze=False)
    for ax, (column, ref) in zip(axes[0], panels, strict=True):
        series = {}
        for v in variants:
            sub = table[table["variant"] == v].set_index("accelerator")
            series[v] = [float(sub.at[a, column]) for a in accels]
        series = {v: vals for v, vals in series.items() if not all(math.isnan(x) for x in vals)}
        _grouped_bars(ax, accels, series)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_ylabel(f"speedup over {ref} (x)")
        ax.set_title(f"vs {ref}, same accelerator")
        ax.legend(fontsize="small")
    return save_figure(path, fig)


def plot_layer_cycles(cycles: pd.DataFrame, path: str | Path) -> Path:
    """Compute cycles per image (mean over the traced images) per layer, one panel per accelerator, one bar per
    variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    accels = ordered_unique(cycles["accelerator"])
    variants = ordered_unique(cycles["variant"])
    layers = ordered_unique(cycles["layer"])
    cycles = cycles.assign(cycles_per_image=per_image(cycles))
    images = traced_images(cycles)
    ncols = min(3, len(accels))
    nrows = math.ceil(len(accels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.0, 0.9 * len(layers)) * ncols, 3.5 * nrows),
                             squeeze=False)
    for ax, accel in zip(axes.flat, accels, strict=False):
        sub = cycles[cycles["accelerator"] == accel]
        series = {}
        for v in variants:
            per_layer = sub[sub["variant"] == v].set_index("layer")["cycles_per_image"]
            series[v] = [float(per_layer.get(layer, 0)) for layer in layers]
        _grouped_bars(ax, layers, series)
        ax.set_title(accel)
        ax.set_ylabel("compute cycles / image" + (f" (mean of {images})" if images and images > 1 else ""))
        ax.legend(fontsize="x-small")
    for ax in list(axes.flat)[len(accels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return save_figure(path, fig)
