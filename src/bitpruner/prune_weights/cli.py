"""`bitpruner sensitivity`: per-layer accuracy under one-layer magnitude pruning (no retraining)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_MODEL = "outputs/train/model.ckpt"
DEFAULT_LEVELS = "0.5,0.7,0.8,0.9,0.95"
DEFAULT_OUT = "outputs/sensitivity"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sensitivity", help="accuracy with one layer magnitude-pruned at a time",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"a stage's model.ckpt (default {DEFAULT_MODEL})")
    parser.add_argument("--config", default=None,
                        help="the stage config.yaml whose `data` to evaluate on (default: beside --model)")
    parser.add_argument("--sparsities", default=DEFAULT_LEVELS, help=f"comma-separated (default {DEFAULT_LEVELS})")
    parser.add_argument("--layers", default=None, help="comma-separated layer names (default: every conv/linear)")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"folder for sensitivity.csv/.png (default {DEFAULT_OUT})")
    parser.set_defaults(func=run)


def parse_levels(text: str) -> list[float]:
    from bitpruner.errors import ConfigError

    try:
        levels = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--sparsities {text!r}: expected comma-separated numbers in [0, 1)") from None
    bad = [v for v in levels if not 0.0 <= v < 1.0]
    if not levels or bad:
        raise ConfigError(f"--sparsities {text!r}: expected comma-separated numbers in [0, 1)")
    return levels


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bitpruner.models.checkpoint import load_model_checkpoint
    from bitpruner.prune_weights.sensitivity import layer_sensitivity, plot_sensitivity
    from bitpruner.skeleton.inputs import read_stage_config
    from bitpruner.training.builders import build_datamodule
    from bitpruner.training.evaluate import evaluate
    from bitpruner.utils.atomic import write_csv

    levels = parse_levels(args.sparsities)
    model, _ = load_model_checkpoint(args.model)
    config = Path(args.config) if args.config else Path(args.model).with_name("config.yaml")
    datamodule = build_datamodule(read_stage_config(config))
    loader = datamodule.val_dataloader() if args.split == "val" else datamodule.test_dataloader()
    layers = [n.strip() for n in args.layers.split(",")] if args.layers else None

    table = layer_sensitivity(model, lambda m: evaluate(m, loader)["acc"], levels, layers=layers)
    out = Path(args.out)
    write_csv(out / "sensitivity.csv", table)
    plot_sensitivity(table, out / "sensitivity.png", title=f"Layer sensitivity ({args.split} accuracy)")
    drops = table.pivot(index="layer", columns="sparsity", values="drop").loc[table["layer"].unique()]
    console = Console()
    console.print(f"baseline {args.split} accuracy {table.attrs['baseline']:.2f}%; accuracy drop (points):")
    console.print(drops.round(2).to_string())
    console.print(f"wrote {out / 'sensitivity.csv'} and {out / 'sensitivity.png'}")
    return 0
