"""The `compare` stage: each seed's `simulate` output aggregated into one comparison over seeds.

Input: `simulate_dir` with ``{seed}`` filled by each of `seeds` (the per-seed pipeline's simulate folders).
Outputs in `outputs/compare/` (`bitpruner.reports.seeds` computes them):
- `comparison.md`: variants (accuracy, paired difference vs the baseline, sparsities) and accelerators x variants
  (cycles per image, speedups), each mean ± sample sd over seeds, with the seeds and traced images it rests on;
- `comparison.csv`: the per-seed rows and the mean rows (``seed`` = ``mean``; ``seeds``, ``images``, ``*_sd``);
- `speedups.png`, `accuracy_vs_bit_sparsity.png`; `metrics.json` (headline), `details.json` (every mean and sd),
  `config.yaml`.
"""

from __future__ import annotations

import math

import pandas as pd

from bitpruner.compare.config import CompareStageConfig, validate_compare_stage
from bitpruner.errors import ConfigError
from bitpruner.reports.comparison import GEOMEAN, ordered_unique

STAGE = "compare"
ARTIFACTS = ("comparison.md", "comparison.csv", "speedups.png", "accuracy_vs_bit_sparsity.png")
SPEEDUPS = ("speedup_vs_nonpruned", "speedup_vs_weightpruned")


def simulate_references(folders: dict) -> tuple[str, str | None]:
    """(baseline, weight_pruned): the reference variants the seeds' `simulate` stage computed its speedups against
    (`baseline`, `weight_pruned` of each seed's config.yaml). The per-seed speedups are aggregated as they are, so the
    labels must be those; DataError (one line naming the file) when a seed's config is unreadable or they differ."""
    import yaml

    from bitpruner.errors import DataError

    found = {}
    for seed, folder in folders.items():
        path = folder / "config.yaml"
        try:
            cfg = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"seed {seed}: {path}: cannot read the simulate stage's config ({type(exc).__name__})") \
                from None
        found[seed] = (cfg.get("baseline") or "non-pruned", cfg.get("weight_pruned"))
    first = next(iter(found.values()))
    for seed, refs in found.items():
        if refs != first:
            raise DataError(f"seed {seed}: {folders[seed] / 'config.yaml'}: simulate references {refs} differ from "
                            f"{first} of seed {next(iter(found))}: expected the same for every seed")
    return first


def compare_metrics(means: pd.DataFrame, typed: CompareStageConfig, seeds: list[int], images: int,
                    baseline: str, weight_pruned: str | None) -> dict:
    """details.json: ``<variant>/<value>[/<accelerator>]`` (mean) and ``.../sd`` for every mean row, plus the
    headline: the `headline` variant's ``speedup_vs_*/<accelerator>`` means (geomean included), its test accuracy
    mean and sd and bit sparsity mean, and the number of seeds and of traced images per seed."""
    from bitpruner.reports.seeds import ACC_DIFF, MODEL_VALUES

    itself = {"speedup_vs_nonpruned": baseline, "speedup_vs_weightpruned": weight_pruned}
    out: dict = {}
    for variant, rows in means.groupby("variant", sort=False):
        first = rows.iloc[0]
        for key in (*MODEL_VALUES, ACC_DIFF):
            if not pd.isna(first[key]) and not (key == ACC_DIFF and variant == baseline):
                out[f"{variant}/{key}"] = float(first[key])
                out[f"{variant}/{key}/sd"] = float(first[f"{key}_sd"])
        for _, row in rows.iterrows():
            for key in ("cycles_per_image", *SPEEDUPS):
                if pd.isna(row[key]) or itself.get(key) == variant:
                    continue
                out[f"{variant}/{key}/{row['accelerator']}"] = float(row[key])
                out[f"{variant}/{key}/{row['accelerator']}/sd"] = float(row[f"{key}_sd"])
                if variant == typed.headline and key in SPEEDUPS:
                    out[f"{key}/{row['accelerator']}"] = float(row[key])
    out.update({"seeds": len(seeds), "images": int(images)})
    return out


def headline_keys(metrics: dict, headline: str) -> list[str]:
    """metrics.json (DVC's metrics: a few figures, as the simulate stage's): the headline variant's geometric-mean
    speedups vs both references, its test accuracy (mean, sd), its paired accuracy difference vs the baseline, bit
    sparsity (mean), the seed count and the traced images per seed. Per-accelerator figures are in details.json."""
    from bitpruner.reports.seeds import ACC_DIFF

    keys = [f"{s}/{GEOMEAN}" for s in SPEEDUPS] + [f"{headline}/test_acc", f"{headline}/test_acc/sd",
                                                   f"{headline}/{ACC_DIFF}", f"{headline}/bit_sparsity"]
    return [k for k in keys if k in metrics] + ["seeds", "images"]


def _check_variants(means: pd.DataFrame, typed: CompareStageConfig, where: str) -> None:
    names = ordered_unique(means["variant"])
    if typed.headline not in names:
        raise ConfigError(f"headline={typed.headline!r}: expected one of the variants of {where}: {', '.join(names)}")


def compare(cfg: dict) -> dict:
    """Run the stage on a resolved config; returns the metrics written to `details.json`."""
    from bitpruner.reports.seeds import (
        aggregate,
        long_table,
        plot_accuracy_vs_bit_sparsity,
        plot_speedups_sd,
        read_seed_runs,
        seeds_markdown,
    )
    from bitpruner.skeleton.outputs import headline_of, log_outputs, write_stage_files
    from bitpruner.skeleton.session import stage_session
    from bitpruner.tracking import stage_run
    from bitpruner.utils.atomic import write_csv, write_text

    typed = validate_compare_stage(cfg)
    folders = typed.folders()
    with stage_session(STAGE, cfg) as session:
        baseline, weight_pruned = simulate_references(folders)
        runs = read_seed_runs(folders, baseline)
        means = aggregate(runs.per_seed, runs.images)
        _check_variants(means, typed, str(next(iter(folders.values())) / "comparison.csv"))
        network = typed.network or runs.network or "network"
        weight_pruned = weight_pruned if weight_pruned in set(means["variant"]) else None
        tags = {"model": network, "dataset": runs.dataset or "unknown",
                "seeds": ",".join(str(s) for s in runs.seeds)}
        logger_cfg = (cfg.get("logger") or {}).get("mlflow")
        with stage_run(STAGE, cfg, logger_cfg, cfg["paths"]["root_dir"], tags=tags,
                       run_record=session.run_record) as run:
            metrics = compare_metrics(means, typed, runs.seeds, runs.images, baseline, weight_pruned)
            headline = headline_keys(metrics, typed.headline)
            label = network + (f" on {runs.dataset}" if runs.dataset else "")
            title = f"{label}: variants x accelerators over {len(runs.seeds)} seeds"
            with session.outputs() as out_dir:
                write_text(out_dir / "comparison.md", seeds_markdown(
                    means, runs.seeds, runs.images, baseline, weight_pruned, title=title))
                write_csv(out_dir / "comparison.csv", long_table(runs.per_seed, means))
                plot_speedups_sd(means, out_dir / "speedups.png", baseline, typed.speedup_axis,
                                 title=f"{label}: speedup over {baseline} (mean ± sd, {len(runs.seeds)} seeds)")
                plot_accuracy_vs_bit_sparsity(means, out_dir / "accuracy_vs_bit_sparsity.png",
                                              title=f"{label}: accuracy vs bit sparsity ({len(runs.seeds)} seeds)")
                timing = {"wall_time_s": session.elapsed()}
                write_stage_files(out_dir, cfg, metrics, timing, headline)
            log_outputs(run, session.out_dir, metrics, timing, ARTIFACTS)
            run.log_headline(STAGE, {"compare.seeds": ",".join(str(s) for s in runs.seeds)},
                             headline_of(metrics, headline),
                             [session.out_dir / "comparison.md", session.out_dir / "speedups.png"])
        session.run_record.unlink(missing_ok=True)
    print(f"compare: {network}, seeds {', '.join(str(s) for s in runs.seeds)}, {runs.images} images per seed; "
          f"{typed.headline} geomean speedup vs {baseline} "
          f"{_x(metrics.get('speedup_vs_nonpruned/' + GEOMEAN))}, vs {weight_pruned} "
          f"{_x(metrics.get('speedup_vs_weightpruned/' + GEOMEAN))}")
    return metrics


def _x(value) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.2f}x"
