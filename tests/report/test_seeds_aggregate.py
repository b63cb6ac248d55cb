"""Aggregation over seeds (bitpruner.reports.seeds) against a hand computation with numpy on synthetic seeds."""

import math

import numpy as np
import pandas as pd
import pytest

from bitpruner.errors import DataError
from bitpruner.reports.seeds import (
    LONG_COLUMNS,
    MEAN,
    aggregate,
    long_table,
    plot_accuracy_vs_bit_sparsity,
    plot_speedups_sd,
    read_seed_runs,
    seeds_markdown,
    split_long,
)
from compare.seed_folders import ACCELS, VARIANTS, write_seed_folder, write_seeds

SEEDS = (42, 43, 44)


@pytest.fixture
def folders(tmp_path):
    return write_seeds(tmp_path, SEEDS)


def raw(folders, seed) -> pd.DataFrame:
    """A seed's comparison.csv as written (the hand computation's input)."""
    return pd.read_csv(folders[seed] / "comparison.csv").set_index(["variant", "accelerator"])


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_means_and_sds_equal_numpy(folders):
    runs = read_seed_runs(folders)
    assert runs.seeds == list(SEEDS) and runs.images == 4 and runs.network == "lenet5" and runs.dataset == "digits"
    means = aggregate(runs.per_seed, runs.images).set_index(["variant", "accelerator"])
    tables = [raw(folders, s) for s in SEEDS]
    for v in VARIANTS:
        for a in ACCELS:
            row = means.loc[(v, a)]
            assert row["seeds"] == 3 and row["images"] == 4
            for ours, theirs in (("test_acc", "test_acc"), ("bit_sparsity", "bit_sparsity"),
                                 ("cycles_per_image", "cycles"), ("speedup_vs_nonpruned", "speedup_vs_nonpruned"),
                                 ("speedup_vs_weightpruned", "speedup_vs_weightpruned")):
                values = np.array([t.at[(v, a), theirs] for t in tables])
                assert row[ours] == pytest.approx(values.mean(), rel=1e-12)
                assert row[f"{ours}_sd"] == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-12)
    # speedups are averaged per seed: not the ratio of the mean cycles (the two differ on this example)
    row = means.loc[("bit-pruned", "PragmaticW-bfs0")]
    ratio_of_means = means.at[("non-pruned", "PragmaticW-bfs0"), "cycles_per_image"] / row["cycles_per_image"]
    assert row["speedup_vs_nonpruned"] != pytest.approx(ratio_of_means, rel=1e-6)


def test_geomean_row_is_per_seed_geomean_then_mean(folders):
    runs = read_seed_runs(folders)
    means = aggregate(runs.per_seed, runs.images).set_index(["variant", "accelerator"])
    for v in VARIANTS:
        for column, source in (("speedup_vs_nonpruned", "speedup_vs_nonpruned"), ("cycles_per_image", "cycles")):
            per_seed = [math.exp(np.log([raw(folders, s).at[(v, a), source] for a in ACCELS]).mean()) for s in SEEDS]
            assert means.at[(v, "geomean"), column] == pytest.approx(np.mean(per_seed), rel=1e-12)
            assert means.at[(v, "geomean"), f"{column}_sd"] == pytest.approx(np.std(per_seed, ddof=1), rel=1e-9)


def test_paired_accuracy_difference(folders):
    runs = read_seed_runs(folders)
    means = aggregate(runs.per_seed, runs.images).set_index(["variant", "accelerator"])
    for v in VARIANTS:
        diffs = np.array([raw(folders, s).at[(v, "Stripes"), "test_acc"]
                          - raw(folders, s).at[("non-pruned", "Stripes"), "test_acc"] for s in SEEDS])
        assert means.at[(v, "Stripes"), "acc_diff_vs_nonpruned"] == pytest.approx(diffs.mean(), abs=1e-12)
        assert means.at[(v, "Stripes"), "acc_diff_vs_nonpruned_sd"] == pytest.approx(diffs.std(ddof=1), abs=1e-12)
    assert means.at[("non-pruned", "geomean"), "acc_diff_vs_nonpruned"] == 0


def test_one_seed_has_sd_zero(tmp_path):
    runs = read_seed_runs(write_seeds(tmp_path, (7,)))
    means = aggregate(runs.per_seed, runs.images)
    assert (means["seeds"] == 1).all()
    assert (means["test_acc_sd"] == 0).all() and (means["speedup_vs_nonpruned_sd"] == 0).all()
    assert "over 1 seed (7)" in seeds_markdown(means, runs.seeds, runs.images)


def test_markdown_names_seeds_and_images(folders):
    runs = read_seed_runs(folders)
    means = aggregate(runs.per_seed, runs.images)
    text = seeds_markdown(means, runs.seeds, runs.images, title="lenet5 over seeds")
    assert text.startswith("# lenet5 over seeds")
    assert "over 3 seeds (42, 43, 44); 4 traced test images per seed" in text
    row = means[(means["variant"] == "bit-pruned") & (means["accelerator"] == "PragmaticW-bfs0")].iloc[0]
    assert f"{row['speedup_vs_nonpruned']:.2f}x ± {row['speedup_vs_nonpruned_sd']:.2f}" in text
    first = means[means["variant"] == "bit-pruned"].iloc[0]
    assert f"{first['acc_diff_vs_nonpruned']:+.2f} ± {first['acc_diff_vs_nonpruned_sd']:.2f}" in text
    assert "| **geometric mean** |" in text and "bit-pruned vs weight-pruned" in text


def test_long_table_has_seed_rows_and_mean_rows(folders, tmp_path):
    runs = read_seed_runs(folders)
    means = aggregate(runs.per_seed, runs.images)
    table = long_table(runs.per_seed, means)
    assert list(table.columns) == list(LONG_COLUMNS)
    n = len(VARIANTS) * (len(ACCELS) + 1)
    assert len(table) == n * (len(SEEDS) + 1)
    path = tmp_path / "comparison.csv"
    table.to_csv(path, index=False)
    back = pd.read_csv(path)
    assert sorted(back["seed"].astype(str).unique()) == ["42", "43", "44", MEAN]
    seed_rows = back[back["seed"].astype(str) != MEAN]
    assert seed_rows[["seeds", "images", "test_acc_sd", "cycles_per_image_sd"]].isna().all().all()
    mean_rows = back[back["seed"].astype(str) == MEAN]
    assert (mean_rows["seeds"] == 3).all() and (mean_rows["images"] == 4).all() and mean_rows["test_acc_sd"].notna().all()
    per_seed, again = split_long(back)
    assert per_seed["seed"].tolist()[:1] == [42] and len(again) == n
    assert np.allclose(again["speedup_vs_nonpruned"], means["speedup_vs_nonpruned"])
    # a seed row holds that seed's own value
    r42 = raw(folders, 42)
    row = seed_rows[(seed_rows["seed"].astype(str) == "42") & (seed_rows["variant"] == "bit-pruned")
                    & (seed_rows["accelerator"] == "PragmaticW-bfs4")].iloc[0]
    assert row["cycles_per_image"] == pytest.approx(r42.at[("bit-pruned", "PragmaticW-bfs4"), "cycles"])


def test_no_weight_pruned_variant_leaves_its_speedups_empty(tmp_path):
    folders = write_seeds(tmp_path, (1, 2), variants=("non-pruned", "bit-pruned"))
    runs = read_seed_runs(folders)
    means = aggregate(runs.per_seed, runs.images)
    assert means["speedup_vs_weightpruned"].isna().all() and means["speedup_vs_nonpruned"].notna().all()
    assert "vs weight-pruned" not in seeds_markdown(means, runs.seeds, runs.images)


def test_missing_folder_or_file_is_one_line(folders, tmp_path):
    gone = tmp_path / "outputs" / "seed99" / "simulate"
    assert str(gone) in one_line_error(read_seed_runs, {**folders, 99: gone})
    (folders[43] / "comparison.csv").unlink()
    assert str(folders[43] / "comparison.csv") in one_line_error(read_seed_runs, folders)
    (folders[44] / "details.json").unlink()
    assert str(folders[44] / "details.json") in one_line_error(read_seed_runs, {44: folders[44]})


def test_mismatching_seeds_are_one_line(tmp_path):
    base = write_seeds(tmp_path, (1,))
    other = write_seed_folder(tmp_path / "b", 2, variants=("non-pruned", "weight-pruned", "bit-pruned"))
    text = one_line_error(read_seed_runs, {1: base[1], 2: other})
    assert str(other / "comparison.csv") in text and "variants" in text
    other = write_seed_folder(tmp_path / "c", 3, accels=("Stripes", "PragmaticW-bfs0"))
    text = one_line_error(read_seed_runs, {1: base[1], 3: other})
    assert str(other / "comparison.csv") in text and "accelerators" in text
    other = write_seed_folder(tmp_path / "d", 4, samples=8)
    text = one_line_error(read_seed_runs, {1: base[1], 4: other})
    assert str(other / "details.json") in text and "samples=8" in text


def test_plots_are_pngs(folders, tmp_path):
    runs = read_seed_runs(folders)
    means = aggregate(runs.per_seed, runs.images)
    for path in (plot_speedups_sd(means, tmp_path / "s.png", scale="log"),
                 plot_accuracy_vs_bit_sparsity(means, tmp_path / "a.png")):
        assert path.read_bytes()[:4] == b"\x89PNG"
