"""Bit-pruning figures: model bit statistics as flat metrics, and the two PNGs (per-layer sparsity, histogram)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bitpruner.prune_bits.bits import model_bit_stats
from bitpruner.utils.atomic import save_figure

# Totals of model_bit_stats that become metrics (prefixed), in this order.
TOTAL_KEYS = ("bit_sparsity", "weight_sparsity", "mean_bits_per_weight", "mean_bits_per_nonzero",
              "max_bits", "lockstep_imbalance", "lane_proxy_cycles", "column_proxy_cycles")


def bit_metrics(weights: Mapping[str, Any], bits: int, lanes: int, encoding: str = "binary",
                k: Mapping[str, int] | None = None, prefix: str = "") -> tuple[dict, list[dict], dict]:
    """(flat metrics, per-layer rows, totals) of integer weights; binary counting always, `encoding` too."""
    rows, totals = model_bit_stats(weights, bits=bits, encoding="binary", lanes=lanes, k=k)
    out = {f"{prefix}{key}": totals[key] for key in TOTAL_KEYS}
    out[f"{prefix}bit_sparsity_layer"] = {r["name"]: r["bit_sparsity"] for r in rows}
    if encoding != "binary":
        _, enc_totals = model_bit_stats(weights, bits=bits, encoding=encoding, lanes=lanes, k=k)
        for key in ("bit_sparsity", "mean_bits_per_weight", "lane_proxy_cycles", "column_proxy_cycles"):
            out[f"{prefix}{key}_{encoding}"] = enc_totals[key]
    return out, rows, totals


def plot_layer_bit_sparsity(before: list[dict], after: list[dict], path: str | Path, title: str = "") -> Path:
    """Grouped bars: bit sparsity (%) of every layer before and after bit pruning."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in after]
    x = np.arange(len(names))
    width = 0.4
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(names) + 2), 3.5))
    ax.bar(x - width / 2, [100 * r["bit_sparsity"] for r in before], width, label="input (8-bit)")
    ax.bar(x + width / 2, [100 * r["bit_sparsity"] for r in after], width, label="bit-pruned")
    for xi, r in zip(x, after, strict=True):
        ax.annotate(f"k={r['k']}", (xi + width / 2, 100 * r["bit_sparsity"]), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("bit sparsity (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title or "bit sparsity per layer (binary, zeros counted)")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(path, fig)


def plot_bit_histogram(before: list[int], after: list[int], path: str | Path, title: str = "") -> Path:
    """Share of the non-zero weights with 1, ..., b-1 essential bits, before and after (zeros in the legend:
    on a weight-pruned model they would flatten every other bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(before), len(after))
    b = np.zeros(n)
    a = np.zeros(n)
    b[: len(before)] = before
    a[: len(after)] = after
    x = np.arange(1, n)
    width = 0.4
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for offset, counts, label in ((-width / 2, b, "input (8-bit)"), (width / 2, a, "bit-pruned")):
        zeros = 100 * counts[0] / max(counts.sum(), 1)
        ax.bar(x + offset, 100 * counts[1:] / max(counts[1:].sum(), 1), width, label=f"{label}, {zeros:.1f}% zeros")
    ax.set_xticks(x)
    ax.set_xlabel("essential bits per non-zero weight (binary)")
    ax.set_ylabel("non-zero weights (%)")
    ax.set_title(title or "essential-bit histogram")
    ax.legend(fontsize=8)
    return save_figure(path, fig)
