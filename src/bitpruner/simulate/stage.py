"""The `simulate` stage: capture integer traces of each model variant and simulate every accelerator on them.

Variants (``variants: [{name, ckpt, metrics, acc_key, required, project}]``): by default the non-pruned
(`train`), weight-pruned (`prune_weights`) and bit-pruned (`prune_bits`) models, and the non-pruned model pruned
post-training by the published bit-level methods (``project:``, `prune_bits/bitlevel.py`): "bit-flip (BitWave)"
and "BBS (BitVert)"; an optional variant whose checkpoint is absent is skipped. Writes under
``outputs/simulate/``: ``traces/<variant>/`` (our format), ``traces/dnnsim/`` (DNNsim's layout, one network per
variant), ``cycles.csv`` (variant x accelerator x layer), ``comparison.csv`` / ``comparison.md`` (the headline
table), ``speedups.png``, ``layer_cycles.png``, ``variants.csv``, ``metrics.json`` and ``config.yaml``.

The first ``samples`` test images are traced (default 32). ``cycles.csv`` keeps each layer's ``compute_cycles``
summed over them and ``cycles_per_image`` (their mean); every cycles figure of the table, the plots and the metrics
is per image. Designs that skip zero activation bits depend on the image; Stripes and the weight-serial ones do not
(their per-image cycles are the same for any number of images).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

from bitpruner.errors import ConfigError
from bitpruner.sim.accelerators import Accelerator
from bitpruner.simulate.config import VariantSpec, validate_simulate

STAGE = "simulate"
TRACES_DIR = "traces"
DNNSIM_DIR = "dnnsim"
ARTIFACTS = ("comparison.md", "comparison.csv", "cycles.csv", "variants.csv", "speedups.png", "layer_cycles.png")


def available_variants(specs: list[VariantSpec], baseline: str) -> list[VariantSpec]:
    """Variants whose checkpoint exists; a missing required one (and the baseline) is an error."""
    present = []
    for spec in specs:
        if spec.ckpt.is_file():
            present.append(spec)
        elif spec.required or spec.name == baseline:
            raise ConfigError(f"variants.{spec.name}.ckpt: {spec.ckpt} does not exist (run the stage that writes it)")
        else:
            print(f"simulate: skipping variant {spec.name!r}: {spec.ckpt} does not exist")
    return present


def stored_accuracy(spec: VariantSpec) -> float | None:
    """The variant's 8-bit test accuracy from its stage's metrics.json, when it records one."""
    if not spec.metrics or not spec.acc_key or not spec.metrics.is_file():
        return None
    try:
        value = json.loads(spec.metrics.read_text()).get(spec.acc_key)
    except (json.JSONDecodeError, AttributeError):
        raise ConfigError(f"variants.{spec.name}.metrics: {spec.metrics} is not a JSON object") from None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def capture_variant(spec: VariantSpec, cfg: dict, datamodule, test_inputs):
    """Load, quantize and trace one variant; returns (trace, one row of variants.csv, model name)."""
    from bitpruner.prune_bits.bits import model_bit_stats
    from bitpruner.sim.capture import quantize_model
    from bitpruner.skeleton.inputs import load_input_model
    from bitpruner.training.evaluate import evaluate

    model, payload = load_input_model(spec.ckpt, datamodule.name, key=f"variants.{spec.name}.ckpt")
    projected = None
    if spec.project is not None:
        # The checkpoint's 8-bit integers, pruned by the published method; traced exactly as stored, like prune_bits'.
        from bitpruner.prune_bits.project_cli import int_weights_meta, project_model

        try:
            weights, weights_source = project_model(model, payload, spec.project, bits=cfg["bits"]["weights"])
        except ConfigError as exc:
            raise ConfigError(f"variants[{spec.name!r}].project: {exc}") from None
        payload = {**payload, "meta": {**(payload.get("meta") or {}), "int_weights": int_weights_meta(weights)}}
        projected = f"{weights_source} + {spec.project.describe()}"
    calib = datamodule.calibration_batches(cfg["calibration"]["batches"], cfg["calibration"].get("batch_size"))
    qmodel = quantize_model(model, calib, payload, act_bits=cfg["bits"]["activations"],
                            wgt_bits=cfg["bits"]["weights"], name=spec.name)
    trace = qmodel.capture(test_inputs)
    # The traced network's own accuracy: integer weights AND quantized activations, as simulated.
    traced = evaluate(qmodel.model, datamodule.test_dataloader())["acc"] if cfg.get("traced_accuracy") else None
    acc = None if projected else stored_accuracy(spec)
    if acc is None:
        acc = traced if traced is not None else evaluate(qmodel.model, datamodule.test_dataloader())["acc"]
        source = "evaluated here (traced model)"
    else:
        source = f"{spec.metrics.parent.name}/{spec.metrics.name}:{spec.acc_key}"
    _, totals = model_bit_stats(qmodel.weights, bits=cfg["bits"]["weights"])
    row = {"variant": spec.name, "test_acc": acc, "acc_source": source,
           "traced_test_acc": math.nan if traced is None else traced,
           "weight_sparsity": totals["weight_sparsity"], "bit_sparsity": totals["bit_sparsity"],
           "mean_bits_per_weight": totals["mean_bits_per_weight"],
           "mean_bits_per_nonzero": totals["mean_bits_per_nonzero"], "weights_from": projected or qmodel.weight_source,
           "ckpt": str(spec.ckpt)}
    return trace, row, qmodel.model_name


def simulate_traces(traces: dict, accels: list[Accelerator], samples: int, progress: bool = True):
    """Per-layer compute cycles of every (variant, accelerator) as a cycles.csv DataFrame: ``compute_cycles``
    (sum over the `samples` traced images), ``samples`` and ``cycles_per_image`` (= compute_cycles / samples)."""
    import pandas as pd
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bitpruner.sim.engine import simulate_layer

    total = sum(len(t.layers) for t in traces.values()) * len(accels)
    rows = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("simulating", total=total)
        for variant, trace in traces.items():
            for accel in accels:
                for layer in trace.layers:
                    bar.update(task, description=f"{variant} on {accel.name}: {layer.name}")
                    cycles = simulate_layer(layer, accel.arch, accel.params, samples)
                    rows.append({"variant": variant, "accelerator": accel.name, "arch": accel.arch,
                                 "layer": layer.name, "type": layer.type, "compute_cycles": int(cycles),
                                 "samples": samples, "cycles_per_image": int(cycles) / samples})
                    bar.advance(task)
    return pd.DataFrame(rows)


def write_traces(out_dir: Path, traces: dict, export_dnnsim: bool) -> Path:
    """Our format per variant and DNNsim's layout, written beside and then swapped in whole."""
    from bitpruner.sim.dnnsim_io import save_dnnsim

    final = out_dir / TRACES_DIR
    tmp = out_dir / f".{TRACES_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for name, trace in traces.items():
        trace.save(tmp / name)
        if export_dnnsim:
            save_dnnsim(trace, tmp / DNNSIM_DIR)
    old = out_dir / f".{TRACES_DIR}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def headline_keys(metrics: dict, headline: str, projected: list[str] = ()) -> list[str]:
    """metrics.json (5-10 figures, whatever the number of accelerators): the headline variant's accuracy, bit
    sparsity and geomean speedups over the non-pruned and weight-pruned models, and each `project` variant's
    accuracy and geomean speedup over the non-pruned model; details.json has the rest (every variant x
    accelerator, per-accelerator speedups included)."""
    keys = [f"{headline}/test_acc", f"{headline}/bit_sparsity", "speedup_vs_nonpruned/geomean",
            "speedup_vs_weightpruned/geomean"]
    for name in projected:
        keys += [f"{name}/test_acc", f"{name}/speedup_vs_nonpruned/geomean"]
    return [*keys, "samples"]


def parent_keys(metrics: dict, headline: str, projected: list[str] = ()) -> list[str]:
    """What the pipeline's MLflow parent run shows: the headline keys plus the headline variant's speedup on
    every accelerator (the runs table has room for them; DVC's metrics file does not)."""
    per_accelerator = [k for k in metrics if k.startswith(("speedup_vs_nonpruned/", "speedup_vs_weightpruned/"))]
    keys = headline_keys(metrics, headline, projected)
    return [*keys, *(k for k in per_accelerator if k not in keys)]


def _notes(accels: list[Accelerator], samples: int, data: str, bits: dict) -> str:
    geometry = {(a.params.lanes, a.params.columns, a.params.rows, a.params.tiles) for a in accels}
    geo = "; ".join(f"lanes {g[0]}, columns {g[1]}, rows {g[2]}, tiles {g[3]}" for g in sorted(geometry))
    images = f"{samples} test image" + ("" if samples == 1 else "s")
    return (f"Traces: the first {images} of `{data}` (cycles: the mean per image), {bits['weights']}-bit weights "
            f"(per-layer scale), {bits['activations']}-bit activations (per-layer scale). Geometry: {geo}. "
            "Bit sparsity counts binary essential bits, zero weights included.")


def simulate(cfg: dict) -> dict:
    """Run the stage on a resolved config; returns the metrics written to `metrics.json`."""
    import pandas as pd

    from bitpruner.reports.comparison import (
        comparison_markdown,
        comparison_table,
        headline_metrics,
        second_reference,
    )
    from bitpruner.reports.plots import plot_layer_cycles, plot_speedups
    from bitpruner.sim.capture import first_samples
    from bitpruner.skeleton.outputs import headline_of, log_outputs, portable, write_stage_files
    from bitpruner.skeleton.session import stage_session
    from bitpruner.tracking import stage_run
    from bitpruner.training.builders import build_datamodule
    from bitpruner.utils.atomic import write_csv, write_text

    specs, accels = validate_simulate(cfg)
    with stage_session(STAGE, cfg) as session:
        baseline = cfg["baseline"]
        present = available_variants(specs, baseline)
        names = [s.name for s in present]
        projected = [s.name for s in present if s.project is not None]
        weight_pruned = second_reference(names, baseline, cfg.get("weight_pruned"))
        headline = cfg.get("headline") if cfg.get("headline") in names else names[-1]
        datamodule = build_datamodule(cfg)
        test_inputs = first_samples(datamodule.dataset("test"), cfg["samples"])

        traces, rows, model_name = {}, [], None
        for spec in present:
            trace, row, name = capture_variant(spec, cfg, datamodule, test_inputs)
            traces[spec.name], model_name = trace, model_name or name
            rows.append(portable(row, cfg["paths"]["root_dir"]))
        variants = pd.DataFrame(rows)
        tags = {"model": model_name or "unknown", "dataset": datamodule.name,
                "variants": ",".join(names), "accelerators": ",".join(a.name for a in accels)}

        with stage_run(STAGE, cfg, (cfg.get("logger") or {}).get("mlflow"), cfg["paths"]["root_dir"], tags=tags,
                       run_record=session.run_record) as run:
            sim_start = time.perf_counter()
            cycles = simulate_traces(traces, accels, cfg["samples"], progress=bool(cfg.get("progress", True)))
            sim_time = time.perf_counter() - sim_start
            table = comparison_table(cycles, variants, baseline, weight_pruned)
            metrics = headline_metrics(table, headline, baseline, weight_pruned)
            metrics["samples"] = cfg["samples"]
            with session.outputs() as out_dir:
                write_traces(out_dir, traces, bool(cfg.get("export_dnnsim", True)))
                write_csv(out_dir / "cycles.csv", cycles)
                write_csv(out_dir / "variants.csv", variants)
                write_csv(out_dir / "comparison.csv", table)
                title = f"{model_name or 'model'} on {datamodule.name}: variants x accelerators"
                write_text(out_dir / "comparison.md", comparison_markdown(
                    table, variants, baseline, weight_pruned, title=title, samples=cfg["samples"],
                    notes=_notes(accels, cfg["samples"], datamodule.name, cfg["bits"])))
                plot_speedups(table, out_dir / "speedups.png", baseline, weight_pruned)
                plot_layer_cycles(cycles, out_dir / "layer_cycles.png")
                timing = {"simulate_time_s": sim_time, "wall_time_s": session.elapsed()}
                write_stage_files(out_dir, cfg, metrics, timing, headline_keys(metrics, headline, projected))
            log_outputs(run, session.out_dir, metrics, timing, ARTIFACTS)
            run.log_headline(STAGE, {"simulate.accelerators": ",".join(a.name for a in accels),
                                     "simulate.samples": cfg["samples"]},
                             headline_of(metrics, parent_keys(metrics, headline, projected)),
                             [session.out_dir / "comparison.md", session.out_dir / "speedups.png"])
        session.run_record.unlink(missing_ok=True)
    print((session.out_dir / "comparison.md").read_text())
    return metrics
