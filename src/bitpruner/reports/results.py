"""The cross-network results: each network's `compare` output (the comparison over seeds) in one document,
two tables and the verdicts on the project's targets.

Input per network: its compare folder (`comparison.csv`, per-seed and mean rows, `bitpruner.reports.seeds`) and,
optionally, a path template of the per-seed `plan.yaml` (``{seed}`` filled per seed) for the plan's cycle budget.
Outputs (`write_results`): `results.md`, `results.csv` (RESULTS_COLUMNS), `plan_vs_uniform.csv` (PLAN_COLUMNS),
and per network `speedup_<network>.png` and `accuracy_vs_bit_sparsity_<network>.png`.

Targets (`Targets`; every threshold is an argument of `pipelines/results.py`):
1. the headline (bit-pruned) variant's bit sparsity mean >= 98% at a test accuracy loss vs the non-pruned 8-bit
   model <= 0.3 points (the mean over seeds of the paired per-seed difference);
2. PragmaticW (bfs0 and bfs4): the geometric mean over the two accelerators of the headline variant's speedup,
   per seed, then the mean over seeds: >= 4x vs non-pruned and >= 3.5x vs weight-pruned;
3. the plan (variant `bit-pruned`) is at least as accurate (mean test accuracy over seeds) as every uniform-k
   variant whose cycles per image on the plan's accelerator fit the plan's budget in every seed. The budget of a
   seed is the ``cycles <= B`` of its plan.yaml `constraint` (objective min_drop), else its `predicted_cycles`;
   without plan files, the plan variant's own simulated cycles of that seed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bitpruner.errors import ConfigError, DataError
from bitpruner.reports.comparison import _md_table, geomean, ordered_unique
from bitpruner.reports.seeds import GEOMEAN, read_csv_table, seeds_markdown, split_long

RESULTS_COLUMNS = ("network", "variant", "accelerator", "seeds", "images", "test_acc_mean", "test_acc_sd",
                   "bit_sparsity_mean", "cycles_per_image_mean", "speedup_vs_nonpruned_mean",
                   "speedup_vs_weightpruned_mean")
PLAN_COLUMNS = ("network", "budget", "seeds", "test_acc_mean", "test_acc_sd", "bit_sparsity_mean", "cycles")
PLAN_BUDGET = "plan"
PLAN_TARGET = "plan_vs_uniform"
UNIFORM = re.compile(r"^uniform-k(\d+)$")
CONSTRAINT = re.compile(r"^\s*cycles\s*<=\s*([0-9.eE+-]+)\s*$")
NETWORK_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")  # it names PNG files


@dataclass(frozen=True)
class Targets:
    """The thresholds of the targets (module docstring); fractions for sparsity, points for accuracy."""

    min_bit_sparsity: float = 0.98
    max_acc_loss: float = 0.3
    min_speedup_vs_nonpruned: float = 4.0
    min_speedup_vs_weightpruned: float = 3.5
    pragmatic: tuple[str, ...] = ("PragmaticW-bfs0", "PragmaticW-bfs4")


@dataclass
class Verdict:
    """One target of one network: its key, its wording, met (True / False; None when the data to judge it is
    absent) and its figures."""

    key: str
    target: str
    met: bool | None
    figures: str

    @property
    def mark(self) -> str:
        return {True: "met", False: "not met", None: "n/a"}[self.met]


@dataclass
class NetworkResults:
    """One network's compare output: per-seed rows, mean rows, and the plan budgets per seed (None: none given)."""

    name: str
    folder: Path
    per_seed: pd.DataFrame
    means: pd.DataFrame
    budgets: dict[int, float] | None = None
    predicted: dict[int, float | None] | None = None  # the plan files' predicted cycles per seed
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in ordered_unique(self.per_seed["seed"])]

    @property
    def images(self) -> int:
        return int(self.means["images"].iloc[0])


# -- reading -------------------------------------------------------------------------------------

def read_compare(name: str, folder: str | Path) -> NetworkResults:
    """A network's compare folder (its comparison.csv); DataError naming the file when missing or malformed."""
    if not NETWORK_NAME.match(name):
        raise ConfigError(f"--network {name!r}: expected a name of letters, digits and _ . + - (it names files)")
    folder = Path(folder)
    path = folder / "comparison.csv"
    table = read_csv_table(path, f"network {name}", "the compare stage for it")
    per_seed, means = split_long(table, str(path))
    return NetworkResults(name=name, folder=folder, per_seed=per_seed, means=means)


def _plan_doc(path: str | Path) -> dict:
    """A plan.yaml as a mapping; DataError naming the file when it is missing, not YAML or not a mapping."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist (run the plan stage, or leave out --plan-file)")
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        raise DataError(f"{path} is not YAML") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path} is not a plan file (a mapping with `constraint`)")
    return doc


def _predicted(doc: dict) -> float | None:
    predicted = doc.get("predicted_cycles")
    if isinstance(predicted, (int, float)) and not isinstance(predicted, bool) and predicted > 0:
        return float(predicted)
    return None


def plan_budget(path: str | Path) -> float:
    """The cycle budget of a plan.yaml: B of its ``constraint: cycles <= B`` (objective min_drop), else its
    ``predicted_cycles`` (objective min_cycles: the plan's own cycles). DataError naming the file otherwise."""
    doc = _plan_doc(path)
    match = CONSTRAINT.match(str(doc.get("constraint", "")))
    if match:
        return float(match.group(1))
    predicted = _predicted(doc)
    if predicted is not None:
        return predicted
    raise DataError(f"{path}: constraint={doc.get('constraint')!r} holds no `cycles <= B` and there is no "
                    "predicted_cycles")


def plan_budgets(template: str, seeds: list[int]) -> dict[int, float]:
    """{seed: budget} of the plan files `template` names (``{seed}`` filled per seed)."""
    if len(seeds) > 1 and "{seed}" not in template:
        raise ConfigError(f"--plan-file {template!r}: expected a template holding {{seed}} (seeds {seeds})")
    return {s: plan_budget(template.format(seed=s)) for s in seeds}


def plan_predictions(template: str, seeds: list[int]) -> dict[int, float | None]:
    """{seed: the plan's predicted cycles per image (plan.yaml `predicted_cycles`; None when absent)} of the plan
    files `template` names, to set beside the simulated cycles after fine-tuning."""
    return {s: _predicted(_plan_doc(template.format(seed=s))) for s in seeds}


# -- tables --------------------------------------------------------------------------------------

def results_rows(net: NetworkResults) -> pd.DataFrame:
    """results.csv rows of one network: a row per (variant, accelerator), the geomean rows left out."""
    rows = net.means[net.means["accelerator"] != GEOMEAN]
    out = pd.DataFrame({
        "network": net.name, "variant": rows["variant"], "accelerator": rows["accelerator"],
        "seeds": rows["seeds"].astype(int), "images": rows["images"].astype(int),
        "test_acc_mean": rows["test_acc"], "test_acc_sd": rows["test_acc_sd"],
        "bit_sparsity_mean": rows["bit_sparsity"], "cycles_per_image_mean": rows["cycles_per_image"],
        "speedup_vs_nonpruned_mean": rows["speedup_vs_nonpruned"],
        "speedup_vs_weightpruned_mean": rows["speedup_vs_weightpruned"]})
    return out[list(RESULTS_COLUMNS)].reset_index(drop=True)


def uniform_variants(variants) -> dict[int, str]:
    """{k: variant name} of the variants named uniform-k<k>, by k."""
    found = {int(m.group(1)): v for v in variants if (m := UNIFORM.match(str(v)))}
    return dict(sorted(found.items()))


def _check_accelerator(net: NetworkResults, accelerator: str) -> None:
    accels = [a for a in ordered_unique(net.means["accelerator"]) if a != GEOMEAN]
    if accelerator not in accels:
        raise ConfigError(f"--plan-accelerator {accelerator!r}: network {net.name} has no such accelerator; "
                          f"expected one of {', '.join(accels)}")


def plan_vs_uniform(net: NetworkResults, accelerator: str, plan_variant: str = "bit-pruned") -> pd.DataFrame:
    """plan_vs_uniform.csv rows of one network: the plan (`plan_variant`, budget ``plan``) and each uniform-k
    variant (budget ``uniform-k<k>``): seeds, test accuracy mean and sd, bit sparsity mean, and `cycles` = the mean
    cycles per image on `accelerator` (the plan's). Empty when the network has no plan variant."""
    _check_accelerator(net, accelerator)
    on_accel = net.means[net.means["accelerator"] == accelerator].set_index("variant")
    names = [(PLAN_BUDGET, plan_variant)] if plan_variant in on_accel.index else []
    names += [(f"uniform-k{k}", v) for k, v in uniform_variants(on_accel.index).items()]
    rows = [{"network": net.name, "budget": budget, "seeds": int(on_accel.at[v, "seeds"]),
             "test_acc_mean": on_accel.at[v, "test_acc"], "test_acc_sd": on_accel.at[v, "test_acc_sd"],
             "bit_sparsity_mean": on_accel.at[v, "bit_sparsity"], "cycles": on_accel.at[v, "cycles_per_image"]}
            for budget, v in names]
    return pd.DataFrame(rows, columns=list(PLAN_COLUMNS))


def seed_budgets(net: NetworkResults, accelerator: str, plan_variant: str) -> dict[int, float]:
    """Each seed's cycle budget: the plan files' (net.budgets) or, without them, the plan variant's own simulated
    cycles per image on `accelerator` in that seed."""
    if net.budgets is not None:
        missing = [s for s in net.seeds if s not in net.budgets]
        if missing:
            raise DataError(f"network {net.name}: no plan budget for seed(s) {missing}")
        return {s: float(net.budgets[s]) for s in net.seeds}
    rows = net.per_seed[(net.per_seed["variant"] == plan_variant) & (net.per_seed["accelerator"] == accelerator)]
    return {int(s): float(c) for s, c in zip(rows["seed"], rows["cycles_per_image"], strict=True)}


def uniform_fits(net: NetworkResults, accelerator: str, plan_variant: str = "bit-pruned") -> dict[int, list[bool]]:
    """{k: [fits in seed s, for s in net.seeds]}: whether uniform-k's cycles per image on `accelerator` are within
    that seed's budget (`seed_budgets`)."""
    budgets = seed_budgets(net, accelerator, plan_variant)
    on_accel = net.per_seed[net.per_seed["accelerator"] == accelerator]
    fits = {}
    for k, variant in uniform_variants(ordered_unique(on_accel["variant"])).items():
        cycles = on_accel[on_accel["variant"] == variant].set_index("seed")["cycles_per_image"]
        fits[k] = [float(cycles[s]) <= budgets[s] for s in net.seeds]
    return fits


# -- targets -------------------------------------------------------------------------------------

def _mean_row(net: NetworkResults, variant: str, accelerator: str = GEOMEAN) -> pd.Series | None:
    rows = net.means[(net.means["variant"] == variant) & (net.means["accelerator"] == accelerator)]
    return rows.iloc[0] if len(rows) else None


def target_bit_sparsity(net: NetworkResults, targets: Targets, headline: str, baseline: str) -> Verdict:
    """Target 1: bit sparsity mean >= min_bit_sparsity at accuracy loss (paired, mean) <= max_acc_loss."""
    name = (f"{headline} bit sparsity >= {100 * targets.min_bit_sparsity:g}% at <= {targets.max_acc_loss:g} point "
            f"test accuracy loss vs {baseline} (8-bit)")
    row = _mean_row(net, headline)
    if row is None or _mean_row(net, baseline) is None:
        return Verdict("bit_sparsity", name, None, f"no {headline!r} or {baseline!r} variant")
    loss, loss_sd = -float(row["acc_diff_vs_nonpruned"]), float(row["acc_diff_vs_nonpruned_sd"])
    sparsity = float(row["bit_sparsity"])
    met = sparsity >= targets.min_bit_sparsity and loss <= targets.max_acc_loss
    reference = float(_mean_row(net, baseline)["test_acc"])
    return Verdict("bit_sparsity", name, met,
                   f"bit sparsity {100 * sparsity:.2f}% ± {100 * float(row['bit_sparsity_sd']):.2f}, accuracy loss "
                   f"{loss:.2f} ± {loss_sd:.2f} points (test acc {float(row['test_acc']):.2f} vs {reference:.2f})")


def pragmatic_speedup(net: NetworkResults, variant: str, column: str, accelerators) -> tuple[float, float]:
    """(mean, sd) over seeds of the per-seed geometric mean over `accelerators` of `variant`'s `column` speedup."""
    from bitpruner.reports.seeds import mean_sd

    rows = net.per_seed[(net.per_seed["variant"] == variant) & (net.per_seed["accelerator"].isin(accelerators))]
    per_seed = [geomean(part[column].tolist()) for _, part in rows.groupby("seed", sort=False)
                if len(part) == len(accelerators)]
    return mean_sd(per_seed) if len(per_seed) == len(net.seeds) else (math.nan, math.nan)


def target_speedups(net: NetworkResults, targets: Targets, headline: str, baseline: str,
                    weight_pruned: str) -> list[Verdict]:
    """Target 2: PragmaticW geomean (bfs0, bfs4) speedups of the headline variant vs both references."""
    accels = " and ".join(targets.pragmatic)
    out = []
    for column, reference, threshold in (("speedup_vs_nonpruned", baseline, targets.min_speedup_vs_nonpruned),
                                         ("speedup_vs_weightpruned", weight_pruned,
                                          targets.min_speedup_vs_weightpruned)):
        name = f"{headline} geomean speedup on {accels} >= {threshold:g}x vs {reference}"
        mean, sd = pragmatic_speedup(net, headline, column, targets.pragmatic)
        if math.isnan(mean):
            out.append(Verdict(column, name, None,
                               f"no {headline!r} speedups vs {reference!r} on {accels} in every seed"))
        else:
            out.append(Verdict(column, name, mean >= threshold,
                               f"{mean:.2f}x ± {sd:.2f} (per-seed geometric mean over {accels}, mean over seeds)"))
    return out


def target_plan(net: NetworkResults, accelerator: str, plan_variant: str = "bit-pruned") -> Verdict:
    """Target 3: the plan at least as accurate (mean over seeds) as every uniform k fitting its budget in every
    seed."""
    name = f"plan ({plan_variant}) at least as accurate as every uniform k within its cycle budget on {accelerator}"
    table = plan_vs_uniform(net, accelerator, plan_variant).set_index("budget")
    if PLAN_BUDGET not in table.index:
        return Verdict(PLAN_TARGET, name, None, f"no {plan_variant!r} variant")
    fits = uniform_fits(net, accelerator, plan_variant)
    if not fits:
        return Verdict(PLAN_TARGET, name, None, "no uniform-k variants")
    budgets = seed_budgets(net, accelerator, plan_variant)
    plan_acc = float(table.at[PLAN_BUDGET, "test_acc_mean"])
    inside = [k for k, f in fits.items() if all(f)]
    beaten = [k for k in inside if float(table.at[f"uniform-k{k}", "test_acc_mean"]) > plan_acc]
    budget_text = ", ".join(f"{budgets[s]:,.0f}" for s in net.seeds)
    within = ", ".join(f"k={k} ({float(table.at[f'uniform-k{k}', 'test_acc_mean']):.2f}%)" for k in inside) or "none"
    return Verdict(PLAN_TARGET, name, not beaten,
                   f"plan {plan_acc:.2f}%; budget per seed {budget_text} cycles; uniform within budget in every "
                   f"seed: {within}" + (f"; more accurate: k={', '.join(map(str, beaten))}" if beaten else ""))


def evaluate_targets(net: NetworkResults, targets: Targets, plan_accelerator: str, headline: str = "bit-pruned",
                     baseline: str = "non-pruned", weight_pruned: str = "weight-pruned") -> list[Verdict]:
    """Every target's verdict for one network (in the order of the module docstring)."""
    return [target_bit_sparsity(net, targets, headline, baseline),
            *target_speedups(net, targets, headline, baseline, weight_pruned),
            target_plan(net, plan_accelerator, headline)]


# -- writing -------------------------------------------------------------------------------------

def prediction_text(net: NetworkResults, accelerator: str, plan_variant: str) -> str:
    """One sentence: per seed, the plan's predicted cycles (plan.yaml) and the plan variant's simulated cycles
    after fine-tuning on `accelerator`; empty without plan files. The prediction counts the bit columns of the
    projected input model, so it is exact when fine-tuning leaves every lane group's column count as it was."""
    if not net.predicted:
        return ""
    rows = net.per_seed[(net.per_seed["variant"] == plan_variant) & (net.per_seed["accelerator"] == accelerator)]
    simulated = dict(zip(rows["seed"].astype(int), rows["cycles_per_image"].astype(float), strict=True))
    pairs, exact = [], 0
    for s in net.seeds:
        p, c = net.predicted.get(s), simulated.get(s)
        if p is None or c is None:
            continue
        exact += int(round(p) == round(c))
        pairs.append(f"{p:,.0f} / {c:,.0f}")
    if not pairs:
        return ""
    return (f" The plan's predicted cycles (plan.yaml) / simulated after fine-tuning, per seed: {', '.join(pairs)}"
            f" (equal in {exact} of {len(pairs)} seeds).")


def plan_markdown(table: pd.DataFrame, fits: dict[int, list[bool]], budgets: dict[int, float],
                  accelerator: str, prediction: str = "") -> str:
    """The plan vs uniform table of one network (cycles on the plan's accelerator); `prediction`: a sentence
    added to the lead (`prediction_text`)."""
    rows = []
    for _, r in table.iterrows():
        match = UNIFORM.match(str(r["budget"]))
        fit = "–" if match is None else f"{sum(fits[int(match.group(1))])}/{len(budgets)} seeds"
        rows.append([str(r["budget"]), f"{r['test_acc_mean']:.2f} ± {r['test_acc_sd']:.2f}",
                     f"{100 * r['bit_sparsity_mean']:.1f}%", f"{r['cycles']:,.0f}", fit])
    header = ["budget", "test acc (%)", "bit sparsity", f"cycles / image on {accelerator}", "within plan budget"]
    budget = ", ".join(f"{b:,.0f}" for b in budgets.values())
    return (f"Cycles per image on {accelerator}, the plan's accelerator; the plan's cycle budget per seed: "
            f"{budget}. A uniform k counts against the plan when it is within budget in every seed.{prediction}\n\n"
            + _md_table(header, rows, ["l", "r", "r", "r", "r"]))


def network_section(net: NetworkResults, plan_table: pd.DataFrame, plan_accelerator: str, plan_variant: str,
                    baseline: str, weight_pruned: str, pngs: tuple[str, str]) -> str:
    parts = [f"## {net.name}", "",
             seeds_markdown(net.means, net.seeds, net.images, baseline, weight_pruned,
                            title=f"{net.name}: variants x accelerators", heading="###"), ""]
    if len(plan_table):
        fits = uniform_fits(net, plan_accelerator, plan_variant)
        budgets = seed_budgets(net, plan_accelerator, plan_variant)
        prediction = prediction_text(net, plan_accelerator, plan_variant)
        parts += ["### Plan vs uniform k", "", plan_markdown(plan_table, fits, budgets, plan_accelerator, prediction),
                  ""]
    parts += ["### Plots", "", f"![speedups of {net.name}]({pngs[0]})",
              f"![accuracy vs bit sparsity of {net.name}]({pngs[1]})", "", "### Targets", ""]
    parts += [f"- **{v.mark}**: {v.target}: {v.figures}" for v in net.verdicts]
    return "\n".join(parts) + "\n"


def write_results(networks: Mapping[str, str | Path], out: str | Path, plan_accelerator: str = "PragmaticW-bfs0",
                  plan_files: Mapping[str, str] | None = None, targets: Targets | None = None,
                  plan_variant: str = "bit-pruned", baseline: str = "non-pruned",
                  weight_pruned: str = "weight-pruned", speedup_axis: str = "linear") -> dict[str, list[Verdict]]:
    """Read each network's compare folder ({name: folder}), write results.md, results.csv, plan_vs_uniform.csv
    and the per-network PNGs into `out`; returns {network: verdicts}. `plan_files`: {name: plan.yaml template
    with {seed}} (networks left out use their plan variant's cycles as the budget). DataError / ConfigError (one
    line) on a missing folder or file, an unknown accelerator or a malformed table."""
    from bitpruner.reports.seeds import plot_accuracy_vs_bit_sparsity, plot_speedups_sd
    from bitpruner.utils.atomic import write_csv, write_text

    if not networks:
        raise ConfigError("--network: expected at least one NAME=DIR")
    targets = targets or Targets()
    plan_files = dict(plan_files or {})
    unknown = [n for n in plan_files if n not in networks]
    if unknown:
        raise ConfigError(f"--plan-file {unknown[0]}=...: no --network {unknown[0]}")
    out = Path(out)
    nets = []
    for name, folder in networks.items():
        net = read_compare(name, folder)
        if name in plan_files:
            net.budgets = plan_budgets(plan_files[name], net.seeds)
            net.predicted = plan_predictions(plan_files[name], net.seeds)
        nets.append(net)
    results, plans, sections, verdicts = [], [], [], {}
    for net in nets:
        table = plan_vs_uniform(net, plan_accelerator, plan_variant)
        net.verdicts = evaluate_targets(net, targets, plan_accelerator, plan_variant, baseline, weight_pruned)
        verdicts[net.name] = net.verdicts
        pngs = (f"speedup_{net.name}.png", f"accuracy_vs_bit_sparsity_{net.name}.png")
        plot_speedups_sd(net.means, out / pngs[0], baseline, speedup_axis,
                         title=f"{net.name}: speedup over {baseline} (mean ± sd, {len(net.seeds)} seeds)")
        plot_accuracy_vs_bit_sparsity(net.means, out / pngs[1],
                                      title=f"{net.name}: accuracy vs bit sparsity ({len(net.seeds)} seeds)")
        results.append(results_rows(net))
        plans.append(table)
        sections.append(network_section(net, table, plan_accelerator, plan_variant, baseline, weight_pruned, pngs))
    summary = _md_table(["network", "seeds", "target", "verdict"],
                        [[n.name, str(len(n.seeds)), v.target, f"**{v.mark}**"] for n in nets for v in n.verdicts],
                        ["l", "r", "l", "l"])
    head = ["# Results", "", "Each network's figures are means ± sample sd over its seeds "
            "(`bitpruner.reports.seeds`); targets are judged on the means.", "", summary, ""]
    write_text(out / "results.md", "\n".join(head) + "\n" + "\n".join(sections))
    write_csv(out / "results.csv", pd.concat(results, ignore_index=True)[list(RESULTS_COLUMNS)])
    write_csv(out / "plan_vs_uniform.csv", pd.concat(plans, ignore_index=True)[list(PLAN_COLUMNS)])
    return verdicts


__all__ = ["PLAN_COLUMNS", "RESULTS_COLUMNS", "Targets", "Verdict", "evaluate_targets", "plan_budget",
           "plan_predictions", "plan_vs_uniform", "prediction_text", "read_compare", "results_rows", "uniform_fits",
           "write_results"]
