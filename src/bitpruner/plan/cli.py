"""`bitpruner plan`: the plan stage's sensitivity, cycles, frontier and plan.yaml for a given checkpoint."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_MODEL = "outputs/prune_weights/model.ckpt"
DEFAULT_OUT = "outputs/plan"
DEFAULT_ACCELERATOR = "pragmaticw_bfs0"
# As in conf/plan.yaml: the trace's activation width and the training batches that calibrate it.
ACT_BITS = 8
CALIBRATION_BATCHES = 8


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan", help="per-layer bit budgets k on the Pareto frontier of predicted accuracy drop and cycles",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"a stage's model.ckpt (default {DEFAULT_MODEL})")
    parser.add_argument("--config", default=None,
                        help="the stage config.yaml whose `data` and `quant` to use (default: beside --model)")
    parser.add_argument("--accelerator", default=DEFAULT_ACCELERATOR,
                        help="target accelerator: a YAML file, or a name in conf/accelerator/ "
                             f"(default {DEFAULT_ACCELERATOR})")
    parser.add_argument("--candidates", default="1,2,3,4,7", help="comma-separated k (default 1,2,3,4,7)")
    parser.add_argument("--mode", choices=("per_weight", "group_columns"), default="group_columns",
                        help="the projection the plan is for (both are measured)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--max-drop", type=float, default=None,
                        help="minimize cycles with predicted val-accuracy drop <= this (points; default 0.5)")
    budget.add_argument("--min-speedup", type=float, default=None,
                        help="minimize the drop with cycles <= unpruned cycles / this")
    budget.add_argument("--max-cycles", type=int, default=None, help="minimize the drop with cycles <= this")
    parser.add_argument("--drop-metric", choices=("acc", "loss"), default="acc")
    parser.add_argument("--resolution", type=float, default=0.01, help="drop grid of the DP (default 0.01)")
    parser.add_argument("--samples", type=int, default=1, help="test images traced and simulated (default 1)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.set_defaults(func=run)


def find_accelerator(spec: str) -> Path:
    """A YAML path as given, else conf/accelerator/<spec>.yaml under the working directory or $BITPRUNER_ROOT."""
    from bitpruner.errors import ConfigError

    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        if path.is_file():
            return path
        raise ConfigError(f"--accelerator {spec}: file not found")
    roots = [Path.cwd()] + ([Path(os.environ["BITPRUNER_ROOT"])] if os.environ.get("BITPRUNER_ROOT") else [])
    for root in roots:
        found = root / "conf" / "accelerator" / f"{spec}.yaml"
        if found.is_file():
            return found
    raise ConfigError(f"--accelerator {spec}: no conf/accelerator/{spec}.yaml under {', '.join(map(str, roots))} "
                      "(pass a YAML file)")


def read_accelerator_yaml(path: Path) -> dict:
    """An accelerator config file as a mapping; ConfigError (one line naming the file) when it is not YAML."""
    import yaml

    from bitpruner.errors import ConfigError
    from bitpruner.utils.messages import one_line

    try:
        node = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"--accelerator {path}: not a readable YAML file ({one_line(exc)})") from None
    if not isinstance(node, dict):
        raise ConfigError(f"--accelerator {path}: expected a mapping with arch and parameters, got {node!r}")
    return node


def parse_candidates(text: str) -> list[int]:
    from bitpruner.errors import ConfigError

    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--candidates {text!r}: expected comma-separated integers, e.g. 1,2,3,4,7") from None


def build_config(args: argparse.Namespace) -> dict:
    """The resolved stage config the plan stage expects, from the flags and the model's stage config."""

    from bitpruner.skeleton.inputs import read_stage_config

    config = Path(args.config) if args.config else Path(args.model).with_name("config.yaml")
    stage_cfg = read_stage_config(config)
    plan_cfg = {"candidates": parse_candidates(args.candidates), "mode": args.mode,
               "drop_metric": args.drop_metric, "resolution": args.resolution}
    if args.min_speedup is not None or args.max_cycles is not None:
        plan_cfg.update(objective="min_drop", min_speedup=args.min_speedup, max_cycles=args.max_cycles)
    elif args.max_drop is not None:
        plan_cfg["max_drop"] = args.max_drop
    out = Path(args.out)
    return {
        "stage": "plan", "seed": stage_cfg.get("seed", 0), "input_ckpt": str(args.model), "data": stage_cfg["data"],
        "quant": stage_cfg.get("quant") or {"bits": 8}, "plan": plan_cfg, "samples": args.samples,
        "accelerator": read_accelerator_yaml(find_accelerator(args.accelerator)),
        "bits": {"activations": ACT_BITS}, "calibration": {"batches": CALIBRATION_BATCHES, "batch_size": None},
        # The lock that keeps two runs off one folder sits beside it (`.<out>.plan.lock`).
        "paths": {"output_dir": str(out), "root_dir": str(out), "ckpt_dir": str(out.with_name(f".{out.name}.plan"))},
        "logger": {"mlflow": None},
    }


def run(args: argparse.Namespace) -> int:
    from bitpruner.plan.stage import plan

    plan(build_config(args))
    print(f"wrote {Path(args.out) / 'plan.yaml'} (use it with prune_bits.plan_file=...) and the frontier beside it")
    return 0
