"""The Hydra callback of every stage: in a multirun, one MLflow parent run for the sweep and a summary at the end.

- `on_multirun_start`: opens the parent (tag `bitpruner.kind=sweep`) and exports $BITPRUNER_PARENT_RUN_ID,
  so each job's stage run nests under it (`bitpruner.tracking.stage_run`); launchers that run jobs in
  worker processes (joblib) start them after this, so they inherit it.
- `on_job_end`: writes the job's record (overrides, status, its stage run) into its job folder; a job that
  failed before its stage run opened gets a FAILED child run of its own, so every job shows in MLflow.
- `on_multirun_end`: `sweep_summary.{csv,md}` and `sweep_tradeoff.png` in `hydra.sweep.dir`, logged on the
  parent, which is closed FINISHED; then, if any job failed, exits with status 1.
- `fail_sweep`: a launcher that cannot submit or wait for the jobs (Hydra then calls no callback) marks the
  parent FAILED, prints one line and exits 1 (`bitpruner.sweeps.launchers`).
A single run (no `-m`) touches nothing.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from bitpruner.sweeps import jobs
from bitpruner.tracking.names import MAX_TAG_VALUE, cut, tag_values

SUMMARY_FILES = ("sweep_summary.csv", "sweep_summary.md", "sweep_tradeoff.png")
SWEEP_TAG = "bitpruner.sweep"


def _metrics_file(folder: Path) -> Path | None:
    """A stage output folder's every-metric file (details.json), else its headline metrics.json, else None."""
    for name in ("details.json", "metrics.json"):
        if (folder / name).is_file():
            return folder / name
    return None


def _mlflow_target(config: DictConfig) -> tuple[str, str, str | None, str] | None:
    """(tracking URI, experiment, artifact location, project root) of the stage config; None with logging off."""
    from bitpruner.tracking import context

    logger = OmegaConf.select(config, "logger.mlflow")
    if not logger:
        return None
    root = str(OmegaConf.select(config, "paths.root_dir"))
    experiment = logger.get("experiment_name") or "bitpruner"
    return (context.tracking_uri(logger.get("tracking_uri"), root), experiment,
            context.artifact_location(logger.get("artifact_location"), root, experiment), root)


def _job_overrides(config: DictConfig) -> list[str]:
    """The overrides that make this job (or sweep) what it is, without those every job gets (sweeper params)."""
    common = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    own = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task", default=[])]
    return [o for o in own if o.split("=", 1)[0].lstrip("+~") not in common]


def fail_sweep(config: DictConfig, reason: str) -> NoReturn:
    """End a sweep that cannot go on (its launcher could not submit or wait for the jobs): mark its MLflow parent
    run ($BITPRUNER_PARENT_RUN_ID, opened by `on_multirun_start`) FAILED with tag `bitpruner.sweep.error`, print
    one line on stderr and exit with status 1. Hydra runs no callback when a launcher raises, so the launcher
    (`bitpruner.sweeps.launchers`) calls this. Raises SystemExit(1)."""
    from bitpruner.tracking import context
    from bitpruner.tracking.runs import KIND_TAG

    parent, target, note = os.environ.get(context.PARENT_RUN_ENV), _mlflow_target(config), ""
    if target is not None and parent:
        from mlflow.tracking import MlflowClient

        try:
            client = MlflowClient(tracking_uri=target[0])
            if client.get_run(parent).data.tags.get(KIND_TAG) == "sweep":  # not a pipeline parent set from outside
                client.set_tag(parent, "bitpruner.sweep.error", cut(reason, MAX_TAG_VALUE))
                client.set_terminated(parent, status="FAILED")
                note = f"; MLflow run {parent} marked FAILED"
        except Exception as exc:  # the store itself failing must not hide the launcher's reason
            note = f"; MLflow run {parent} could not be marked FAILED ({type(exc).__name__})"
    print(f"error: {reason}{note}", file=sys.stderr)
    sys.exit(1)


class MlflowSweepCallback(Callback):
    def __init__(self, summary: bool = True) -> None:
        self.summary = summary
        self.parent_run_id: str | None = None
        self._saved_env: str | None = None

    # -- the sweep ------------------------------------------------------------------------------------

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow.tracking import MlflowClient

        from bitpruner.tracking import context
        from bitpruner.tracking.runs import KIND_TAG, _experiment_id

        target = _mlflow_target(config)
        if target is None:
            return
        uri, experiment, artifacts, root = target
        from bitpruner.tracking.preflight import check_tracking_uri

        check_tracking_uri(uri)
        client = MlflowClient(tracking_uri=uri)
        stage = str(OmegaConf.select(config, "stage", default="sweep"))
        sweep_dir = str(config.hydra.sweep.dir)
        tags = {KIND_TAG: "sweep", "stage": stage, SWEEP_TAG: sweep_dir,
                "bitpruner.sweep.overrides": " ".join(_job_overrides(config))[:5000],
                "git_commit": context.git_commit(root), "mlflow.source.git.commit": context.git_commit(root)}
        if os.environ.get(context.DVC_EXP_ENV):
            tags["dvc_experiment"] = os.environ[context.DVC_EXP_ENV]
        name = f"sweep {stage} {time.strftime('%Y-%m-%d %H:%M:%S')}"
        run = client.create_run(_experiment_id(client, experiment, artifacts), run_name=name, tags=tag_values(tags))
        self.parent_run_id = run.info.run_id
        self._saved_env = os.environ.get(context.PARENT_RUN_ENV)
        os.environ[context.PARENT_RUN_ENV] = self.parent_run_id
        print(f"sweep: MLflow parent run {self.parent_run_id} ({uri}, experiment {experiment!r})")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from bitpruner.tracking import context

        sweep_dir = Path(str(config.hydra.sweep.dir))
        records = jobs.read_job_records(sweep_dir)
        target = _mlflow_target(config)
        client = None
        if target is not None and self.parent_run_id:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=target[0])
        failed = [r for r in records if r["status"] != "FINISHED"]
        if self.summary:
            paths = write_summary(records, sweep_dir, client, title=f"Sweep of {config.get('stage', 'a stage')}")
            print(f"sweep: {len(records) - len(failed)} of {len(records)} jobs finished; "
                  f"summary in {sweep_dir / 'sweep_summary.md'}")
            if client is not None:
                for path in paths:
                    client.log_artifact(self.parent_run_id, str(path))
        if client is not None:
            client.set_tag(self.parent_run_id, "bitpruner.sweep.jobs", len(records))
            client.set_tag(self.parent_run_id, "bitpruner.sweep.failed", len(failed))
            # The parent's job (running the sweep, summarizing it) succeeded; failed jobs are FAILED children.
            client.set_terminated(self.parent_run_id, status="FINISHED")
        if self._saved_env is None:
            os.environ.pop(context.PARENT_RUN_ENV, None)
        else:
            os.environ[context.PARENT_RUN_ENV] = self._saved_env
        if failed:
            # Hydra turns a callback's exception into a warning; a sweep with failed jobs should fail.
            nums = ", ".join(f"#{r['num']}" for r in failed)
            print(f"error: {len(failed)} of {len(records)} sweep jobs failed ({nums}); "
                  f"see {sweep_dir / 'sweep_summary.md'}", file=sys.stderr)
            sys.exit(1)

    # -- one job (possibly in a worker process) -------------------------------------------------------

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        if OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
            return
        folder = Path(str(config.hydra.runtime.output_dir))
        error = jobs.read_failure(folder)
        if job_return.status == JobStatus.FAILED and error is None:
            error = jobs.one_line(job_return._return_value)
        record = {"num": int(config.hydra.job.num), "overrides": _job_overrides(config),
                  "status": "FAILED" if error else "FINISHED", "folder": str(folder), "run_id": None,
                  "output_dir": str(OmegaConf.select(config, "paths.output_dir") or folder)}
        if error:
            record["error"] = error
        parent = os.environ.get("BITPRUNER_PARENT_RUN_ID")
        target = _mlflow_target(config)
        if target is not None and parent:
            record["run_id"] = self._job_run(target, parent, config, record)
        jobs.write_job_record(folder, record)

    @staticmethod
    def _job_run(target, parent: str, config: DictConfig, record: dict) -> str | None:
        """The job's stage run (found by its output folder, unique per job); a FAILED stand-in when it has none."""
        from mlflow.tracking import MlflowClient

        from bitpruner.tracking.names import digest
        from bitpruner.tracking.runs import KIND_TAG, OUTPUT_KEY_TAG

        client = MlflowClient(tracking_uri=target[0])
        parent_run = client.get_run(parent)
        output_key = digest(str(OmegaConf.select(config, "paths.output_dir")))
        found = client.search_runs(
            [parent_run.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent}' and tags.`{OUTPUT_KEY_TAG}` = '{output_key}'",
            max_results=1)
        if found:
            run_id = found[0].info.run_id
        else:
            tags = {"mlflow.parentRunId": parent, KIND_TAG: "stage", "stage": str(config.get("stage", "")),
                    "bitpruner.sweep.error": record.get("error", "")[:5000]}
            run_id = client.create_run(parent_run.info.experiment_id, run_name=f"job {record['num']}",
                                       tags=tag_values(tags)).info.run_id
            client.set_terminated(run_id, status="FAILED" if record.get("error") else "FINISHED")
        client.set_tag(run_id, "bitpruner.sweep.job", record["num"])
        client.set_tag(run_id, "bitpruner.sweep.overrides", cut(" ".join(record["overrides"]), MAX_TAG_VALUE))
        if client.get_run(parent).info.status != "RUNNING":
            client.update_run(parent, status="RUNNING")  # a failed stage marks its parent FAILED; the sweep goes on
        return run_id


def write_summary(records: list[dict], sweep_dir: Path, client, title: str) -> list[Path]:
    """The summary files of a sweep; metrics from each job's MLflow run, else from its details.json."""
    import json

    from bitpruner.sweeps.summary import key_metrics, plot_tradeoff, summary_markdown, summary_table
    from bitpruner.utils.atomic import write_csv, write_text

    # The overrides every job shares go in the title; each row shows what its job varies.
    common = set.intersection(*(set(r["overrides"]) for r in records)) if len(records) > 1 else set()
    rows = []
    for record in records:
        own = [o for o in record["overrides"] if o not in common]
        row = {"job": record["num"], "overrides": " ".join(own), "status": record["status"],
               "run_id": record.get("run_id")}
        if record.get("error"):
            row["error"] = record["error"]
        metrics, headline = {}, None
        if client is not None and record.get("run_id"):
            run = client.get_run(record["run_id"])
            metrics, headline = run.data.metrics, run.data.params.get("headline")
        elif (stage_metrics := _metrics_file(Path(record.get("output_dir", record["folder"])))) is not None:
            metrics = json.loads(stage_metrics.read_text())
            metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if record["status"] == "FINISHED":
            row.update(key_metrics(metrics, headline))
        rows.append(row)
    table = summary_table(rows)
    csv = write_csv(sweep_dir / SUMMARY_FILES[0], table)
    shared = [o for o in (records[0]["overrides"] if records else []) if o in common]
    md = write_text(sweep_dir / SUMMARY_FILES[1], summary_markdown(table, title, shared))
    png = plot_tradeoff(table, sweep_dir / SUMMARY_FILES[2], f"{title}: accuracy vs bit sparsity")
    return [Path(p) for p in (csv, md, png) if p is not None]
