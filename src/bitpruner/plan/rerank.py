"""Re-rank candidate plans by a short fine-tune each (the `plan.rerank` node).

The frontier ranks plans by a drop measured WITHOUT retraining, which over-predicts what prune_bits'
fine-tuning loses (docs/plan_rerank.md). Here each candidate - the best `rerank.top` in-budget frontier plans
by predicted drop, plus every in-budget uniform-k plan, so the choice can never be worse than a uniform k in
the probe - is fine-tuned briefly with prune_bits' own machinery (`BitPruningCallback`, `ClassifierModule`,
the `optimizer` group), then scored on the val split. The plan's cycles are not touched: they stay the exact
per-layer sums of the sensitivity table, which counts the bit columns of the projected input model (so they equal
the simulated cycles after fine-tuning unless fine-tuning changes a lane group's column count, which k allows
only where the group used fewer than k columns; results.md sets predicted and simulated side by side).

The probe's schedule (`rerank.schedule`):
- `oneshot`: every layer at its target k from the first batch, `epochs` passes over the training data;
- `step`: prune_bits' step schedule (k = start_k, start_k - 1, ... down to each target, then the target)
  compressed into the same amount of data: P = start_k - min(target) + 1 phases of `epochs / P` passes each
  (Lightning epochs shortened with `limit_train_batches`), so every candidate sees the same number of batches.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import lightning as L
import pandas as pd

from bitpruner.plan.config import PlanConfig, RerankConfig
from bitpruner.plan.frontier import Plan
from bitpruner.prune_bits.callback import BitPruningCallback
from bitpruner.prune_bits.config import BitPruneConfig
from bitpruner.quant.fixed_point import QuantConfig
from bitpruner.training.builders import build_optimizers
from bitpruner.training.evaluate import evaluate
from bitpruner.training.module import ClassifierModule

RERANK_COLUMNS = ("candidate", "source", "predicted_drop", "cycles", "speedup", "probe_val_loss", "probe_val_acc",
                  "chosen")


@dataclass(frozen=True)
class Candidate:
    """A plan to probe and where it came from (`frontier #i`, `uniform k=..`, or both joined by `+`)."""

    plan: Plan
    source: str


def candidates(frontier: list[Plan], uniform: dict[int, Plan], budget: float, top: int) -> list[Candidate]:
    """The best `top` frontier plans with cycles <= budget (by predicted drop, ties fewer cycles), then every
    uniform plan with cycles <= budget (by k); a plan in both is listed once, in its first place."""
    feasible = sorted((p for p in frontier if p.cycles <= budget), key=lambda p: (p.drop, p.cycles))[:top]
    out: dict[tuple, Candidate] = {}
    for i, p in enumerate(feasible):
        out.setdefault(tuple(p.ks.items()), Candidate(p, f"frontier #{i + 1}"))
    for k in sorted(uniform):
        p = uniform[k]
        if p.cycles > budget:
            continue
        key = tuple(p.ks.items())
        if key in out:
            out[key] = Candidate(out[key].plan, f"{out[key].source}+uniform k={k}")
        else:
            out[key] = Candidate(p, f"uniform k={k}")
    return list(out.values())


def probe_schedule(rr: RerankConfig, targets: dict[str, int], batches: int) -> tuple[int, int, int, int]:
    """(start_k, Lightning epochs per k step, Lightning epochs, batches per Lightning epoch) of a probe over
    `rr.epochs` passes of `batches` training batches.

    `oneshot` is the step schedule starting at the targets (one phase). Raises nothing: any `epochs >= 1` fits.
    """
    start_k = rr.start_k if rr.schedule == "step" else 0
    phases = max(0, start_k - min(targets.values())) + 1
    per_phase = max(1, math.ceil(rr.epochs / phases))  # Lightning epochs per step (a phase may span several)
    limit = max(1, round(rr.epochs * batches / (phases * per_phase)))
    return start_k, per_phase, phases * per_phase, min(limit, batches)


def probe(model, datamodule, val: list, targets: dict[str, int], cfg: dict, plan_cfg: PlanConfig,
          quant: QuantConfig, lanes: int, num_classes: int) -> dict[str, float]:
    """Fine-tune a copy of `model` with bit projections at `targets` ({layer: k}); its val loss and acc (%).

    Seeded with `cfg["seed"]` before each probe, so a candidate's result does not depend on the others.
    The model is left untouched. Runs on the CPU, where the plan stage evaluates.
    """
    rr = plan_cfg.rerank
    batches = len(datamodule.train_dataloader())
    start_k, per_step, epochs, limit = probe_schedule(rr, targets, batches)
    bp = BitPruneConfig(mode=plan_cfg.mode, lanes=lanes, encoding=plan_cfg.encoding, schedule="step",
                        start_k=start_k, epochs_per_step=per_step)
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    network = copy.deepcopy(model).train()
    optimizer, _ = build_optimizers({"optimizer": cfg["optimizer"]})  # constant rate: the probe is short
    module = ClassifierModule(network, optimizer, None, num_classes)
    trainer = L.Trainer(max_epochs=epochs, limit_train_batches=limit, limit_val_batches=0, num_sanity_val_steps=0,
                        accelerator="cpu", devices=1, deterministic=True, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[BitPruningCallback(bp, quant, targets)])
    trainer.fit(module, train_dataloaders=datamodule.train_dataloader())
    # The parametrization projects at the target in forward: this is the model prune_bits would export.
    result = evaluate(network, val)
    return {"val_loss": float(result["loss"]), "val_acc": float(result["acc"])}


def choose(rows: list[dict], cands: list[Candidate], metric: str, margin: float,
           both_metrics: bool = False) -> int:
    """Index of the chosen candidate: the best probe `metric` (ties: fewer cycles, then the earlier candidate), but
    a plan that is not uniform must beat the best in-budget uniform plan clearly: its val loss lower by more than
    `margin` (relative), or its val accuracy higher by more than `margin` points; with `both_metrics` it must also
    be no worse on the other metric (val accuracy for val_loss, val loss for val_acc). Why: a probe of two epochs
    on 500 val images separates plans only coarsely (docs/plan_rerank.md: near-ties in the probe went either way
    after the full fine-tune; on ResNet-20 a plan with 12% lower probe loss but lower probe accuracy ended below
    uniform k=1), and the uniform plan is the one to beat, so near-ties and disagreements go to it."""
    sign = 1.0 if metric == "val_loss" else -1.0
    order = sorted(range(len(cands)), key=lambda i: (sign * rows[i][f"probe_{metric}"], cands[i].plan.cycles, i))
    best = order[0]
    uniform = [i for i in order if "uniform" in cands[i].source]
    if not uniform or best == uniform[0]:
        return best
    value, reference = rows[best][f"probe_{metric}"], rows[uniform[0]][f"probe_{metric}"]
    clearly = value < reference * (1.0 - margin) if metric == "val_loss" else value > reference + margin
    if clearly and both_metrics:
        other = "val_acc" if metric == "val_loss" else "val_loss"
        value, reference = rows[best][f"probe_{other}"], rows[uniform[0]][f"probe_{other}"]
        clearly = value >= reference if other == "val_acc" else value <= reference
    return best if clearly else uniform[0]


def rerank(model, datamodule, cfg: dict, plan_cfg: PlanConfig, quant: QuantConfig, lanes: int,
           frontier: list[Plan], uniform: dict[int, Plan], budget: float, unpruned: int,
           num_classes: int) -> tuple[Plan, pd.DataFrame]:
    """The candidate `choose` picks by the probe `rerank.metric` (val_loss lowest / val_acc highest; near-ties with
    the best in-budget uniform plan go to it), and rerank.csv's table (one row per candidate, `k_<layer>` columns).

    Prints one line per candidate (its plan, probe figures, seconds).
    """
    rr = plan_cfg.rerank
    cands = candidates(frontier, uniform, budget, rr.top)
    val = list(datamodule.val_dataloader())
    rows = []
    for i, c in enumerate(cands):
        started = time.perf_counter()
        figures = probe(model, datamodule, val, c.plan.ks, cfg, plan_cfg, quant, lanes, num_classes)
        ks = ",".join(str(k) for k in c.plan.ks.values())
        print(f"rerank {i + 1}/{len(cands)} [{ks}] ({c.source}): predicted drop {c.plan.drop:.2f}, "
              f"cycles {c.plan.cycles}; probe val loss {figures['val_loss']:.4f}, val acc {figures['val_acc']:.2f} "
              f"({time.perf_counter() - started:.1f} s)", flush=True)
        rows.append({"candidate": i + 1, "source": c.source, "predicted_drop": c.plan.drop, "cycles": c.plan.cycles,
                     "speedup": unpruned / max(c.plan.cycles, 1), "probe_val_loss": figures["val_loss"],
                     "probe_val_acc": figures["val_acc"], "chosen": False,
                     **{f"k_{n}": k for n, k in c.plan.ks.items()}})
    best = choose(rows, cands, rr.metric, rr.margin, rr.both_metrics)
    rows[best]["chosen"] = True
    table = pd.DataFrame(rows)
    return cands[best].plan, table[[*RERANK_COLUMNS, *[c for c in table.columns if c.startswith("k_")]]]
