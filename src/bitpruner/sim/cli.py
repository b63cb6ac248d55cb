"""`bitpruner sim`: simulate a network's DNNsim-layout traces on one architecture."""

from __future__ import annotations

import argparse
import json

_GEOMETRY_FLAGS = ("lanes", "columns", "rows", "tiles", "pe_width")
_OPTION_FLAGS = ("bits_first_stage", "column_registers", "group_size", "pe_serial_bits", "lookahead", "lookaside")
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
}


def register(subparsers) -> None:
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
    parser.add_argument("--booth", action="store_true", help="Booth-like recoding of the serial operand")
    parser.add_argument("--tactical", action="store_true",
                        help="BitTactical weight scheduling (DaDianNao, BitPragmatic, ShapeShifter)")
    parser.add_argument("--samples", type=int, default=1, metavar="N", help="samples to simulate (cycles add up)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bitpruner.sim.designs import check_options, design_of
    from bitpruner.sim.dnnsim_io import load_dnnsim
    from bitpruner.sim.engine import simulate_network
    from bitpruner.sim.params import SimParams

    design = design_of(args.arch, tactical=args.tactical)
    given = {f: getattr(args, f) for f in _GEOMETRY_FLAGS + _OPTION_FLAGS if getattr(args, f) is not None}
    params = SimParams.parse({"booth_encoding": args.booth, **given})
    check_options(design, params)  # before the traces load: a refused option fails fast
    arch = design.name
    trace = load_dnnsim(args.traces, args.network)
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
