"""The cross-network results: each network's `compare` folder -> results/ (results.md, results.csv,
plan_vs_uniform.csv, PNGs); the work is in `bitpruner.reports.results`.

    python pipelines/results.py --network lenet5=outputs/compare --network resnet20=<dir> \
        --plan-accelerator PragmaticW-bfs0 --plan-file lenet5=outputs/seeds/{seed}/plan/plan.yaml --out results
"""

from __future__ import annotations

import argparse
import sys

from bitpruner.entry import set_project_root

set_project_root(__file__)


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    from bitpruner.errors import ConfigError

    out: dict[str, str] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"{flag} {value!r}: expected NAME=PATH")
        if name in out:
            raise ConfigError(f"{flag} {name}=...: given twice")
        out[name] = path
    return out


def parser() -> argparse.ArgumentParser:
    from bitpruner.reports.results import Targets

    d = Targets()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--network", action="append", required=True, metavar="NAME=DIR",
                   help="a network and its compare stage's output folder (repeat per network)")
    p.add_argument("--plan-file", action="append", metavar="NAME=TEMPLATE",
                   help="a network's per-seed plan.yaml, {seed} filled per seed: its cycle budget "
                        "(default: the plan variant's own cycles)")
    p.add_argument("--plan-accelerator", default="PragmaticW-bfs0", help="the accelerator the plan targets")
    p.add_argument("--plan-variant", default="bit-pruned", help="the variant that is the plan (and the headline)")
    p.add_argument("--baseline", default="non-pruned", help="the reference variant (8-bit, not pruned)")
    p.add_argument("--weight-pruned", default="weight-pruned", help="the weight-pruned reference variant")
    p.add_argument("--out", default="results", help="output folder (default results)")
    p.add_argument("--speedup-axis", choices=("linear", "log"), default="linear", help="speedup plots' y axis")
    p.add_argument("--min-bit-sparsity", type=float, default=d.min_bit_sparsity, help="target 1 (fraction)")
    p.add_argument("--max-acc-loss", type=float, default=d.max_acc_loss, help="target 1 (points)")
    p.add_argument("--min-speedup-vs-nonpruned", type=float, default=d.min_speedup_vs_nonpruned, help="target 2")
    p.add_argument("--min-speedup-vs-weightpruned", type=float, default=d.min_speedup_vs_weightpruned,
                   help="target 2")
    p.add_argument("--pragmatic", nargs="+", default=list(d.pragmatic), help="target 2's accelerators")
    return p


def main(argv: list[str] | None = None) -> int:
    from bitpruner.errors import BitprunerError
    from bitpruner.reports.results import Targets, write_results

    args = parser().parse_args(argv)
    try:
        targets = Targets(args.min_bit_sparsity, args.max_acc_loss, args.min_speedup_vs_nonpruned,
                          args.min_speedup_vs_weightpruned, tuple(args.pragmatic))
        verdicts = write_results(_pairs(args.network, "--network"), args.out, args.plan_accelerator,
                                 _pairs(args.plan_file, "--plan-file"), targets, args.plan_variant, args.baseline,
                                 args.weight_pruned, args.speedup_axis)
    except BitprunerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for network, items in verdicts.items():
        for v in items:
            print(f"{network}: {v.mark}: {v.target}: {v.figures}")
    print(f"wrote {args.out}/results.md, results.csv, plan_vs_uniform.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
