"""An MLflow store with a sweep parent, a bit-pruning child and a simulate child, each with tables and PNGs."""

from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient


def _png(path: Path, title: str) -> Path:
    """A small line plot saved as PNG at `path` (Agg backend); returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 3, 2])
    ax.set_title(title)
    fig.savefig(path, format="png", dpi=60)
    plt.close(fig)
    return path


def populate(db: Path, work: Path) -> dict[str, str]:
    """Fill the sqlite store `db`, artifacts under `work`; returns the run ids by role.

    Experiment `bitpruner`: a sweep parent (sweep_summary.csv, sweep_tradeoff.png), its prune_bits child
    (layer_bit_sparsity.png, final metrics) and a simulate run (comparison.csv, speedups.png); experiment
    `other`: one run the report must not show.
    """
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.create_experiment("bitpruner", artifact_location=(work / "artifacts").as_uri())
    other = client.create_experiment("other", artifact_location=(work / "other").as_uri())
    work.mkdir(parents=True, exist_ok=True)
    sweep = client.create_run(exp, run_name="sweep prune_bits", tags={"bitpruner.kind": "sweep", "stage": "prune_bits"})
    pb = client.create_run(exp, run_name="prune_bits", tags={
        "bitpruner.kind": "stage", "stage": "prune_bits", "model": "lenet5", "dataset": "digits",
        "mlflow.parentRunId": sweep.info.run_id})
    sim = client.create_run(exp, run_name="simulate", tags={
        "bitpruner.kind": "stage", "stage": "simulate", "model": "lenet5", "dataset": "mnist5k"})
    client.create_run(other, run_name="elsewhere")
    for key, value in {"final/test_acc": 95.5, "final/bit_sparsity": 0.75, "final/column_proxy_speedup_vs_input": 1.8}.items():
        client.log_metric(pb.info.run_id, key, value)
    for key, value in {"final/bit-pruned/test_acc": 94.25, "final/bit-pruned/bit_sparsity": 0.8,
                       "final/speedup_vs_nonpruned/geomean": 2.5}.items():
        client.log_metric(sim.info.run_id, key, value)
    client.log_param(sim.info.run_id, "headline", "bit-pruned")

    summary = work / "sweep_summary.csv"
    pd.DataFrame({"job": [0, 1], "overrides": ["prune_bits.k=1", "prune_bits.k=2"], "status": ["FINISHED", "FAILED"],
                  "test_acc": [95.5, None], "bit_sparsity": [0.75, None]}).to_csv(summary, index=False)
    client.log_artifact(sweep.info.run_id, str(summary))
    client.log_artifact(sweep.info.run_id, str(_png(work / "sweep_tradeoff.png", "frontier")))
    client.log_artifact(pb.info.run_id, str(_png(work / "layer_bit_sparsity.png", "per-layer bits")))
    comparison = work / "comparison.csv"
    pd.DataFrame({"variant": ["non-pruned", "bit-pruned"], "accelerator": ["stripes", "stripes"],
                  "cycles": [20000.0, 8000.0], "speedup_vs_nonpruned": [1.0, 2.5]}).to_csv(comparison, index=False)
    client.log_artifact(sim.info.run_id, str(comparison))
    client.log_artifact(sim.info.run_id, str(_png(work / "speedups.png", "speedups")))
    for run in (sweep, pb, sim):
        client.set_terminated(run.info.run_id, status="FINISHED")
    return {"sweep": sweep.info.run_id, "prune_bits": pb.info.run_id, "simulate": sim.info.run_id}
