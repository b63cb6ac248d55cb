"""One MLflow run per stage execution, nested under its pipeline's (or sweep's) parent run.

The parent is $BITPRUNER_PARENT_RUN_ID when set (a sweep callback sets it), else the run tagged with
this pipeline execution's id (created by the first stage that needs it). A stage that raises marks
its run, and the parent, FAILED and re-raises.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bitpruner.tracking import context
from bitpruner.tracking.flatten import flatten
from bitpruner.tracking.names import MAX_NAME, cut, digest, mlflow_keys, param_values, tag_values

PIPELINE_TAG = "bitpruner.pipeline_id"
KIND_TAG = "bitpruner.kind"
CONTINUES_TAG = "bitpruner.continues"  # the run whose resume state this one picked up
PIPELINE_KEY_TAG = "bitpruner.pipeline_key"  # digest of the pipeline id, what the stages search by
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
REUSED_TAG = "bitpruner.reused_stages"  # earlier stages DVC skipped: their headline copied from their metrics files
OUTPUT_KEY_TAG = "bitpruner.output_key"  # digest of paths.output_dir (a sweep finds its jobs' runs by it)


@dataclass
class StageRun:
    """Handle on the active stage run; `logger` is a Lightning MLFlowLogger (None when tracking is off)."""

    run_id: str | None = None
    parent_run_id: str | None = None
    tracking_uri: str | None = None
    logger: Any = None
    client: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    # The pipeline run's folder under outputs/ (`seeds/42` in dvc.yaml's seed fan-out, "" for outputs/ itself):
    # the prefix of this stage's headline on the shared parent, so that the seeds do not overwrite each other.
    run_label: str = ""

    @property
    def enabled(self) -> bool:
        return self.run_id is not None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not self.enabled:
            return
        clean = mlflow_keys({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
        self.logger.log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.enabled and Path(path).exists():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self.enabled:
            for key, value in tag_values(tags).items():
                self.client.set_tag(self.run_id, key, value)

    def log_headline(self, stage: str, params: dict[str, Any], metrics: dict[str, Any],
                     artifacts: list[Path] = ()) -> None:
        """Put the stage's headline on the pipeline's (or sweep's) parent run, so that the runs table and
        "Compare" show whole pipelines side by side: params as given (a value that changed since an earlier
        stage logged it becomes a tag, since MLflow params are write-once), numeric metrics as
        `<stage>/<key>`, artifacts under `<stage>/`; each prefixed by `run_label/` when the stage ran in a seed's
        folder. No-op without a parent."""
        if not self.enabled or not self.parent_run_id:
            return
        if self.run_label:
            stage = f"{self.run_label}/{stage}"
            params = {f"{self.run_label}/{k}": v for k, v in params.items()}
        parent = self.client.get_run(self.parent_run_id)
        for key, value in param_values(params).items():
            if key not in parent.data.params:
                self.client.log_param(self.parent_run_id, key, value)
            elif parent.data.params[key] != value:
                self.client.set_tag(self.parent_run_id, key, value)
        numbers = {f"{stage}/{k}": float(v) for k, v in metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for key, value in mlflow_keys(numbers).items():
            self.client.log_metric(self.parent_run_id, key, value)
        for path in artifacts:
            if Path(path).exists():
                self.client.log_artifact(self.parent_run_id, str(path), stage)


def _experiment_id(client, name: str, artifact_location: str | None) -> str:
    """The experiment's id (created when missing), tagged as a model-training experiment: MLflow 3.x opens
    untagged experiments on its GenAI overview rather than on the runs table."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, artifact_location=artifact_location,
                                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def _pipeline_parent(client, experiment_id: str, pipeline: str, base_tags: dict[str, str], label: str,
                     root: str | Path, stage: str, run_dir: str | Path | None = None) -> str:
    # The id may be any string ($BITPRUNER_PIPELINE_ID): search by its digest, which a filter can always express.
    found = client.search_runs([experiment_id], filter_string=f"tags.`{PIPELINE_KEY_TAG}` = '{digest(pipeline)}'",
                               max_results=1)
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        return run_id
    # What ran: model and data set, and the DVC experiment's name (or the start time).
    name = f"{label} · {os.environ.get(context.DVC_EXP_ENV) or time.strftime('%Y-%m-%d %H:%M')}"
    tags = {**base_tags, PIPELINE_TAG: pipeline, PIPELINE_KEY_TAG: digest(pipeline), KIND_TAG: "pipeline"}
    reused = upstream_headlines(root, stage, run_dir)
    if reused:
        tags[REUSED_TAG] = ",".join(reused)
    run_id = client.create_run(experiment_id, run_name=cut(name, MAX_NAME), tags=tag_values(tags)).info.run_id
    for upstream, metrics in reused.items():
        for key, value in mlflow_keys({f"{upstream}/{k}": v for k, v in metrics.items()}).items():
            client.log_metric(run_id, key, value)
    return run_id


def upstream_headlines(root: str | Path, stage: str, run_dir: str | Path | None = None) -> dict[str, dict[str, float]]:
    """The headline metrics of the stages listed before `stage` in the root `dvc.yaml`, read from their DVC
    metrics files as they are in the workspace: `{stage: {key: value}}` (numbers only). A stage that runs once
    per seed (`foreach`) is read from this run's folder: `<run_dir>/<stage>/metrics.json` (relative to `root`), keyed
    `<run label>/<stage>` (e.g. `seeds/42/train`).

    A pipeline's parent run is created by the first stage that runs; when `dvc repro` / `dvc exp run` skipped the
    earlier stages as up to date, their figures would otherwise be missing from the parent, and two pipelines could
    not be compared on them. Empty when there is no dvc.yaml, `stage` is not in it, or a file is absent or unreadable
    (the parent then shows what runs, as before)."""
    import json

    import yaml

    try:
        stages = (yaml.safe_load((Path(root) / "dvc.yaml").read_text()) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(stages, dict) or stage not in stages:
        return {}
    found: dict[str, dict[str, float]] = {}
    label = context.run_label(run_dir, root) if run_dir is not None else ""
    for name in list(stages)[: list(stages).index(stage)]:
        definition = stages[name] or {}
        if "foreach" in definition or "matrix" in definition:
            if run_dir is None:
                continue
            paths, key = [Path(root, run_dir) / name / "metrics.json"], f"{label}/{name}" if label else name
        else:
            paths = [Path(root) / str(next(iter(e)) if isinstance(e, dict) else e)
                     for e in definition.get("metrics") or []]
            key = name
        for path in paths:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            numbers = {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))
                       and not isinstance(v, bool)} if isinstance(data, dict) else {}
            if numbers:
                found.setdefault(key, {}).update(numbers)
    return found


def _close_previous(client, run_record: Path | None) -> str | None:
    """The run id recorded beside the resume state; a run still RUNNING there was killed (SIGKILL, power loss:
    the lock proves no live process owns it) and is marked KILLED."""
    if run_record is None or not Path(run_record).is_file():
        return None
    previous = Path(run_record).read_text().strip()
    if not previous:
        return None
    try:
        run = client.get_run(previous)
    except Exception:  # deleted, or recorded against another tracking store
        return None
    if run.info.status == "RUNNING":
        client.set_terminated(previous, status="KILLED")
    return previous


@contextlib.contextmanager
def stage_run(stage: str, config: dict, logger_cfg: dict | None, root: str | Path,
              tags: dict[str, Any] | None = None, run_record: Path | None = None,
              resumed: bool = False) -> Iterator[StageRun]:
    """Open the stage's MLflow run (params = flattened `config`), yield it, close it FINISHED, KILLED (a signal:
    StageInterrupted) or FAILED (any other exception).

    `run_record` (a file beside the stage's resume state) remembers the run id: the next start marks a run
    left RUNNING there KILLED, and, when it resumes that run's state (`resumed`), tags the new run
    `bitpruner.continues` = the old run's id.
    """
    from bitpruner.skeleton.signals import StageInterrupted

    if not logger_cfg:
        yield StageRun()
        return
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow.tracking import MlflowClient

    experiment = logger_cfg.get("experiment_name") or "bitpruner"
    uri_env = os.environ.get("MLFLOW_TRACKING_URI")
    uri = context.tracking_uri(logger_cfg.get("tracking_uri"), root)
    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment_id(
        client, experiment, context.artifact_location(logger_cfg.get("artifact_location"), root, experiment)
    )
    base_tags = {"git_commit": context.git_commit(root), "mlflow.source.git.commit": context.git_commit(root)}
    if os.environ.get(context.DVC_EXP_ENV):
        base_tags["dvc_experiment"] = os.environ[context.DVC_EXP_ENV]
    parent = os.environ.get(context.PARENT_RUN_ENV)
    pipeline = context.pipeline_id()
    run_dir = (config.get("paths") or {}).get("run_dir")
    if not parent and pipeline:
        label = " on ".join(str((tags or {}).get(k)) for k in ("model", "dataset") if (tags or {}).get(k)) or stage
        parent = _pipeline_parent(client, experiment_id, pipeline, base_tags, label, root, stage, run_dir)
    run_tags = {**base_tags, "stage": stage, KIND_TAG: "stage", **{k: str(v) for k, v in (tags or {}).items()}}
    if parent:
        run_tags["mlflow.parentRunId"] = parent
    previous = _close_previous(client, run_record)
    if resumed and previous:
        run_tags[CONTINUES_TAG] = previous
    output_dir = (config.get("paths") or {}).get("output_dir")
    if output_dir:
        run_tags[OUTPUT_KEY_TAG] = digest(str(output_dir))
    run_name = cut(logger_cfg.get("run_name") or stage, MAX_NAME)
    run_id = client.create_run(experiment_id, run_name=run_name, tags=tag_values(run_tags)).info.run_id
    try:  # from here on, any failure (logging the params included) ends the run FAILED or KILLED
        if run_record is not None:
            from bitpruner.utils.atomic import write_text

            write_text(run_record, run_id + "\n")
        logger = MLFlowLogger(experiment_name=experiment, tracking_uri=uri, run_id=run_id, log_model=False)
        logger.log_hyperparams(param_values(flatten(config)))
        yield StageRun(run_id=run_id, parent_run_id=parent, tracking_uri=uri, logger=logger, client=client,
                       run_label=context.run_label(run_dir, root) if run_dir else "")
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, StageInterrupted) else "FAILED"
        client.set_terminated(run_id, status=status)
        if parent:
            client.set_terminated(parent, status=status)
        raise
    else:
        client.set_terminated(run_id, status="FINISHED")
        if parent and not os.environ.get(context.PARENT_RUN_ENV):
            # The pipeline parent is closed after each stage and reopened by the next one.
            client.set_terminated(parent, status="FINISHED")
    finally:
        # MLFlowLogger calls mlflow.set_tracking_uri, which exports MLFLOW_TRACKING_URI; undo it so the
        # next stage in this process (a sweep job) does not take our store for a user-chosen server.
        if uri_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = uri_env
