"""`bitpruner compare`: rebuild the comparison table of a simulate run (e.g. against another reference)."""

from __future__ import annotations

import argparse

from bitpruner.reports import report_cli


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="rebuild comparison.md/.csv from a simulate stage's cycles.csv and variants.csv",
        description="Re-render the variants x accelerators comparison of a simulate output folder.",
    )
    parser.add_argument("dir", metavar="DIR", help="the simulate stage's output folder (outputs/simulate)")
    parser.add_argument("--baseline", default="non-pruned", help="reference variant of speedup_vs_nonpruned")
    parser.add_argument("--weight-pruned", default="weight-pruned",
                        help="reference variant of speedup_vs_weightpruned (skipped when absent)")
    parser.add_argument("--out", metavar="DIR", default=None, help="write here instead of printing only")
    parser.set_defaults(func=run)
    report_cli.register(subparsers)  # `bitpruner report` lives in its own module


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from bitpruner.errors import ConfigError
    from bitpruner.reports.comparison import comparison_markdown, comparison_table, second_reference
    from bitpruner.utils.atomic import write_csv, write_text

    folder = Path(args.dir)
    frames = {}
    for name in ("cycles.csv", "variants.csv"):
        if not (folder / name).is_file():
            raise ConfigError(f"{folder / name} does not exist (run the simulate stage first)")
        frames[name] = pd.read_csv(folder / name)
    cycles, variants = frames["cycles.csv"], frames["variants.csv"]
    names = list(variants["variant"])
    if args.baseline not in names:
        raise ConfigError(f"--baseline {args.baseline!r}: expected one of {names}")
    weight_pruned = second_reference(names, args.baseline, args.weight_pruned)
    table = comparison_table(cycles, variants, args.baseline, weight_pruned)
    samples = int(cycles["samples"].iloc[0]) if "samples" in cycles.columns and len(cycles) else None
    markdown = comparison_markdown(table, variants, args.baseline, weight_pruned, title=f"Comparison: {folder}",
                                   samples=samples)
    print(markdown)
    if args.out:
        out = Path(args.out)
        write_csv(out / "comparison.csv", table)
        write_text(out / "comparison.md", markdown)
    return 0
