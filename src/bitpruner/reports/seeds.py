"""The comparison over seeds: read each seed's `simulate` output, aggregate it (mean and sample sd), write it.

Input: one `simulate` output folder per seed (``{seed: folder}``), each with `comparison.csv` (one row per
(variant, accelerator) plus a `geomean` row per variant; see `bitpruner.reports.comparison`) and `details.json`
(`samples`: the number of traced test images, the same for every seed).

Statistics, per (variant, accelerator):
- ``<value>`` is the mean over seeds and ``<value>_sd`` the sample standard deviation (ddof=1); the sd of a single
  seed is reported as 0 (there is no spread to estimate, and an empty cell would read as "missing");
- speedups are averaged per seed: the mean of the per-seed ratios ``cycles(reference) / cycles(variant)``, not the
  ratio of the mean cycles;
- the `geomean` row of a variant is, per seed, the geometric mean over the accelerators (of the cycles and of each
  speedup), then the mean and sd of those over seeds;
- ``acc_diff_vs_nonpruned`` is the paired accuracy difference ``test_acc(variant) - test_acc(baseline)`` of each
  seed (points), then its mean and sd over seeds (pairing removes the seed-to-seed spread both share).

The long table (`comparison.csv` of the `compare` stage) holds the per-seed rows (``seed`` = the seed number) and
the aggregate rows (``seed`` = ``mean``; ``seeds``, ``images`` and the ``_sd`` columns filled only there).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bitpruner.errors import DataError
from bitpruner.reports.comparison import GEOMEAN, _fmt, _md_table, accelerator_rows, geomean, ordered_unique

MEAN = "mean"
COMPARISON_FILE = "comparison.csv"
DETAILS_FILE = "details.json"
# Per-seed comparison.csv columns this module reads (`cycles` there is already per image).
INPUT_COLUMNS = ("variant", "accelerator", "test_acc", "traced_test_acc", "weight_sparsity", "bit_sparsity",
                 "mean_bits_per_weight", "cycles", "speedup_vs_nonpruned", "speedup_vs_weightpruned")
MODEL_VALUES = ("test_acc", "traced_test_acc", "weight_sparsity", "bit_sparsity", "mean_bits_per_weight")
CYCLE_VALUES = ("cycles_per_image", "speedup_vs_nonpruned", "speedup_vs_weightpruned")
ACC_DIFF = "acc_diff_vs_nonpruned"
VALUES = (*MODEL_VALUES, *CYCLE_VALUES, ACC_DIFF)
KEYS = ("seed", "variant", "accelerator")
LONG_COLUMNS = (*KEYS, *VALUES, "seeds", "images", *(f"{v}_sd" for v in VALUES))


@dataclass
class SeedRuns:
    """The per-seed rows of every seed (`per_seed`: KEYS + VALUES, geomean rows included), the traced images per
    seed, and labels read from the first seed's folder (None when it does not say)."""

    per_seed: pd.DataFrame
    images: int
    network: str | None = None
    dataset: str | None = None

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in ordered_unique(self.per_seed["seed"])]


# -- reading -------------------------------------------------------------------------------------

def _read_samples(folder: Path, seed: int) -> int:
    path = folder / DETAILS_FILE
    if not path.is_file():
        raise DataError(f"seed {seed}: {path} does not exist (run the simulate stage of seed {seed})")
    try:
        samples = json.loads(path.read_text()).get("samples")
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        raise DataError(f"seed {seed}: {path} is not a JSON object") from None
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise DataError(f"seed {seed}: {path}: samples={samples!r}, expected the number of traced images (>= 1)")
    return samples


def read_csv_table(path: Path, label: str, producer: str) -> pd.DataFrame:
    """The CSV table at `path`; DataError `<label>: <path> does not exist (run <producer>)` or `... is not a CSV
    table (...)` in one line."""
    if not path.is_file():
        raise DataError(f"{label}: {path} does not exist (run {producer})")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{label}: {path} is not a CSV table ({str(exc).splitlines()[0]})") from None


def _read_comparison(folder: Path, seed: int) -> pd.DataFrame:
    path = folder / COMPARISON_FILE
    table = read_csv_table(path, f"seed {seed}", f"the simulate stage of seed {seed}")
    missing = [c for c in INPUT_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"seed {seed}: {path} lacks column(s) {', '.join(missing)}")
    if table.duplicated(["variant", "accelerator"]).any():
        raise DataError(f"seed {seed}: {path} repeats a (variant, accelerator) row")
    for column in INPUT_COLUMNS[2:]:
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise DataError(f"seed {seed}: {path}: column {column} holds non-numbers")
    return table


def _labels(folder: Path) -> tuple[str | None, str | None]:
    """(network, dataset) of a simulate folder: variants.csv's model column when it has one, else the title of
    comparison.md ("# <model> on <dataset>: ...")."""
    network = dataset = None
    variants = folder / "variants.csv"
    if variants.is_file():
        frame = pd.read_csv(variants)
        for column in ("model", "model_name", "network"):
            if column in frame.columns and frame[column].notna().any():
                network = str(frame[column].dropna().iloc[0])
                break
    markdown = folder / "comparison.md"
    if markdown.is_file():
        title = markdown.read_text().splitlines()[0].removeprefix("# ") if markdown.stat().st_size else ""
        head = title.split(":", 1)[0]
        if " on " in head:
            model, data = head.split(" on ", 1)
            network = network or model.strip() or None
            dataset = data.strip() or None
    return network, dataset


def read_seed_runs(folders: Mapping[int, str | Path], baseline: str = "non-pruned") -> SeedRuns:
    """Read `comparison.csv` and `details.json` of each seed's simulate folder ({seed: folder}).

    Returns the per-seed rows (KEYS + VALUES; `cycles` renamed `cycles_per_image`; geomean rows recomputed from the
    accelerator rows; `acc_diff_vs_nonpruned` = the seed's test_acc minus its `baseline` variant's, points).
    Raises DataError (one line naming the file) when a folder or file is missing or malformed, or when a seed's
    variants, accelerators (same names, same order) or number of traced images differ from the first seed's.
    """
    if not folders:
        raise DataError("no seeds to aggregate (an empty list of simulate folders)")
    frames, first = [], None
    images = None
    for seed, folder in folders.items():
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"seed {seed}: simulate folder {folder} does not exist (run the simulate stage of seed "
                            f"{seed})")
        table = _read_comparison(folder, seed)
        samples = _read_samples(folder, seed)
        rows = table[table["accelerator"] != GEOMEAN]
        variants, accels = ordered_unique(rows["variant"]), ordered_unique(rows["accelerator"])
        path = folder / COMPARISON_FILE
        if first is None:
            first = (seed, path, variants, accels, samples)
            if baseline not in variants:
                raise DataError(f"seed {seed}: {path} has no {baseline!r} variant (the accuracy reference); "
                                f"variants: {', '.join(variants)}")
            images = samples
        else:
            ref_seed, ref_path, ref_variants, ref_accels, ref_samples = first
            for what, mine, ref in (("variants", variants, ref_variants), ("accelerators", accels, ref_accels)):
                if mine != ref:
                    raise DataError(f"seed {seed}: {path} has {what} {mine}, seed {ref_seed} ({ref_path}) has {ref}")
            if samples != ref_samples:
                raise DataError(f"seed {seed}: {folder / DETAILS_FILE} has samples={samples} traced images, seed "
                                f"{ref_seed} has {ref_samples}")
        if len(rows) != len(variants) * len(accels):
            raise DataError(f"seed {seed}: {path} lacks some (variant, accelerator) rows "
                            f"({len(rows)} of {len(variants)} x {len(accels)})")
        frames.append(_seed_rows(int(seed), rows, variants, baseline))
    network, dataset = _labels(Path(next(iter(folders.values()))))
    per_seed = pd.concat(frames, ignore_index=True)
    return SeedRuns(per_seed=per_seed, images=int(images), network=network, dataset=dataset)


def _seed_rows(seed: int, rows: pd.DataFrame, variants: list[str], baseline: str) -> pd.DataFrame:
    """One seed's accelerator rows plus its recomputed geomean row per variant, in VALUES."""
    rows = rows.rename(columns={"cycles": "cycles_per_image"})
    reference = float(rows[rows["variant"] == baseline]["test_acc"].iloc[0])
    out = []
    for variant in variants:
        own = rows[rows["variant"] == variant]
        model = {k: float(own[k].iloc[0]) for k in MODEL_VALUES}
        common = {"seed": seed, "variant": variant, **model, ACC_DIFF: model["test_acc"] - reference}
        for _, r in own.iterrows():
            out.append({**common, "accelerator": r["accelerator"], **{k: float(r[k]) for k in CYCLE_VALUES}})
        out.append({**common, "accelerator": GEOMEAN, **{k: geomean(own[k].tolist()) for k in CYCLE_VALUES}})
    return pd.DataFrame(out, columns=[*KEYS, *VALUES])


# -- statistics ----------------------------------------------------------------------------------

def mean_sd(values) -> tuple[float, float]:
    """(mean, sample sd with ddof=1) of a 1-D sequence of floats; sd 0.0 for one value; (nan, nan) when any value
    is missing (a speedup over an absent reference) or there are none."""
    vals = np.asarray(list(values), dtype=float)
    if vals.size == 0 or np.isnan(vals).any():
        return math.nan, math.nan
    return float(vals.mean()), float(vals.std(ddof=1)) if vals.size > 1 else 0.0


def aggregate(per_seed: pd.DataFrame, images: int) -> pd.DataFrame:
    """The mean rows: per (variant, accelerator) in input order, `seeds` (count), `images` (traced images per
    seed), the mean of each of VALUES and its sample sd `<value>_sd` (ddof=1; 0 for one seed)."""
    rows = []
    for (variant, accel), part in per_seed.groupby(["variant", "accelerator"], sort=False):
        row = {"seed": MEAN, "variant": variant, "accelerator": accel, "seeds": int(part["seed"].nunique()),
               "images": int(images)}
        for value in VALUES:
            row[value], row[f"{value}_sd"] = mean_sd(part[value])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(LONG_COLUMNS))


def long_table(per_seed: pd.DataFrame, means: pd.DataFrame) -> pd.DataFrame:
    """comparison.csv: the per-seed rows (seeds/images/sd empty) then the mean rows, LONG_COLUMNS."""
    return pd.concat([per_seed.reindex(columns=list(LONG_COLUMNS)), means[list(LONG_COLUMNS)]], ignore_index=True)


def split_long(table: pd.DataFrame, where: str = COMPARISON_FILE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-seed rows with integer seeds, mean rows) of a long table as `long_table` writes it (read back from
    CSV); DataError naming `where` when columns are missing or there are no mean rows."""
    missing = [c for c in LONG_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{where} lacks column(s) {', '.join(missing)} (not a compare stage comparison.csv)")
    is_mean = table["seed"].astype(str) == MEAN
    if not is_mean.any():
        raise DataError(f"{where} has no rows with seed={MEAN} (not a compare stage comparison.csv)")
    per_seed = table[~is_mean].copy()
    per_seed["seed"] = per_seed["seed"].astype(float).astype(int)
    return per_seed.reset_index(drop=True), table[is_mean].reset_index(drop=True)


# -- Markdown ------------------------------------------------------------------------------------

def _pm(mean, sd, kind: str) -> str:
    """`mean ± sd` in the comparison table's formats ('–' when the mean is missing)."""
    text = _fmt(mean, kind)
    if text == "–" or sd is None or (isinstance(sd, float) and math.isnan(sd)):
        return text
    if kind == "x":
        return f"{text} ± {float(sd):.2f}"
    return f"{text} ± {_fmt(sd, kind)}"


def basis_line(seeds: list[int], images: int) -> str:
    """The sentence that says what the figures rest on."""
    listed = ", ".join(str(s) for s in seeds)
    return (f"Mean ± sample standard deviation (ddof=1) over {len(seeds)} seed{'s' if len(seeds) != 1 else ''} "
            f"({listed}); {images} traced test image{'s' if images != 1 else ''} per seed (cycles: the mean per "
            "image). Speedups are averaged per seed (mean of the per-seed ratios); the geometric-mean row is each "
            "seed's geometric mean over the accelerators, then averaged."
            + (" With one seed the sd is 0." if len(seeds) == 1 else ""))


def seeds_markdown(means: pd.DataFrame, seeds: list[int], images: int, baseline: str = "non-pruned",
                   weight_pruned: str | None = "weight-pruned", title: str = "Comparison over seeds",
                   heading: str = "#") -> str:
    """comparison.md over seeds (the layout of the single-seed `comparison_markdown`): a variants table (test
    accuracy, the paired difference vs `baseline`, sparsities, essential bits per weight; each mean ± sd), then
    accelerators x variants with cycles per image and speedups (mean ± sd), and a line naming the seeds and the
    traced images per seed. `heading`: the Markdown level of the title ("#", or "##" inside a larger document)."""
    variants = ordered_unique(means["variant"])
    first = means.groupby("variant", sort=False).first()
    traced = first["traced_test_acc"].notna().any()
    header = ["variant", "test acc (8-bit, %)"] + (["traced model acc (W8A8, %)"] if traced else [])
    header += [f"acc diff vs {baseline} (points, paired)", "weight sparsity", "bit sparsity",
               "essential bits / weight"]
    model_rows = []
    for v in variants:
        r = first.loc[v]
        row = [v, _pm(r["test_acc"], r["test_acc_sd"], "acc")]
        row += [_pm(r["traced_test_acc"], r["traced_test_acc_sd"], "acc")] if traced else []
        diff = "–" if v == baseline else _signed(r[ACC_DIFF], r[f"{ACC_DIFF}_sd"])
        row += [diff, _pm(r["weight_sparsity"], r["weight_sparsity_sd"], "pct"),
                _pm(r["bit_sparsity"], r["bit_sparsity_sd"], "pct"),
                _pm(r["mean_bits_per_weight"], r["mean_bits_per_weight_sd"], "bits")]
        model_rows.append(row)
    parts = [f"{heading} {title}", "", basis_line(seeds, images), "",
             _md_table(header, model_rows, ["l"] + ["r"] * (len(header) - 1)), ""]
    columns = {"cycles": "cycles_per_image", "vs_baseline": "speedup_vs_nonpruned",
               "vs_weight_pruned": "speedup_vs_weightpruned"}
    header, rows = accelerator_rows(means, list(variants), baseline, weight_pruned,
                                    lambda r, kind: _pm(r[columns[kind]], r[columns[kind] + "_sd"],
                                                        "cycles" if kind == "cycles" else "x"))
    parts += [f"Compute cycles per image (mean over {images} test image{'s' if images != 1 else ''}, sum over "
              "layers) and speedups on the same accelerator (speedup = cycles of the reference variant / cycles "
              "of the variant), mean ± sd over seeds.", "",
              _md_table(header, rows, ["l"] + ["r"] * (len(header) - 1)), ""]
    return "\n".join(parts)


def _signed(mean, sd) -> str:
    if mean is None or math.isnan(float(mean)):
        return "–"
    return f"{float(mean):+.2f} ± {float(sd):.2f}"


# -- plots ---------------------------------------------------------------------------------------

BAR_GROUP_WIDTH = 0.8  # share of each accelerator's x slot taken by its bars


def plot_speedups_sd(means: pd.DataFrame, path: str | Path, baseline: str = "non-pruned", scale: str = "linear",
                     title: str = "") -> Path:
    """speedups.png: speedup over `baseline` (mean over seeds, error bar = sd) per accelerator (one bar group
    each, the geometric mean last), one bar per variant other than `baseline`. `scale`: "linear" or "log"."""
    from matplotlib.figure import Figure

    from bitpruner.utils.atomic import save_figure

    accels = ordered_unique(means["accelerator"])
    variants = [v for v in ordered_unique(means["variant"]) if v != baseline]
    fig = Figure(figsize=(max(6.0, 0.9 * len(accels) * max(1, len(variants)) ** 0.5 + 3), 4.5))
    ax = fig.subplots()
    x = np.arange(len(accels))
    width = BAR_GROUP_WIDTH / max(len(variants), 1)
    for i, v in enumerate(variants):
        sub = means[means["variant"] == v].set_index("accelerator")
        heights = [float(sub.at[a, "speedup_vs_nonpruned"]) for a in accels]
        errors = [float(sub.at[a, "speedup_vs_nonpruned_sd"]) for a in accels]
        ax.bar(x + (i - (len(variants) - 1) / 2) * width, heights, width, yerr=errors, capsize=2, label=v,
               error_kw={"elinewidth": 0.8})
    ax.set_xticks(x, [("geometric mean" if a == GEOMEAN else a) for a in accels], rotation=30, ha="right")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_yscale(scale)
    ax.set_ylabel(f"speedup over {baseline} (x, mean ± sd over seeds)")
    ax.set_title(title or f"speedup over {baseline}, same accelerator", fontsize=9)
    ax.legend(fontsize="small")
    ax.grid(axis="y", linewidth=0.3, alpha=0.5)
    fig.tight_layout()
    return save_figure(path, fig)


def plot_accuracy_vs_bit_sparsity(means: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """accuracy_vs_bit_sparsity.png: test accuracy (%) against bit sparsity (%) per variant, mean over seeds with
    sd error bars in both directions."""
    from matplotlib.figure import Figure

    from bitpruner.utils.atomic import save_figure

    first = means.groupby("variant", sort=False).first()
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    for i, (variant, r) in enumerate(first.iterrows()):
        ax.errorbar([100 * r["bit_sparsity"]], [r["test_acc"]], xerr=[100 * r["bit_sparsity_sd"]],
                    yerr=[r["test_acc_sd"]], fmt="o", color=f"C{i}", capsize=3, label=variant)
        ax.annotate(variant, (100 * r["bit_sparsity"], r["test_acc"]), textcoords="offset points", xytext=(5, 4),
                    fontsize=7, color=f"C{i}")
    ax.set_xlabel("bit sparsity (% of weight bits that are zero, mean ± sd)")
    ax.set_ylabel("test accuracy (8-bit, %, mean ± sd)")
    ax.set_title(title or "accuracy vs bit sparsity over seeds", fontsize=9)
    ax.legend(fontsize="small")
    ax.grid(linewidth=0.3, alpha=0.5)
    fig.tight_layout()
    return save_figure(path, fig)
