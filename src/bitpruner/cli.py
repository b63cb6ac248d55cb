"""The `bitpruner` console script: one subcommand per library area.

Each area's module exposes `register(subparsers)`, which adds its parser and sets `func`;
heavy imports (torch, numba) happen inside `func`, so `bitpruner --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bitpruner.errors import BitprunerError

# module path -> registered lazily; a module that does not exist yet is skipped.
SUBCOMMAND_MODULES = (
    "bitpruner.sim.cli",
    "bitpruner.prune_weights.cli",
    "bitpruner.prune_bits.cli",
    "bitpruner.reports.cli",
    "bitpruner.plan.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitpruner", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                continue  # that area has no commands (yet)
            raise
        module.register(subparsers)
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
