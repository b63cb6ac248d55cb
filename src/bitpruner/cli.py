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
# heavy imports inside its commands. The prune_bits stage runs as a DVC stage; its post-training bit-level methods
# (bit-flip, BBS) have the `project` command.
SUBCOMMAND_MODULES = (
    "bitpruner.sim.cli",
    "bitpruner.prune_weights.cli",
    "bitpruner.reports.cli",
    "bitpruner.plan.cli",
    "bitpruner.prune_bits.project_cli",
)


# `bitpruner sim ...` registers the sim parser alone: a small simulation's whole process is mostly start-up,
# and the other areas' modules need not load for it (issue 14, README "Simulator speed").
ALONE = {"sim": "bitpruner.sim.cli"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every area's subcommands, or with `command`'s alone when ALONE names it."""
    parser = argparse.ArgumentParser(prog="bitpruner", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (ALONE[command],) if command in ALONE else SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
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
