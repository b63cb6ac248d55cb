"""MLflow tracking: stage runs nested under one parent run per pipeline execution or sweep."""

from bitpruner.tracking.runs import StageRun, stage_run

__all__ = ["StageRun", "stage_run"]
