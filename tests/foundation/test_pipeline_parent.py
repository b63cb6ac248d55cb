"""The pipeline's parent run carries its headline (params, metrics, comparison) and a name that says what ran;
the experiment opens on the runs table (MLflow 3's experiment kind)."""

from __future__ import annotations

import json

import yaml
from mlflow.tracking import MlflowClient

from bitpruner.prune_weights.stage import prune_weights
from bitpruner.tracking.runs import upstream_headlines
from bitpruner.train.stage import train
from helpers.paths import REPO_ROOT

TRAIN = ["data=digits", "model=mlp", "model.hidden=[16]", "trainer.max_epochs=1", "data.batch_size=256"]
PRUNE = ["data=digits", "trainer.max_epochs=2", "data.batch_size=256", "prune_weights=oneshot",
         "prune_weights.overrides={layers.fc1*: 0.5}"]


def test_parent_run_shows_the_pipeline(compose, tmp_path, monkeypatch, mlflow_db):
    monkeypatch.setenv("BITPRUNER_PIPELINE_ID", "parent-test")
    monkeypatch.setenv("DVC_EXP_NAME", "exp-lucky")
    train_metrics = train(compose("train", TRAIN))
    prune_metrics = prune_weights(compose("prune_weights", PRUNE))
    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
    experiment = client.get_experiment_by_name("bitpruner")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parents = client.search_runs([experiment.experiment_id], "tags.`bitpruner.kind` = 'pipeline'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_name == "mlp on digits · exp-lucky"
    assert parent.data.params["model"] == "mlp" and parent.data.params["dataset"] == "digits"
    assert parent.data.params["prune_weights.final_sparsity"] == "0.9"
    assert parent.data.metrics["train/test_acc"] == train_metrics["test_acc"]
    assert parent.data.metrics["prune_weights/sparsity"] == prune_metrics["sparsity"]
    # The glob override reached MLflow as a sanitized param of the stage run, which finished.
    stage = client.search_runs([experiment.experiment_id], "tags.stage = 'prune_weights'")[0]
    assert stage.info.status == "FINISHED" and stage.data.params["prune_weights.overrides.layers.fc1_"] == "0.5"


def test_a_pipeline_whose_first_stages_dvc_skipped_still_shows_their_headline(compose, tmp_path, monkeypatch,
                                                                               mlflow_db):
    # `dvc exp run -S prune_weights...` skips an up-to-date train: the parent, created by prune_weights, copies
    # train's headline from its metrics file so that two pipelines compare on it.
    (tmp_path / "dvc.yaml").write_text((REPO_ROOT / "dvc.yaml").read_text())
    monkeypatch.setenv("BITPRUNER_PIPELINE_ID", "first")
    train_metrics = train(compose("train", TRAIN))
    monkeypatch.setenv("BITPRUNER_PIPELINE_ID", "second")
    prune_weights(compose("prune_weights", PRUNE))
    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
    experiment = client.get_experiment_by_name("bitpruner")
    second = client.search_runs([experiment.experiment_id],
                                "tags.`bitpruner.kind` = 'pipeline' and tags.`bitpruner.pipeline_id` = 'second'")[0]
    assert second.data.tags["bitpruner.reused_stages"] == "train"
    assert second.data.metrics["train/test_acc"] == train_metrics["test_acc"]
    assert "prune_weights/sparsity" in second.data.metrics


def test_upstream_headlines_reads_only_earlier_stages_numbers(tmp_path):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "a": {"cmd": "x", "metrics": [{"out/a.json": {"cache": False}}]},
        "b": {"cmd": "x", "metrics": ["out/b.json", "out/missing.json"]},
        "c": {"cmd": "x", "metrics": ["out/c.json"]}}}, sort_keys=False))
    (tmp_path / "out").mkdir()
    (tmp_path / "out/a.json").write_text(json.dumps({"acc": 97.5, "flag": True, "name": "x"}))
    (tmp_path / "out/b.json").write_text("not json")
    (tmp_path / "out/c.json").write_text(json.dumps({"later": 1.0}))
    assert upstream_headlines(tmp_path, "c") == {"a": {"acc": 97.5}}
    assert upstream_headlines(tmp_path, "a") == {}
    assert upstream_headlines(tmp_path, "unknown") == {}
    assert upstream_headlines(tmp_path / "nowhere", "c") == {}


def test_upstream_headlines_of_a_seed_fan_out_read_this_seeds_folder(tmp_path):
    """dvc.yaml's `foreach: ${seeds}` stages: the metrics of the earlier stages come from this run's folder, keyed by
    its label, so the three seeds' headlines sit side by side on the parent instead of overwriting each other."""
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "a": {"foreach": "${seeds}", "do": {"cmd": "x", "metrics": ["outputs/seeds/${item}/a/metrics.json"]}},
        "b": {"foreach": "${seeds}", "do": {"cmd": "x"}}}}, sort_keys=False))
    for seed, acc in ((42, 97.5), (43, 96.0)):
        (tmp_path / f"outputs/seeds/{seed}/a").mkdir(parents=True)
        (tmp_path / f"outputs/seeds/{seed}/a/metrics.json").write_text(json.dumps({"acc": acc}))
    assert upstream_headlines(tmp_path, "b", tmp_path / "outputs/seeds/43") == {"seeds/43/a": {"acc": 96.0}}
    assert upstream_headlines(tmp_path, "b", "outputs/seeds/42") == {"seeds/42/a": {"acc": 97.5}}  # from the root
    assert upstream_headlines(tmp_path, "b") == {}
