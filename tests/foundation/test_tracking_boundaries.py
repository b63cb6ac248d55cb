"""Strings that reach MLflow and stores that cannot be used: one line, never a traceback, never a run left
RUNNING (issue kinds 1 and 2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from bitpruner.errors import ConfigError
from bitpruner.tracking import stage_run
from bitpruner.tracking.names import MAX_KEY, filter_literal, mlflow_key, mlflow_keys
from bitpruner.tracking.preflight import TrackingError, check_tracking_uri

REPO = Path(__file__).resolve().parents[2]
LOGGER = {"experiment_name": "bitpruner", "tracking_uri": None, "artifact_location": None, "run_name": None}
# User strings as they arrive from configs, globs, layer names, ids and paths.
ODD_KEYS = ["prune_weights.overrides.fc*", "prune_bits.layers.features.[0-3]", "plan.layers.{conv1,conv2}",
            "a//b", "./x", "/abs", "..", "trailing/", "ünïcode.ключ", "with'quote", 'with"dq', "tab\tkey",
            "semi;colon", "x" * 400, "", "%s%n", "emoji🙂"]


@pytest.mark.parametrize("name", ODD_KEYS)
def test_keys_become_names_mlflow_accepts(name):
    from mlflow.utils.validation import _validate_param_name, path_not_unique, validate_param_and_metric_name

    key = mlflow_key(name)
    assert len(key) <= MAX_KEY and validate_param_and_metric_name(key) and not path_not_unique(key)
    _validate_param_name(key)


def test_colliding_keys_stay_apart():
    keys = mlflow_keys({"layers.fc*": 1, "layers.fc?": 2, "layers.fc_": 3})
    assert len(keys) == 3 and sorted(keys.values()) == [1, 2, 3]


def test_filter_literals_are_read_back_verbatim(tmp_path):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'f.db'}")
    experiment = client.create_experiment("x")
    for value in ["plain", "it's", 'say "hi"', r"back\slash", "spaces and /slashes/"]:
        run = client.create_run(experiment, tags={"k": value}).info.run_id
        found = client.search_runs([experiment], filter_string=f"tags.k = {filter_literal(value)}")
        assert [r.info.run_id for r in found] == [run], value
    with pytest.raises(ConfigError, match="holds both"):
        filter_literal("""both ' and " """)


def test_a_stage_run_with_odd_strings_everywhere_finishes(tmp_path, mlflow_db, monkeypatch):
    """Globs and odd characters in params, long values, odd metric keys and tags, a long run name, a pipeline id
    with both quote kinds: the run is created, logged and FINISHED; a second stage finds the same parent."""
    monkeypatch.setenv("BITPRUNER_PIPELINE_ID", """exp 'a' "b" """)
    config = {"prune_weights": {"overrides": {"fc*": 0.5, "conv[12]": 0.3}}, "note": "v" * 20000,
              "odd": {name or "empty": 1 for name in ODD_KEYS}}
    logger = {**LOGGER, "run_name": "r" * 1000}
    with stage_run("prune_weights", config, logger, tmp_path, tags={"weird key*": "x" * 10000}) as run:
        run.log_metrics({"final/sparsity_layer/features.0*": 0.5, "final/x//y": 1.0})
    with stage_run("plan", {"a": 1}, LOGGER, tmp_path) as second:
        pass
    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
    first = client.get_run(run.run_id)
    assert first.info.status == "FINISHED"
    assert first.data.params["prune_weights.overrides.fc_"] == "0.5"
    assert "final/sparsity_layer/features.0_" in first.data.metrics
    assert second.parent_run_id == run.parent_run_id is not None


def test_report_tag_filters_are_quoted_or_refused(tmp_path, mlflow_db):
    from bitpruner.reports.mlflow_runs import tag_filter

    assert tag_filter({"model": "it's"}) == """tags.`model` = "it's\""""
    with pytest.raises(ConfigError, match="--tag k"):
        tag_filter({"k": """'" """})
    with pytest.raises(ConfigError, match="backquote"):
        tag_filter({"a`b": "x"})


def test_unreachable_server_fails_fast_in_one_line():
    started = time.monotonic()
    with pytest.raises(TrackingError, match=r"MLflow server http://127.0.0.1:9 unreachable .*logger=none"):
        check_tracking_uri("http://127.0.0.1:9")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(("content", "fragment"), [
    ("folder", "is a folder"), ("text", "not a readable sqlite database"), ("missing-dir", "cannot be created")])
def test_unusable_sqlite_stores_fail_in_one_line(tmp_path, content, fragment):
    path = tmp_path / "mlflow.db"
    if content == "folder":
        path.mkdir()
    elif content == "text":
        path.write_text("not sqlite\n" * 100)
    else:
        path = tmp_path / "nowhere" / "mlflow.db"
    with pytest.raises(TrackingError, match=fragment):
        check_tracking_uri(f"sqlite:///{path}")


def test_read_only_store_fails_in_one_line(tmp_path, mlflow_db):
    """A read-only file system under the store (a bind mount in a private mount namespace)."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("no mount namespaces here (unshare -m)")
    folder = mlflow_db.parent
    code = ("from bitpruner.tracking.preflight import check_tracking_uri as c; "
            f"c('sqlite:///{mlflow_db}')")
    script = f"mount --bind -o ro {folder} {folder} && {sys.executable} -c \"{code}\""
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "read-only" in proc.stderr and "TrackingError" in proc.stderr


def test_train_entry_point_with_a_dead_server_says_one_line(tmp_path):
    env = {**os.environ, "BITPRUNER_ROOT": str(tmp_path), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPO / "pipelines" / "train.py"), "data=digits",
                           "trainer.max_epochs=1"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: MLflow server http://127.0.0.1:9 unreachable"), proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "outputs" / "train").exists()
