"""Tiny synthetic per-seed `simulate` output folders (comparison.csv, details.json, variants.csv, comparison.md)
built with the simulate stage's own table code, so the compare stage reads exactly what simulate writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bitpruner.reports.comparison import comparison_table

VARIANTS = ("non-pruned", "weight-pruned", "bit-pruned", "uniform-k1", "uniform-k2")
ACCELS = ("Stripes", "PragmaticW-bfs0", "PragmaticW-bfs4")
BASE_CYCLES = {"Stripes": 1000.0, "PragmaticW-bfs0": 800.0, "PragmaticW-bfs4": 760.0}
# Per variant: (test_acc, bit_sparsity, weight_sparsity, cycle factor on the bit-serial designs).
PROFILE = {"non-pruned": (97.7, 0.68, 0.02, 1.0), "weight-pruned": (97.6, 0.95, 0.9, 0.97),
           "bit-pruned": (97.5, 0.983, 0.9, 0.22), "uniform-k1": (96.9, 0.99, 0.9, 0.15),
           "uniform-k2": (97.6, 0.975, 0.9, 0.3)}


def seed_tables(seed: int, variants=VARIANTS, accels=ACCELS, samples: int = 4, overrides: dict | None = None):
    """(cycles.csv frame, variants.csv frame) of one synthetic seed; values vary with the seed.
    `overrides`: {variant: {"test_acc"|"bit_sparsity"|"factor": value}} replaces the profile's figure."""
    rng = np.random.default_rng(seed)
    overrides = overrides or {}
    rows, cycles = [], []
    for v in variants:
        acc, bits, weights, factor = PROFILE[v]
        o = overrides.get(v, {})
        acc = o.get("test_acc", acc + round(float(rng.normal(0, 0.1)), 2))
        bits = o.get("bit_sparsity", bits + float(rng.normal(0, 0.001)))
        factor = o.get("factor", factor * float(rng.uniform(0.95, 1.05)))
        rows.append({"variant": v, "test_acc": acc, "acc_source": "synthetic", "traced_test_acc": acc + 0.1,
                     "weight_sparsity": weights, "bit_sparsity": bits, "mean_bits_per_weight": 8 * (1 - bits),
                     "mean_bits_per_nonzero": 1.0, "weights_from": "synthetic", "ckpt": f"seed{seed}/{v}.ckpt"})
        for a in accels:
            per_image = BASE_CYCLES[a] * (1.0 if a == "Stripes" else factor)
            for layer, share in (("conv1", 0.25), ("fc1", 0.75)):  # two layers: totals are sums over layers
                cycles.append({"variant": v, "accelerator": a, "arch": a, "layer": layer, "type": "conv",
                               "compute_cycles": int(round(per_image * share * samples)), "samples": samples,
                               "cycles_per_image": round(per_image * share * samples) / samples})
    return pd.DataFrame(cycles), pd.DataFrame(rows)


def write_seed_folder(folder: Path, seed: int, samples: int = 4, **kwargs) -> Path:
    """A simulate output folder of one seed, as the simulate stage writes it (the files the compare stage reads)."""
    cycles, variants = seed_tables(seed, samples=samples, **kwargs)
    names = list(variants["variant"])
    table = comparison_table(cycles, variants, "non-pruned", "weight-pruned" if "weight-pruned" in names else None)
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "comparison.csv", index=False)
    variants.to_csv(folder / "variants.csv", index=False)
    (folder / "details.json").write_text(json.dumps({"samples": samples}))
    (folder / "metrics.json").write_text(json.dumps({"samples": samples}))
    (folder / "comparison.md").write_text("# lenet5 on digits: variants x accelerators\n")
    wp = "weight-pruned" if "weight-pruned" in names else "null"
    (folder / "config.yaml").write_text(f"stage: simulate\nbaseline: non-pruned\nweight_pruned: {wp}\n")
    return folder


def write_seeds(root: Path, seeds=(42, 43, 44), template: str = "outputs/seeds/{seed}/simulate", **kwargs):
    """{seed: folder} of synthetic simulate folders under `root`, and `root/params.yaml` listing the seeds (where the
    stage takes them from by default, as under dvc.yaml's fan-out)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text("seeds: [" + ", ".join(str(s) for s in seeds) + "]\n")
    return {s: write_seed_folder(root / template.format(seed=s), s, **kwargs) for s in seeds}
