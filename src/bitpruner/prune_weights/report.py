"""Per-layer sparsity report: a DataFrame, a `rich` table and a PNG bar chart.

Structure columns (percent of units whose weights are all exactly zero):
- `zero_rows_pct`: output units — conv filters w[k, :, :, :], linear rows w[o, :];
- `zero_cols_pct`: input units — conv input channels w[:, c, :, :], linear columns w[:, i];
- `zero_kernels_pct`: conv only, (filter, channel) kernels w[k, c, :, :]; NaN for linear layers.
`mean_abs`/`std_abs` are over all weights of the layer (zeros included), `mean_abs_nonzero` over survivors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from bitpruner.models.layers import prunable_layers
from bitpruner.prune_weights.masks import effective_weight

COLUMNS = [
    "layer", "kind", "shape", "weights", "nonzeros", "sparsity",
    "zero_rows_pct", "zero_cols_pct", "zero_kernels_pct",
    "mean_abs", "std_abs", "mean_abs_nonzero",
]
TOTAL_NAME = "total"
# Short headers for the printed table (the CSV keeps the full names above).
HEADERS = {
    "layer": "layer", "shape": "shape", "weights": "weights", "nonzeros": "non-zeros", "sparsity": "sparsity",
    "zero_rows_pct": "0-rows", "zero_cols_pct": "0-cols", "zero_kernels_pct": "0-kernels",
    "mean_abs": "mean|w|", "std_abs": "std|w|", "mean_abs_nonzero": "mean|w|>0",
}
# Logs and DVC runs are not terminals (rich would wrap at 80 columns and truncate every cell).
PIPE_WIDTH = 140


def _structure_counts(w: torch.Tensor) -> dict[str, float]:
    """Counts of all-zero rows/cols/kernels and their totals for a [out, in, ...] weight."""
    nz = w != 0
    out_units, in_units = w.shape[0], w.shape[1]
    kernel_nz = nz.flatten(2).any(dim=2) if w.dim() > 2 else nz  # [out, in]
    counts = {
        "rows": int((~kernel_nz.any(dim=1)).sum()), "rows_total": out_units,
        "cols": int((~kernel_nz.any(dim=0)).sum()), "cols_total": in_units,
        "kernels": int((~kernel_nz).sum()) if w.dim() > 2 else 0,
        "kernels_total": out_units * in_units if w.dim() > 2 else 0,
    }
    return counts


def _pct(count: int, total: int) -> float:
    return 100.0 * count / total if total else float("nan")


def layer_sparsity_table(model: nn.Module) -> pd.DataFrame:
    """One row per prunable layer (mask applied if the model is still masked) plus a `total` row."""
    rows, counts, all_abs = [], [], []
    for name, module in prunable_layers(model).items():
        w = effective_weight(module).float().cpu()
        c = _structure_counts(w)
        a = w.abs().flatten()
        nonzeros = int(w.count_nonzero())
        rows.append({
            "layer": name, "kind": type(module).__name__, "shape": "x".join(map(str, w.shape)),
            "weights": w.numel(), "nonzeros": nonzeros, "sparsity": 1.0 - nonzeros / w.numel(),
            "zero_rows_pct": _pct(c["rows"], c["rows_total"]),
            "zero_cols_pct": _pct(c["cols"], c["cols_total"]),
            "zero_kernels_pct": _pct(c["kernels"], c["kernels_total"]),
            "mean_abs": float(a.mean()), "std_abs": float(a.std(unbiased=False)),
            "mean_abs_nonzero": float(a[a > 0].mean()) if nonzeros else 0.0,
        })
        counts.append(c)
        all_abs.append(a)
    if rows:
        a = torch.cat(all_abs)
        weights = sum(r["weights"] for r in rows)
        nonzeros = sum(r["nonzeros"] for r in rows)
        total = {k: sum(c[k] for c in counts) for k in counts[0]}
        rows.append({
            "layer": TOTAL_NAME, "kind": "", "shape": "", "weights": weights, "nonzeros": nonzeros,
            "sparsity": 1.0 - nonzeros / weights,
            "zero_rows_pct": _pct(total["rows"], total["rows_total"]),
            "zero_cols_pct": _pct(total["cols"], total["cols_total"]),
            "zero_kernels_pct": _pct(total["kernels"], total["kernels_total"]),
            "mean_abs": float(a.mean()), "std_abs": float(a.std(unbiased=False)),
            "mean_abs_nonzero": float(a[a > 0].mean()) if nonzeros else 0.0,
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def print_layer_sparsity(table: pd.DataFrame, console=None, title: str = "Weight sparsity per layer") -> None:
    """Render the table with `rich` (percentages with one decimal, |w| with four significant digits)."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=PIPE_WIDTH)
    view = Table(title=title, caption="0-rows: filters / rows; 0-cols: input channels / columns; "
                 "0-kernels: (filter, channel) kernels — all-zero, in %")
    for col in HEADERS:
        view.add_column(HEADERS[col], justify="left" if col in ("layer", "shape") else "right", no_wrap=True)
    last_layer_row = len(table) - 2  # a rule above the total row
    for i, (_, row) in enumerate(table.iterrows()):
        cells = []
        for col in HEADERS:
            value = row[col]
            if col == "sparsity":
                cells.append(f"{100 * value:.2f}%")
            elif col.endswith("_pct"):
                cells.append("-" if pd.isna(value) else f"{value:.1f}%")
            elif isinstance(value, (float, np.floating)):
                cells.append(f"{value:.4g}")
            else:
                cells.append(str(value))
        view.add_row(*cells, end_section=i == last_layer_row)
    console.print(view)


def plot_layer_sparsity(table: pd.DataFrame, path: str | Path, title: str = "Weight sparsity per layer") -> Path:
    """A PNG bar chart of per-layer sparsity (the total as a dashed line); returns the path."""
    # A bare Figure renders with Agg and leaves pyplot's global backend state alone.
    from matplotlib.figure import Figure

    layers = table[table["layer"] != TOTAL_NAME]
    total = table[table["layer"] == TOTAL_NAME]
    fig = Figure(figsize=(max(4.0, 0.6 * len(layers) + 2), 3.5))
    ax = fig.subplots()
    ax.bar(layers["layer"], 100 * layers["sparsity"], color="tab:blue")
    if len(total):
        ax.axhline(100 * float(total["sparsity"].iloc[0]), color="tab:red", linestyle="--",
                   label=f"overall {100 * float(total['sparsity'].iloc[0]):.1f}%")
        ax.legend(loc="lower right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("sparsity (%)")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
