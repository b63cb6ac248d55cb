"""`bitpruner sim`: simulate a network's DNNsim-layout traces on one architecture.

Every bad input (an argument, a flag value, a trace file, a value its widths cannot represent, a layer too large
to simulate) ends the command with status 1 and one line on stderr, before any cycle is simulated.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import math
import os

_GEOMETRY_FLAGS = ("lanes", "columns", "rows", "tiles", "pe_width")
_OPTION_FLAGS = ("bits_first_stage", "column_registers", "group_size", "pe_serial_bits", "lookahead", "lookaside",
                 "multipliers", "drop_sign_extension", "fixed_precision")
_BOOL_FLAGS = ("dataflow_choice", "bidirectional")  # Bitlet/BitWave/BitVert options (spec: new_designs.md)
_HELP = {
    "lanes": "multipliers per PE (default 16)",
    "columns": "PE columns = windows in lock-step (default 16)",
    "rows": "PE rows = filters per tile (default 16)",
    "tiles": "tiles = filter sets in lock-step (default 16)",
    "pe_width": "PE bit width; precisions may not exceed it (default 16)",
    "bits_first_stage": "BitPragmatic/PragmaticW first-stage shifter bits (default 0)",
    "column_registers": "run-ahead registers per column, conv only (default 0)",
    "group_size": "ShapeShifter columns per precision group (default 1)",
    "pe_serial_bits": "Loom activation bits per PE cycle (default 1)",
    "lookahead": "BitTactical lookahead h (default 2)",
    "lookaside": "BitTactical lookaside d (default 5)",
    "multipliers": "BitVert column bits per cycle m (default lanes / 2)",
    "drop_sign_extension": "BitVert: sign-extension columns skipped, at most (default 3)",
    "fixed_precision": "BitVert: constant cycles per step, weights ignored (default 0: data-aware)",
    "dataflow_choice": "BitWave: the min over BitSim's seven (lanes, rows, columns) (default off)",
    "bidirectional": "BitVert: a column costs its minority of ones or zeros (default on)",
}
# Largest value of any integer flag: sizes and counts beyond it cannot be simulated (numpy indexes in int64).
MAX_FLAG_VALUE = (1 << 31) - 1
# bits_first_stage: from 4 bits on every lane has its own shifter; 2**64 - 1 is already far beyond a 16-bit value.
MAX_BITS_FIRST_STAGE = 64
OPENBLAS_THREADS_ENV = "OPENBLAS_NUM_THREADS"


def register(subparsers) -> None:
    """Add the `sim` subcommand to `subparsers` (bitpruner.cli makes its argument errors one line, exit 1)."""
    parser = subparsers.add_parser(
        "sim",
        help="cycle-accurate bit-serial accelerator simulation (DNNsim-compatible)",
        description="Simulate compute cycles per layer of DNNsim-layout traces (DIR/models, DIR/net_traces).",
    )
    parser.add_argument("--traces", required=True, metavar="DIR", help="folder holding models/ and net_traces/")
    parser.add_argument("--network", required=True, metavar="NET", help="network name (a folder under models/)")
    # The registry (bitpruner.sim.designs) is not imported here: it loads numpy and pydantic, and --help stays fast.
    parser.add_argument("--arch", required=True, metavar="ARCH",
                        help="a design name or alias, any case (e.g. BitPragmatic, PragmaticW; an unknown name "
                             "lists them all)")
    for flag in _GEOMETRY_FLAGS + _OPTION_FLAGS:
        parser.add_argument(f"--{flag.replace('_', '-')}", type=int, default=None, metavar="N", help=_HELP[flag])
    for flag in _BOOL_FLAGS:
        parser.add_argument(f"--{flag.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=None,
                            help=_HELP[flag])
    parser.add_argument("--booth", action="store_true", help="Booth-like recoding of the serial operand")
    parser.add_argument("--tactical", action="store_true",
                        help="BitTactical weight scheduling (DaDianNao, BitPragmatic, ShapeShifter)")
    parser.add_argument("--samples", type=int, default=1, metavar="N", help="samples to simulate (cycles add up)")
    parser.add_argument("--memory-limit", type=float, default=None, metavar="GIB",
                        help="refuse a layer whose simulation needs more memory than this (default 8 GiB)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


def check_flags(args: argparse.Namespace, given: dict, design) -> None:
    """Upper bounds of the integer flags, --samples and --memory-limit (SimParams checks the lower ones).

    Raises ConfigError naming the flag's config key. A scheduled design's lookaside must stay within the lanes
    (its search map wraps lane offsets once), checked here before the map is built.
    """
    from bitpruner.errors import ConfigError
    from bitpruner.sim.params import WHERE

    for flag, value in given.items():
        if value > MAX_FLAG_VALUE:
            raise ConfigError(f"{WHERE}.{flag}: got {value}, expected an integer <= {MAX_FLAG_VALUE}")
    bfs = given.get("bits_first_stage", 0)
    if bfs > MAX_BITS_FIRST_STAGE:
        raise ConfigError(f"{WHERE}.bits_first_stage: got {bfs}, expected an integer in [0, {MAX_BITS_FIRST_STAGE}] "
                          f"(from 4 on every lane has its own shifter)")
    if not 1 <= args.samples <= MAX_FLAG_VALUE:
        raise ConfigError(f"--samples: got {args.samples}, expected an integer in [1, {MAX_FLAG_VALUE}]")
    if args.memory_limit is not None and not (math.isfinite(args.memory_limit) and args.memory_limit > 0):
        raise ConfigError(f"--memory-limit: got {args.memory_limit}, expected a number of GiB > 0")
    if design.scheduled:
        from bitpruner.sim.params import FIELDS

        lanes = given.get("lanes", FIELDS["lanes"].default)
        lookaside = given.get("lookaside", FIELDS["lookaside"].default)
        reach = -(-lookaside // 2)  # the 'T' search map's lane offsets go +1, -1, +2, -2, ...
        if reach > lanes:
            raise ConfigError(f"{WHERE}.lookaside: got {lookaside}, which reaches lane offset {reach} > "
                              f"lanes={lanes}; expected at most {2 * lanes}")


def run(args: argparse.Namespace) -> int:
    """Check the flags, load the traces, check their values and sizes, simulate, print; returns 0.

    Raises ConfigError / TraceError (printed as one line by `bitpruner.cli.main`, exit 1) for any bad input.
    """
    # The simulator calls no BLAS routine; numpy's OpenBLAS would start a thread per CPU at import (~80 ms of a
    # 0.25 s LeNet-5 run, issue 14). A user's own setting wins; no effect once numpy is loaded.
    os.environ.setdefault(OPENBLAS_THREADS_ENV, "1")
    # At exit, the interpreter's last garbage collection scans every object numpy and the run left (~25 ms of a
    # LeNet-5 run); frozen objects are skipped (nothing of ours needs finalizing then; jit.py does the same).
    atexit.register(gc.freeze)
    from bitpruner.sim.bounds import DEFAULT_MEMORY_LIMIT_GIB, check_memory
    from bitpruner.sim.designs import check_options, check_weights, design_of
    from bitpruner.sim.dnnsim_io import load_dnnsim
    from bitpruner.sim.engine import simulate_network
    from bitpruner.sim.params import parse_flags  # SimParams' checks without loading pydantic (params.py)

    design = design_of(args.arch, tactical=args.tactical)
    given = {f: getattr(args, f) for f in _GEOMETRY_FLAGS + _OPTION_FLAGS + _BOOL_FLAGS if getattr(args, f) is not None}
    params = parse_flags({"booth_encoding": args.booth, **given})
    check_options(design, params)  # before the traces load: a refused option fails fast
    check_flags(args, given, design)
    arch = design.name
    trace = load_dnnsim(args.traces, args.network)
    # Before any cycle is simulated: values the widths cannot represent, layers too large to simulate.
    trace.check_widths(params.pe_width)
    check_weights(design, trace.layers)  # 8-bit designs: wider weights refused
    limit = DEFAULT_MEMORY_LIMIT_GIB if args.memory_limit is None else args.memory_limit
    check_memory(trace, params, scheduled=design.scheduled, limit_gib=limit)
    results = simulate_network(trace, design, params, samples=args.samples, progress=not args.json)
    total = sum(r.compute_cycles for r in results)
    if args.json:
        doc = {
            "network": args.network,
            "arch": arch,
            "params": params.to_dict(),
            "layers": [{"name": r.name, "type": r.type, "compute_cycles": r.compute_cycles} for r in results],
            "total_compute_cycles": total,
        }
        print(json.dumps(doc))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.network} on {arch}")
    table.add_column("layer")
    table.add_column("type")
    table.add_column("compute cycles", justify="right")
    for r in results:
        table.add_row(r.name, r.type, f"{r.compute_cycles:,}")
    table.add_row("total", "", f"{total:,}", style="bold")
    Console().print(table)
    return 0
