"""The `plan` stage: per-layer sensitivity and cycles for each candidate k, the Pareto frontier, the plan.

Input: a trained (usually weight-pruned) checkpoint. Outputs in `outputs/plan/`:
- `plan.yaml`: `layers: {name: k}` (what `prune_bits.plan_file` reads) plus the mode, objective, predicted
  drop and cycles, and the uniform-k plans for comparison;
- `sensitivity.csv` (layer x mode x k: val acc/loss, drop, cycles), `frontier.csv` (every non-dominated
  plan of every mode), `frontier.png`, `metrics.json`, `config.yaml`;
- `rerank.csv` (with `plan.rerank` on): the candidates a short fine-tune each re-ranked (`plan/rerank.py`),
  their probe val loss / accuracy and which was chosen; empty but for its header when re-ranking is off.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bitpruner.plan.config import PlanConfig, validate_plan_stage
from bitpruner.plan.frontier import Option, Plan, min_cycles_plan, min_drop_plan, pareto_frontier, plan_of
from bitpruner.quant.fixed_point import QuantConfig
from bitpruner.sim.accelerators import Accelerator
from bitpruner.utils.atomic import atomic_path, write_csv

STAGE = "plan"
ARTIFACTS = ("plan.yaml", "sensitivity.csv", "frontier.csv", "frontier.png", "rerank.csv")
HEADLINE = ("predicted_drop", "predicted_cycles", "predicted_speedup", "unpruned_cycles", "same_budget_uniform_k",
            "same_budget_uniform_cycles", "samples")
DROP_COLUMN = {"acc": "drop", "loss": "loss_increase"}


def measure(model, datamodule, cfg: dict, plan_cfg: PlanConfig, quant: QuantConfig,
            accel: Accelerator) -> pd.DataFrame:
    """sensitivity.csv: val acc/loss and cycles of every (layer, mode, k); k = bits - 1 always included."""
    from bitpruner.plan.cycles import projection_cycles
    from bitpruner.plan.sensitivity import projection_sensitivity
    from bitpruner.sim.capture import first_samples, quantize_model
    from bitpruner.training.evaluate import evaluate

    levels = sorted(set(plan_cfg.candidates) | {quant.bits - 1})
    val = list(datamodule.val_dataloader())  # materialized once: dozens of evaluations follow
    sens = projection_sensitivity(model, lambda m: evaluate(m, val), levels, plan_cfg.modes, quant,
                                  accel.params.lanes, plan_cfg.encoding)
    calib = datamodule.calibration_batches(cfg["calibration"]["batches"], cfg["calibration"].get("batch_size"))
    qmodel = quantize_model(model, calib, None, act_bits=cfg["bits"]["activations"], wgt_bits=quant.bits)
    trace = qmodel.capture(first_samples(datamodule.dataset("test"), cfg["samples"]))
    cycles = projection_cycles(model, trace, levels, plan_cfg.modes, quant, accel, cfg["samples"], plan_cfg.encoding)
    table = sens.merge(cycles, on=["layer", "mode", "k"], how="left", validate="one_to_one")
    unpruned = table[table["k"] == quant.bits - 1].set_index(["layer", "mode"])["cycles"]
    table["layer_speedup"] = [unpruned[(n, m)] / max(c, 1) for n, m, c in
                              zip(table["layer"], table["mode"], table["cycles"], strict=True)]
    table.attrs = dict(sens.attrs)
    return table


def layer_options(table: pd.DataFrame, mode: str, candidates, drop_metric: str) -> dict[str, list[Option]]:
    """{layer: [Option(k, drop, cycles)]} of one mode, layers in model order, k in candidate order."""
    rows = table[(table["mode"] == mode) & (table["k"].isin(candidates))]
    column = DROP_COLUMN[drop_metric]
    out: dict[str, list[Option]] = {}
    for name in dict.fromkeys(rows["layer"]):
        part = rows[rows["layer"] == name].set_index("k")
        out[name] = [Option(k=int(k), drop=float(part.at[k, column]), cycles=int(part.at[k, "cycles"]))
                     for k in candidates]
    return out


def uniform_plans(options: dict[str, list[Option]], candidates, resolution: float) -> dict[int, Plan]:
    """Every layer at the same k, for each candidate k."""
    return {int(k): plan_of(options, [i] * len(options), resolution) for i, k in enumerate(candidates)}


def cycle_budget(plan_cfg: PlanConfig, unpruned_cycles: int) -> float:
    """The min_drop objective's cycle bound: max_cycles, or the unpruned cycles / min_speedup."""
    return plan_cfg.max_cycles if plan_cfg.max_cycles is not None else unpruned_cycles / plan_cfg.min_speedup


def choose(frontier: list[Plan], plan_cfg: PlanConfig, unpruned_cycles: int) -> tuple[Plan, str]:
    """The plan the objective picks, and the constraint in words."""
    if plan_cfg.objective == "min_cycles":
        return min_cycles_plan(frontier, plan_cfg.max_drop), f"predicted drop <= {plan_cfg.max_drop}"
    budget = cycle_budget(plan_cfg, unpruned_cycles)
    return min_drop_plan(frontier, budget), f"cycles <= {budget:.0f}"


def same_budget_uniform(uniform: dict[int, Plan], chosen: Plan) -> tuple[int, Plan]:
    """The uniform k that fits the chosen plan's cycles with the smallest drop (the cheapest k if none fits)."""
    fits = [k for k, p in uniform.items() if p.cycles <= chosen.cycles]
    if not fits:
        k = min(uniform, key=lambda k: uniform[k].cycles)
        return k, uniform[k]
    k = min(fits, key=lambda k: (uniform[k].drop, uniform[k].cycles))
    return k, uniform[k]


def frontier_table(frontiers: dict[str, list[Plan]], chosen: Plan, mode: str, unpruned: int,
                   resolution: float) -> pd.DataFrame:
    rows = []
    for m, plans in frontiers.items():
        for p in plans:
            rows.append({"mode": m, "predicted_drop": p.drop, "discretized_drop": p.units * resolution,
                         "cycles": p.cycles, "speedup": unpruned / max(p.cycles, 1),
                         "chosen": m == mode and p == chosen, **{f"k_{n}": k for n, k in p.ks.items()}})
    return pd.DataFrame(rows)


def plot_frontier(path: Path, frontiers: dict[str, list[Plan]], uniform: dict[str, dict[int, Plan]],
                  chosen: Plan, mode: str, drop_label: str, title: str) -> Path:
    """Predicted drop vs total cycles: each mode's frontier (steps), its uniform-k plans, the chosen plan."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for i, (m, plans) in enumerate(frontiers.items()):
        color = f"C{i}"
        ax.step([p.drop for p in plans], [p.cycles for p in plans], where="post", color=color, marker=".",
                markersize=3, label=f"frontier, {m}")
        for k, p in uniform[m].items():
            ax.scatter([p.drop], [p.cycles], marker="s", facecolors="none", edgecolors=color, zorder=3)
            ax.annotate(f"k={k}", (p.drop, p.cycles), textcoords="offset points", xytext=(4, 3), fontsize=7,
                        color=color)
    ax.scatter([chosen.drop], [chosen.cycles], marker="*", s=180, color="red", zorder=4,
               label=f"chosen ({mode}): " + ",".join(str(k) for k in chosen.ks.values()))
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_yscale("log")
    ax.set_xlabel(f"predicted {drop_label} (sum over layers, symlog)")
    ax.set_ylabel("total compute cycles")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(path)


def rerank_section(plan_cfg: PlanConfig, predicted: Plan, table: pd.DataFrame | None) -> dict:
    """plan.yaml's `rerank`: off, or the probe settings, the frontier's own choice and the chosen probe figures."""
    rr = plan_cfg.rerank
    if table is None:
        return {"enabled": False}
    row = table[table["chosen"]].iloc[0]
    return {"enabled": True, "metric": rr.metric, "schedule": rr.schedule, "epochs": rr.epochs, "top": rr.top,
            "candidates": len(table), "chosen_source": str(row["source"]),
            "probe_val_loss": round(float(row["probe_val_loss"]), 6),
            "probe_val_acc": round(float(row["probe_val_acc"]), 4),
            "frontier_choice": {n: int(k) for n, k in predicted.ks.items()}}


def plan_document(chosen: Plan, plan_cfg: PlanConfig, constraint: str, unpruned: int, accel: Accelerator,
                  uniform: dict[int, Plan], budget_k: int, reference: dict, rerank: dict | None = None) -> dict:
    """Everything plan.yaml holds beside `layers` (plain types, for yaml.safe_dump)."""
    def figures(p: Plan) -> dict:
        return {"predicted_drop": round(p.drop, 6), "predicted_cycles": int(p.cycles),
                "predicted_speedup": round(unpruned / max(p.cycles, 1), 4)}

    return {"mode": plan_cfg.mode, "objective": plan_cfg.objective, "constraint": constraint,
            "drop_metric": plan_cfg.drop_metric, "accelerator": accel.name, **figures(chosen),
            "unpruned_cycles": int(unpruned), "reference_val_acc": round(float(reference["val_acc"]), 4),
            "uniform": {int(k): figures(p) for k, p in uniform.items()},
            "same_budget_uniform_k": int(budget_k), "rerank": rerank or {"enabled": False}}


def plan(cfg: dict) -> dict:
    """Run the stage on a resolved config; returns the metrics written to `metrics.json`."""
    from bitpruner.plan.rerank import RERANK_COLUMNS, rerank
    from bitpruner.prune_bits.plan_file import write_plan_file
    from bitpruner.skeleton.inputs import file_digest, load_input_model, model_name
    from bitpruner.skeleton.outputs import headline_of, log_outputs, write_stage_files
    from bitpruner.skeleton.session import stage_session
    from bitpruner.tracking import stage_run
    from bitpruner.training.builders import build_datamodule

    plan_cfg, quant, accel = validate_plan_stage(cfg)
    with stage_session(STAGE, cfg) as session:
        datamodule = build_datamodule(cfg)
        model, payload = load_input_model(cfg["input_ckpt"], datamodule.name)
        tags = {"model": model_name(payload.get("model_cfg") or {}), "dataset": datamodule.name,
                "input_ckpt_sha": file_digest(cfg["input_ckpt"])}
        logger_cfg = (cfg.get("logger") or {}).get("mlflow")
        with stage_run(STAGE, cfg, logger_cfg, cfg["paths"]["root_dir"], tags=tags,
                       run_record=session.run_record) as run:
            table = measure(model, datamodule, cfg, plan_cfg, quant, accel)
            unpruned = int(table[(table["k"] == quant.bits - 1) & (table["mode"] == plan_cfg.mode)]["cycles"].sum())
            frontiers, uniform = {}, {}
            for m in plan_cfg.modes:
                options = layer_options(table, m, plan_cfg.candidates, plan_cfg.drop_metric)
                frontiers[m] = pareto_frontier(options, plan_cfg.resolution)
                uniform[m] = uniform_plans(options, plan_cfg.candidates, plan_cfg.resolution)
            chosen, constraint = choose(frontiers[plan_cfg.mode], plan_cfg, unpruned)
            predicted, ranked = chosen, None
            if plan_cfg.rerank.active:
                chosen, ranked = rerank(model, datamodule, cfg, plan_cfg, quant, accel.params.lanes,
                                        frontiers[plan_cfg.mode], uniform[plan_cfg.mode],
                                        cycle_budget(plan_cfg, unpruned), unpruned, datamodule.num_classes)
            budget_k, budget_plan = same_budget_uniform(uniform[plan_cfg.mode], chosen)
            section = rerank_section(plan_cfg, predicted, ranked)
            doc = plan_document(chosen, plan_cfg, constraint, unpruned, accel, uniform[plan_cfg.mode], budget_k,
                                table.attrs, section)
            metrics = {
                "mode": plan_cfg.mode, "objective": plan_cfg.objective, "constraint": constraint,
                "accelerator": accel.name, "k": dict(chosen.ks),
                "reference_val_acc": float(table.attrs["val_acc"]),
                "reference_val_loss": float(table.attrs["val_loss"]),
                "predicted_drop": chosen.drop, "predicted_cycles": int(chosen.cycles), "unpruned_cycles": unpruned,
                "predicted_speedup": unpruned / max(chosen.cycles, 1),
                "frontier_size": {m: len(f) for m, f in frontiers.items()},
                "same_budget_uniform_k": budget_k, "same_budget_uniform_drop": budget_plan.drop,
                "same_budget_uniform_cycles": int(budget_plan.cycles),
                "uniform_drop": {str(k): p.drop for k, p in uniform[plan_cfg.mode].items()},
                "uniform_cycles": {str(k): int(p.cycles) for k, p in uniform[plan_cfg.mode].items()},
                "samples": cfg["samples"],
                "rerank_candidates": 0 if ranked is None else len(ranked),
            }
            if ranked is not None:
                metrics.update(rerank_probe_val_loss=section["probe_val_loss"],
                               rerank_probe_val_acc=section["probe_val_acc"],
                               rerank_changed=dict(predicted.ks) != dict(chosen.ks))
            with session.outputs() as out_dir:
                write_plan_file(out_dir / "plan.yaml", chosen.ks, **doc)
                write_csv(out_dir / "sensitivity.csv", table)
                write_csv(out_dir / "frontier.csv", frontier_table(frontiers, chosen, plan_cfg.mode, unpruned,
                                                                   plan_cfg.resolution))
                write_csv(out_dir / "rerank.csv", ranked if ranked is not None else pd.DataFrame(
                    columns=list(RERANK_COLUMNS)))
                drop_label = "accuracy drop (points)" if plan_cfg.drop_metric == "acc" else "val loss increase"
                plot_frontier(out_dir / "frontier.png", frontiers, uniform, chosen, plan_cfg.mode, drop_label,
                              f"{datamodule.name}, {accel.name}: chosen plan ({constraint}) vs uniform k")
                timing = {"wall_time_s": session.elapsed()}
                write_stage_files(out_dir, cfg, metrics, timing, HEADLINE)
            log_outputs(run, session.out_dir, metrics, timing, ARTIFACTS)
            run.log_headline(STAGE, {"plan.k": ",".join(f"{n}={k}" for n, k in chosen.ks.items()),
                                     "plan.accelerator": accel.name}, headline_of(metrics, HEADLINE))
            print_summary(metrics, uniform[plan_cfg.mode], unpruned)
        session.run_record.unlink(missing_ok=True)
    return metrics


def print_summary(m: dict, uniform: dict[int, Plan], unpruned: int) -> None:
    ks = ", ".join(f"{n}={k}" for n, k in m["k"].items())
    print(f"plan ({m['mode']}, {m['constraint']}): {ks}; predicted drop {m['predicted_drop']:.2f}, "
          f"cycles {m['predicted_cycles']} (x{m['predicted_speedup']:.2f} vs unpruned {unpruned})")
    for k, p in uniform.items():
        print(f"  uniform k={k}: predicted drop {p.drop:.2f}, cycles {p.cycles} (x{unpruned / max(p.cycles, 1):.2f})")
