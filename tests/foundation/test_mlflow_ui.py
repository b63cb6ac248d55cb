"""The MLflow UI as a user meets it (headless Chromium against a real `mlflow ui`): the experiment opens on its
training runs, the pipelines' parent rows are there and sort by a headline metric, and "Compare" shows two
pipelines' params and metrics side by side."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from mlflow.tracking import MlflowClient

from bitpruner.tracking import stage_run
from helpers.browser import dump_dom, find_chromium

STARTUP_S = 180
PIPELINES = {"pipe-a": ("exp-a", 97.1, 4.1), "pipe-b": ("exp-b", 96.4, 5.2)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def populate(root: Path) -> tuple[str, dict[str, str]]:
    """Two small pipelines (train + simulate stage runs under a parent each); returns (experiment id, {exp: parent})."""
    logger = {"experiment_name": "bitpruner", "tracking_uri": None, "artifact_location": None, "run_name": None}
    parents = {}
    saved = {k: os.environ.get(k) for k in ("BITPRUNER_PIPELINE_ID", "DVC_EXP_NAME")}
    try:
        for pipeline, (exp, acc, speedup) in PIPELINES.items():
            os.environ["BITPRUNER_PIPELINE_ID"], os.environ["DVC_EXP_NAME"] = pipeline, exp
            tags = {"model": "lenet5", "dataset": "mnist5k"}
            with stage_run("train", {"seed": 1}, logger, root, tags=tags) as run:
                run.log_headline("train", {"model": "lenet5", "seed": 1}, {"test_acc": acc})
            with stage_run("simulate", {"seed": 1}, logger, root, tags=tags) as run:
                run.log_headline("simulate", {"simulate.samples": 32},
                                 {"speedup_vs_nonpruned/PragmaticW-bfs0": speedup})
            parents[exp] = run.parent_run_id
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return client.get_experiment_by_name("bitpruner").experiment_id, parents


@pytest.fixture(scope="module")
def mlflow_ui(tmp_path_factory):
    chromium = find_chromium()
    root = tmp_path_factory.mktemp("mlflow-ui")
    experiment, parents = populate(root)
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "ui", "--backend-store-uri",
                               f"sqlite:///{root / 'mlflow.db'}", "--workers", "1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            time.sleep(1)
    else:
        os.killpg(server.pid, signal.SIGTERM)
        pytest.fail(f"mlflow ui did not answer on {url}/health within {STARTUP_S} s")
    yield chromium, url, experiment, parents
    os.killpg(server.pid, signal.SIGTERM)  # stop it by its PID (its process group: gunicorn/uvicorn workers)
    server.wait(timeout=30)


def test_runs_page_lists_the_pipelines_sorted_by_a_headline_metric(mlflow_ui):
    chromium, url, experiment, parents = mlflow_ui
    sort = quote("metrics.`simulate/speedup_vs_nonpruned/PragmaticW-bfs0`")
    dom = dump_dom(chromium, f"{url}/#/experiments/{experiment}/runs?workflowType=machine_learning"
                             f"&orderByKey={sort}&orderByAsc=false")
    names = [f"lenet5 on mnist5k · {exp}" for exp, _, _ in PIPELINES.values()]
    assert all(name in dom for name in names), dom[-2000:]
    # Sorted by the headline speedup, descending: pipeline b (5.2x) above pipeline a (4.1x).
    assert dom.index(names[1]) < dom.index(names[0])
    assert "Model training" in dom


def test_compare_view_shows_two_pipelines_side_by_side(mlflow_ui):
    chromium, url, experiment, parents = mlflow_ui
    runs = quote("[" + ",".join(f'"{r}"' for r in parents.values()) + "]")
    experiments = quote(f'["{experiment}"]')
    dom = dump_dom(chromium, f"{url}/#/compare-runs?runs={runs}&experiments={experiments}", window="1400,3000")
    for exp, acc, speedup in PIPELINES.values():
        assert f"lenet5 on mnist5k · {exp}" in dom
        assert f">{acc}<" in dom and f">{speedup}<" in dom
    assert "train/test_acc" in dom and "simulate/speedup_vs_nonpruned/PragmaticW-bfs0" in dom
