"""The headline comparison: model variants x accelerators, cycles and speedups, as CSV, Markdown and metrics.

Cycles are per image: a network's compute cycles (sum over layers) over the traced test images, divided by their
number (`samples` in cycles.csv), i.e. the mean per image. Designs that skip zero activation bits depend on the
image; Stripes and the weight-serial designs do not.
Speedups compare variants ON THE SAME ACCELERATOR: ``speedup = cycles(reference variant) / cycles(variant)``.
The geometric-mean row (accelerator ``geomean``) holds the geometric means over accelerators of the
cycles and of the speedups; the ratio of geometric means is the geometric mean of the ratios, so
``speedup = cycles_ref / cycles`` holds on that row too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

GEOMEAN = "geomean"
CYCLES_COLUMNS = ("variant", "accelerator", "arch", "layer", "type", "compute_cycles", "samples", "cycles_per_image")
VARIANT_COLUMNS = ("variant", "test_acc", "acc_source", "traced_test_acc", "weight_sparsity", "bit_sparsity",
                   "mean_bits_per_weight", "mean_bits_per_nonzero", "weights_from")
MODEL_COLUMNS = ("test_acc", "traced_test_acc", "weight_sparsity", "bit_sparsity", "mean_bits_per_weight")
COMPARISON_COLUMNS = ("variant", "accelerator", *MODEL_COLUMNS, "cycles", "speedup_vs_nonpruned",
                      "speedup_vs_weightpruned")


def ordered_unique(values) -> list:
    return list(dict.fromkeys(values))


def geomean(values: Sequence[float]) -> float:
    """Geometric mean of positive numbers; NaN when any is missing."""
    vals = [float(v) for v in values]
    if not vals or any(math.isnan(v) or v <= 0 for v in vals):
        return math.nan
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def per_image(cycles: pd.DataFrame) -> pd.Series:
    """Each row's compute cycles per image: ``compute_cycles / samples`` (a cycles.csv without `samples`: 1)."""
    samples = cycles["samples"] if "samples" in cycles.columns else 1
    return cycles["compute_cycles"].astype(float) / samples


def total_cycles(cycles: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Network cycles per image (sum over layers of compute_cycles / samples) per (variant, accelerator)."""
    sums = per_image(cycles).groupby([cycles["variant"], cycles["accelerator"]], sort=False).sum()
    return {key: float(value) for key, value in sums.items()}


def traced_images(cycles: pd.DataFrame) -> int | None:
    """The number of traced images behind the per-image figures (None when cycles.csv does not say)."""
    if "samples" not in cycles.columns or cycles.empty:
        return None
    values = set(int(v) for v in cycles["samples"])
    return values.pop() if len(values) == 1 else None


def second_reference(names: list[str], baseline: str, weight_pruned: str | None) -> str | None:
    """The variant of the `speedup_vs_weightpruned` columns: `weight_pruned` when it is present among `names` and
    is not the baseline itself (its columns would repeat the baseline's), else None (those columns are left out)."""
    return weight_pruned if weight_pruned in names and weight_pruned != baseline else None


def comparison_table(cycles: pd.DataFrame, variants: pd.DataFrame, baseline: str,
                     weight_pruned: str | None = None) -> pd.DataFrame:
    """One row per (variant, accelerator) plus a geomean row per variant (COMPARISON_COLUMNS)."""
    totals = total_cycles(cycles)
    accels = ordered_unique(cycles["accelerator"])
    info = variants.set_index("variant")
    rows = []
    for variant in variants["variant"]:
        model = {k: info.at[variant, k] if k in info.columns else math.nan for k in MODEL_COLUMNS}
        own = []
        for accel in accels:
            cyc = totals[(variant, accel)]
            ref_np = totals.get((baseline, accel))
            ref_wp = totals.get((weight_pruned, accel)) if weight_pruned else None
            row = {"variant": variant, "accelerator": accel, **model, "cycles": float(cyc),
                   "speedup_vs_nonpruned": ref_np / cyc if ref_np else math.nan,
                   "speedup_vs_weightpruned": ref_wp / cyc if ref_wp else math.nan}
            own.append(row)
        rows.extend(own)
        rows.append({"variant": variant, "accelerator": GEOMEAN, **model,
                     **{k: geomean([r[k] for r in own])
                        for k in ("cycles", "speedup_vs_nonpruned", "speedup_vs_weightpruned")}})
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def headline_metrics(table: pd.DataFrame, headline: str | None, baseline: str | None = None,
                     weight_pruned: str | None = None) -> dict[str, float]:
    """Flat metrics: ``<variant>/<figure>[/<accelerator>]`` for every row (a variant's speedup over itself
    left out), and for the `headline` variant also ``speedup_vs_nonpruned/<accelerator>`` and
    ``speedup_vs_weightpruned/<accelerator>`` (geomean included)."""
    itself = {"speedup_vs_nonpruned": baseline, "speedup_vs_weightpruned": weight_pruned}
    out: dict[str, float] = {}
    for variant, rows in table.groupby("variant", sort=False):
        first = rows.iloc[0]
        for key in MODEL_COLUMNS:
            if not pd.isna(first[key]):
                out[f"{variant}/{key}"] = float(first[key])
        for _, row in rows.iterrows():
            for key in ("cycles", "speedup_vs_nonpruned", "speedup_vs_weightpruned"):
                if not pd.isna(row[key]) and itself.get(key) != variant:
                    out[f"{variant}/{key}/{row['accelerator']}"] = float(row[key])
                    if variant == headline and key != "cycles":
                        out[f"{key}/{row['accelerator']}"] = float(row[key])
    return out


# -- Markdown ------------------------------------------------------------------------------------

def _fmt(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "pct":
        return f"{100 * float(value):.1f}%"
    if kind == "acc":
        return f"{float(value):.2f}"
    if kind == "bits":
        return f"{float(value):.3f}"
    if kind == "cycles":
        return f"{float(value):,.0f}"
    if kind == "x":
        return f"{float(value):.2f}x"
    return str(value)


def accelerator_rows(table: pd.DataFrame, names: list[str], baseline: str, weight_pruned: str | None,
                     cell) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the accelerators x variants table (one row per accelerator of `table`, in its order, the
    geometric mean in bold): per variant its cycles per image, its speedup vs `baseline` and, when `weight_pruned` is
    one of `names` (and not the baseline), vs `weight_pruned`. `cell(row, kind)` formats one figure of a variant's
    row of `table` (kind: `cycles`, `vs_baseline`, `vs_weight_pruned`)."""
    has_wp = bool(weight_pruned) and weight_pruned in names and weight_pruned != baseline
    kinds = {v: ["cycles"] + (["vs_baseline"] if v != baseline else [])
             + (["vs_weight_pruned"] if has_wp and v not in (baseline, weight_pruned) else []) for v in names}
    title = {"cycles": "{v} cycles / image", "vs_baseline": "{v} vs " + baseline,
             "vs_weight_pruned": "{v} vs " + str(weight_pruned)}
    header = ["accelerator"] + [title[k].format(v=v) for v in names for k in kinds[v]]
    rows = []
    for accel in ordered_unique(table["accelerator"]):
        sub = table[table["accelerator"] == accel].set_index("variant")
        rows.append(["**geometric mean**" if accel == GEOMEAN else accel]
                    + [cell(sub.loc[v], k) for v in names for k in kinds[v]])
    return header, rows


def _md_table(header: list[str], rows: list[list[str]], align: list[str]) -> str:
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def comparison_markdown(table: pd.DataFrame, variants: pd.DataFrame, baseline: str,
                        weight_pruned: str | None = None, title: str = "Comparison", notes: str = "",
                        samples: int | None = None) -> str:
    """Two tables: the variants (accuracy and bit statistics), then cycles per image (the mean over the `samples`
    traced test images) and speedups per accelerator."""
    traced = "traced_test_acc" in variants and variants["traced_test_acc"].notna().any()
    model_rows = []
    for _, v in variants.iterrows():
        row = [v["variant"], _fmt(v["test_acc"], "acc")]
        row += [_fmt(v["traced_test_acc"], "acc")] if traced else []
        row += [_fmt(v["weight_sparsity"], "pct"), _fmt(v["bit_sparsity"], "pct"),
                _fmt(v["mean_bits_per_weight"], "bits"), str(v["acc_source"])]
        model_rows.append(row)
    header = ["variant", "test acc (8-bit, %)"] + (["traced model acc (W8A8, %)"] if traced else [])
    header += ["weight sparsity", "bit sparsity", "essential bits / weight", "accuracy from"]
    parts = [f"# {title}", "", _md_table(header, model_rows, ["l"] + ["r"] * (len(header) - 2) + ["l"]), ""]
    columns = {"cycles": "cycles", "vs_baseline": "speedup_vs_nonpruned", "vs_weight_pruned": "speedup_vs_weightpruned"}
    header, rows = accelerator_rows(table, list(variants["variant"]), baseline, weight_pruned,
                                    lambda r, kind: _fmt(r[columns[kind]], "cycles" if kind == "cycles" else "x"))
    align = ["l"] + ["r"] * (len(header) - 1)
    images = f"{samples} test image" + ("" if samples == 1 else "s") if samples else "the traced test images"
    parts += [f"Compute cycles per image (mean over {images}, sum over layers) and speedups on the same "
              "accelerator (speedup = cycles of the reference variant / cycles of the variant).", "",
              _md_table(header, rows, align), ""]
    if notes:
        parts += [notes, ""]
    return "\n".join(parts)
