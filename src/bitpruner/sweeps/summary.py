"""The sweep summary: one row per job (overrides, status, key metrics), as CSV, Markdown and a trade-off plot."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bitpruner.skeleton.outputs import FINAL_PREFIX  # stages log end-of-stage figures as final/<key>
from bitpruner.utils.atomic import save_figure

SUMMARY_COLUMNS = ("job", "overrides", "status", "run_id", "test_acc", "bit_sparsity")
# The speedup that colors the plot, most telling first (simulate's geomean, then prune_bits' cycle proxies).
PRIMARY_SPEEDUPS = ("speedup_vs_nonpruned/geomean", "column_proxy_speedup_vs_baseline", "column_proxy_speedup_vs_input",
                    "predicted_speedup")
MARKER_AREA = (30.0, 300.0)  # smallest and largest marker area (pt^2), scaled by speedup


def _final(metrics: dict[str, float]) -> dict[str, float]:
    """`final/<key>` metrics without the prefix (a metrics.json's own keys pass through unchanged)."""
    if not any(k.startswith(FINAL_PREFIX) for k in metrics):
        return dict(metrics)
    return {k[len(FINAL_PREFIX):]: v for k, v in metrics.items() if k.startswith(FINAL_PREFIX)}


def key_metrics(metrics: dict[str, float], headline: str | None = None) -> dict[str, float]:
    """Test accuracy, bit sparsity and the network-level speedups of one job.

    A simulate run reports per-variant figures (`<variant>/test_acc`); its `headline` variant's are used.
    Speedups: stage-level ones (`column_proxy_speedup_vs_input`) and the geometric means over accelerators.
    """
    flat = _final(metrics)
    out: dict[str, float] = {}
    for key in ("test_acc", "bit_sparsity"):
        value = flat.get(key, flat.get(f"{headline}/{key}") if headline else None)
        if value is not None:
            out[key] = float(value)
    for key, value in sorted(flat.items()):
        top_level = "/" not in key or (key.count("/") == 1 and key.endswith("/geomean") and
                                       key.startswith("speedup_"))
        if "speedup" in key and top_level:
            out[key] = float(value)
    return out


def summary_table(rows: list[dict]) -> pd.DataFrame:
    """Rows of job records merged with their key metrics; the speedup columns follow the fixed ones."""
    table = pd.DataFrame(rows)
    for column in SUMMARY_COLUMNS:
        if column not in table.columns:
            table[column] = math.nan
    extra = [c for c in table.columns if c not in SUMMARY_COLUMNS and c != "error"]
    ordered = [*SUMMARY_COLUMNS, *sorted(extra)] + (["error"] if "error" in table.columns else [])
    return table[ordered]


def primary_speedup(table: pd.DataFrame) -> str | None:
    speedups = [c for c in table.columns if "speedup" in c and table[c].notna().any()]
    for name in PRIMARY_SPEEDUPS:
        if name in speedups:
            return name
    return speedups[0] if speedups else None


def pareto_mask(x: list[float], y: list[float]) -> list[bool]:
    """True for the points no other point beats on both (higher is better on both axes)."""
    points = list(zip(x, y, strict=True))
    return [not any(ox >= px and oy >= py and (ox > px or oy > py) for ox, oy in points) for px, py in points]


def _cell(value, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if column == "bit_sparsity":
        return f"{100 * float(value):.2f}%"
    if column == "test_acc":
        return f"{float(value):.2f}"
    if "speedup" in column:
        return f"{float(value):.2f}x"
    if column == "overrides":
        return f"`{value}`" if value else "(none)"
    return str(value).replace("|", "\\|")


def summary_markdown(table: pd.DataFrame, title: str, common: list[str] | None = None) -> str:
    """The table as Markdown; `common` = the overrides every job shares (shown once, above it)."""
    columns = [c for c in table.columns if c != "run_id"]
    finished = int((table["status"] == "FINISHED").sum())
    shared = f" Every job: `{' '.join(common)}`." if common else ""
    lines = [f"# {title}", "", f"{finished} of {len(table)} jobs finished.{shared}", "",
             "| " + " | ".join(columns) + " |",
             "|" + "|".join("---:" if c in ("job", "test_acc", "bit_sparsity") or "speedup" in c else "---"
                            for c in columns) + "|"]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row[c], c) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def plot_tradeoff(table: pd.DataFrame, path: str | Path, title: str) -> Path | None:
    """Test accuracy vs bit sparsity of the finished jobs; color and size = the primary speedup; Pareto line.

    None when no job has both figures (e.g. a sweep of the train stage).
    """
    done = table[table["test_acc"].notna() & table["bit_sparsity"].notna()]
    if done.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = (100 * done["bit_sparsity"].astype(float)).tolist()
    y = done["test_acc"].astype(float).tolist()
    speedup = primary_speedup(done)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if speedup:
        values = done[speedup].astype(float)
        low, high = values.min(), values.max()
        share = (values - low) / (high - low) if high > low else values * 0 + 0.5
        sizes = MARKER_AREA[0] + share * (MARKER_AREA[1] - MARKER_AREA[0])
        points = ax.scatter(x, y, c=values, s=sizes, cmap="viridis", edgecolors="black", linewidths=0.5, zorder=3)
        fig.colorbar(points, ax=ax, label=f"{speedup} (x)")
    else:
        ax.scatter(x, y, s=MARKER_AREA[0] * 2, edgecolors="black", linewidths=0.5, zorder=3)
    front = sorted((px, py) for px, py, keep in zip(x, y, pareto_mask(x, y), strict=True) if keep)
    ax.plot([p[0] for p in front], [p[1] for p in front], "r--", linewidth=1.2, label="Pareto frontier", zorder=2)
    for px, py, job in zip(x, y, done["job"], strict=True):
        ax.annotate(f"#{job}", (px, py), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("bit sparsity (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    return save_figure(path, fig)
