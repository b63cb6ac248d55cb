"""The pipeline's parent run carries its headline (params, metrics, comparison) and a name that says what ran;
the experiment opens on the runs table (MLflow 3's experiment kind)."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from bitpruner.prune_weights.stage import prune_weights
from bitpruner.train.stage import train

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
