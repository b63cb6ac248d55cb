"""The runs of an MLflow experiment, for the report: a table of runs, their tables and PNG artifacts."""

from __future__ import annotations

import math
import numbers
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bitpruner.errors import ConfigError

# Artifacts shown as tables (CSV) in the report, in this order; every PNG artifact is shown as an image.
TABLE_ARTIFACTS = ("comparison.csv", "sweep_summary.csv", "frontier.csv", "layer_bits.csv")
RUN_COLUMNS = ("run", "stage", "kind", "status", "model", "dataset", "parent", "started")
MAX_RUNS = 1000


@dataclass
class RunReport:
    """One run's part of the report."""

    run_id: str
    name: str
    stage: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)


def parse_tags(pairs: list[str] | None) -> dict[str, str]:
    tags = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--tag {pair!r}: expected key=value, e.g. --tag model=lenet5")
        tags[key] = value
    return tags


def tag_filter(tags: dict[str, str]) -> str:
    """An MLflow filter matching every `tags` pair exactly (ConfigError when MLflow cannot express one)."""
    from bitpruner.tracking.names import filter_key, filter_literal

    return " and ".join(f"tags.{filter_key(k, '--tag key')} = {filter_literal(v, f'--tag {k}')}"
                        for k, v in tags.items())


def search_runs(client, experiment: str, tags: dict[str, str]) -> list:
    """Every run of `experiment` with all `tags`, oldest first."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ConfigError(f"MLflow experiment {experiment!r} not found (experiments: {', '.join(names) or 'none'})")
    runs = client.search_runs([found.experiment_id], filter_string=tag_filter(tags), max_results=MAX_RUNS,
                              order_by=["attributes.start_time ASC"])
    return list(runs)


def runs_table(runs: list) -> pd.DataFrame:
    """One row per run: identity, tags that say what it is, and its key metrics (accuracy, bit sparsity, speedups)."""
    from bitpruner.sweeps.summary import key_metrics

    names = {r.info.run_id: r.info.run_name for r in runs}
    rows = []
    for run in runs:
        tags = run.data.tags
        parent = tags.get("mlflow.parentRunId")
        row = {"run": run.info.run_name, "stage": tags.get("stage", ""), "kind": tags.get("bitpruner.kind", ""),
               "status": run.info.status, "model": tags.get("model", ""), "dataset": tags.get("dataset", ""),
               "parent": names.get(parent, parent or ""),
               "started": pd.Timestamp(run.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M:%S")}
        row.update(key_metrics(run.data.metrics, run.data.params.get("headline")))
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    first = [c for c in ("test_acc", "bit_sparsity") if c in table.columns]
    speedups = sorted(c for c in table.columns if c not in RUN_COLUMNS and c not in first)
    return table[[*RUN_COLUMNS, *first, *speedups]]


def run_reports(client, runs: list) -> list[RunReport]:
    """The tables and images each run logged (runs with neither are left out)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            report = RunReport(run.info.run_id, run.info.run_name, run.data.tags.get("stage", ""))
            names = {a.path for a in client.list_artifacts(run.info.run_id) if not a.is_dir}
            for name in [*(t for t in TABLE_ARTIFACTS if t in names), *sorted(n for n in names if n.endswith(".png"))]:
                local = Path(client.download_artifacts(run.info.run_id, name, tmp))
                if name.endswith(".csv"):
                    report.tables[name] = pd.read_csv(local)
                else:
                    report.images[name] = local.read_bytes()
            if report.tables or report.images:
                out.append(report)
    return out


def format_cell(value, column: str = "") -> str:
    """A number as a reader wants it: fractions of sparsity in %, speedups with x, counts with commas."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return str(value)
    value = value.item() if hasattr(value, "item") else value  # numpy scalars from CSV columns
    if "sparsity" in column:
        return f"{100 * value:.2f}%"
    if "speedup" in column:
        return f"{value:.2f}x"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4g}"
