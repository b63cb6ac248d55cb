"""The `bitpruner` console script: one subcommand per library area.

Each area's module exposes `register(subparsers)`, which adds its parser and sets `func`;
heavy imports (torch, numba) happen inside `func`, so `bitpruner --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bitpruner.errors import BitprunerError

# Every module here must exist and import (a failing import is an error, never skipped); each keeps its
# heavy imports inside its commands. prune_bits has no command-line entry point (it runs as a DVC stage).
SUBCOMMAND_MODULES = (
    "bitpruner.sim.cli",
    "bitpruner.prune_weights.cli",
    "bitpruner.reports.cli",
    "bitpruner.plan.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitpruner", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BitprunerError as exc:
        print(f"bitpruner {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
