"""The `compare` stage in-process on synthetic per-seed simulate folders: outputs, metrics, MLflow, errors."""

import json

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from bitpruner.compare import stage as compare_stage
from bitpruner.compare.config import validate_compare_stage
from bitpruner.entry import run_stage
from bitpruner.errors import ConfigError
from bitpruner.reports.seeds import aggregate, read_seed_runs
from compare.seed_folders import ACCELS, VARIANTS, write_seeds


def test_compare_stage_outputs(compose, tmp_path):
    folders = write_seeds(tmp_path, (42, 43, 44))
    cfg = compose("compare", ["logger=none"])
    assert validate_compare_stage(cfg).folders() == folders
    metrics = compare_stage.compare(cfg)
    out = tmp_path / "outputs" / "compare"
    assert {"comparison.md", "comparison.csv", "speedups.png", "accuracy_vs_bit_sparsity.png", "metrics.json",
            "details.json", "config.yaml"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "details.json").read_text()) == metrics
    runs = read_seed_runs(folders)
    means = aggregate(runs.per_seed, runs.images).set_index(["variant", "accelerator"])
    headline = json.loads((out / "metrics.json").read_text())
    for a in (*ACCELS, "geomean"):  # every accelerator in details.json, the geometric mean also in metrics.json
        for key in ("speedup_vs_nonpruned", "speedup_vs_weightpruned"):
            assert metrics[f"{key}/{a}"] == pytest.approx(means.at[("bit-pruned", a), key])
            assert (f"{key}/{a}" in headline) == (a == "geomean")
    assert 5 <= len(headline) <= 10
    assert headline["bit-pruned/test_acc"] == pytest.approx(means.at[("bit-pruned", "Stripes"), "test_acc"])
    assert headline["bit-pruned/test_acc/sd"] == pytest.approx(means.at[("bit-pruned", "Stripes"), "test_acc_sd"])
    assert headline["seeds"] == 3 and headline["images"] == 4 and "bit-pruned/bit_sparsity" in headline
    table = pd.read_csv(out / "comparison.csv")
    assert len(table) == 4 * len(VARIANTS) * (len(ACCELS) + 1)
    text = (out / "comparison.md").read_text()
    assert text.startswith("# lenet5 on digits: variants x accelerators over 3 seeds")
    assert "over 3 seeds (42, 43, 44); 4 traced test images per seed" in text
    for png in ("speedups.png", "accuracy_vs_bit_sparsity.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_seeds_come_from_params_yaml_unless_given(compose, tmp_path):
    """dvc.yaml cannot pass a list on the command line: `seeds: null` reads the project's params.yaml."""
    write_seeds(tmp_path, (5, 6))
    assert validate_compare_stage(compose("compare", ["logger=none"])).seeds == (5, 6)
    assert validate_compare_stage(compose("compare", ["logger=none", "seeds=[6]"])).seeds == (6,)
    (tmp_path / "params.yaml").write_text("data: mnist5k\n")
    with pytest.raises(ConfigError, match=r"^params_file=.*params.yaml: no `seeds` list, expected one"):
        validate_compare_stage(compose("compare", ["logger=none"]))
    (tmp_path / "params.yaml").unlink()
    with pytest.raises(ConfigError, match=r"^params_file=.*: cannot read it \(FileNotFoundError\)"):
        validate_compare_stage(compose("compare", ["logger=none"]))


def test_compare_stage_logs_to_mlflow(compose, tmp_path):
    write_seeds(tmp_path, (1, 2))
    metrics = compare_stage.compare(compose("compare", ["seeds=[1,2]", "network=tiny"]))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bitpruner")
    (run,) = client.search_runs([experiment.experiment_id], filter_string="tags.stage = 'compare'")
    assert run.data.tags["model"] == "tiny" and run.data.tags["seeds"] == "1,2"
    assert run.data.metrics["final/speedup_vs_nonpruned/geomean"] == pytest.approx(
        metrics["speedup_vs_nonpruned/geomean"])
    assert {"comparison.md", "comparison.csv", "speedups.png"} <= {a.path for a in client.list_artifacts(
        run.info.run_id)}


@pytest.mark.parametrize(("overrides", "message"), [
    (["seeds=[]"], "seeds: got [], expected a non-empty list of integers"),
    (["seeds=[1,1]"], "seeds: got [1, 1], expected distinct integers (no duplicates)"),
    (["simulate_dir=/x/simulate"], "simulate_dir='/x/simulate': expected a template holding {seed}"),
    (["speedup_axis=symlog"], "speedup_axis: got 'symlog', expected one of linear, log"),
])
def test_bad_config_is_one_line(compose, overrides, message):
    seeds = [] if any(o.startswith("seeds=") for o in overrides) else ["seeds=[1,2]"]  # no params.yaml here
    with pytest.raises(ConfigError) as info:
        validate_compare_stage(compose("compare", ["logger=none", *seeds, *overrides]))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_seed_folder_exits_with_one_line(compose, tmp_path, capsys):
    write_seeds(tmp_path, (42, 43))
    (tmp_path / "params.yaml").write_text("seeds: [42, 43, 44]\n")
    with pytest.raises(SystemExit) as info:
        run_stage(compare_stage.compare, compose("compare", ["logger=none"]))
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path / "outputs" / "seeds" / "44" / "simulate") in err
    assert not (tmp_path / "outputs" / "compare").exists()  # nothing half-written


def test_references_are_the_simulate_stages_and_must_agree(compose, tmp_path):
    """The speedups are aggregated as each seed's simulate computed them: the labels are its references; seeds that
    disagree on them are refused in one line naming the file."""
    from bitpruner.compare.stage import simulate_references
    from bitpruner.errors import DataError

    folders = write_seeds(tmp_path, (5, 6))
    assert simulate_references(folders) == ("non-pruned", "weight-pruned")
    (folders[6] / "config.yaml").write_text("baseline: weight-pruned\nweight_pruned: null\n")
    with pytest.raises(DataError, match=r"^seed 6: .*config.yaml: simulate references .* differ from"):
        simulate_references(folders)
    (folders[6] / "config.yaml").write_text("[unclosed\n")
    with pytest.raises(DataError, match=r"^seed 6: .*config.yaml: cannot read the simulate stage's config"):
        simulate_references(folders)


def test_unknown_headline_variant_is_one_line(compose, tmp_path):
    write_seeds(tmp_path, (5,))
    with pytest.raises(ConfigError, match=r"headline='BitPruner as published': expected one of the variants"):
        compare_stage.compare(compose("compare", ["logger=none", "seeds=[5]", "headline=BitPruner as published"]))
