"""The `bitpruner` console script: one subcommand per library area.

Each area's module exposes `register(subparsers)`, which adds its parser and sets `func`;
heavy imports (torch, numba) happen inside `func`, so `bitpruner --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

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
    for sub in (parser, *subparsers.choices.values()):
        one_line_usage_errors(sub)
    return parser


USAGE_EXIT = 1  # argument errors exit like every other bad input: status 1, one line on stderr


def one_line_usage_errors(parser: argparse.ArgumentParser) -> None:
    """Make `parser` answer bad arguments (missing, unknown, ill-typed) with one line naming them and where to read
    the usage, exit status USAGE_EXIT, instead of argparse's usage block and status 2. Unknown arguments of a
    subcommand are reported by the subcommand (argparse would hand them to the top-level parser)."""

    def error(message: str):
        print(f"{parser.prog}: error: {' '.join(message.split())} (see {parser.prog} --help)", file=sys.stderr)
        sys.exit(USAGE_EXIT)

    parser.error = error
    if parser.prog == "bitpruner":
        return
    parse_known = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        parsed, extras = parse_known(args, namespace)
        if extras:
            error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, []

    parser.parse_known_args = parse_known_args


def first_seed_model(args: argparse.Namespace) -> None:
    """Point `args.model` at the default pipeline's first seed when it was left at its command's default.

    A command's DEFAULT_MODEL is a hand-run stage's `outputs/<stage>/model.ckpt`; `make repro` writes
    `outputs/seeds/<seed>/<stage>/model.ckpt` instead (one folder per seed of params.yaml). When the default is
    absent, the lowest seed's checkpoint is used and stdout says so; when neither exists, nothing changes and the
    command reports the missing file after checking its other arguments. An explicit --model is never replaced.
    """
    module = sys.modules.get(getattr(getattr(args, "func", None), "__module__", ""))
    default = getattr(module, "DEFAULT_MODEL", None)
    if default is None or getattr(args, "model", None) != default or Path(default).exists():
        return
    default = Path(default)
    stage, seeds = default.parent.name, default.parent.parent / "seeds"
    found = sorted((p for p in seeds.glob(f"*/{stage}/{default.name}") if p.parent.parent.name.isdigit()),
                   key=lambda p: int(p.parent.parent.name))
    if not found:
        return
    args.model = str(found[0])
    # stdout, with the command's other progress lines: stderr stays one line per error
    print(f"bitpruner {args.command}: --model {args.model} (the first seed of `make repro`; {default} does not "
          "exist)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        first_seed_model(args)
        return int(args.func(args) or 0)
    except BitprunerError as exc:
        print(f"bitpruner {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an input or output path the file system refuses (a folder, no permission, no space)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"bitpruner {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
