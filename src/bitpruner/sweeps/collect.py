"""`python -m bitpruner.sweeps.collect DIR --out OUT`: the sweep summary of stage output folders (DVC matrix cells).

Every `DIR/<cell>/metrics.json` is a finished job named after its folder (e.g. `k1-per_weight`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bitpruner.errors import ConfigError
from bitpruner.sweeps.callback import write_summary


def collect(folder: Path, out: Path, title: str) -> list[Path]:
    cells = sorted(p.parent for p in Path(folder).glob("*/metrics.json"))
    if not cells:
        raise ConfigError(f"{folder}: no <cell>/metrics.json below it (run the sweep's stages first)")
    records = [{"num": i, "overrides": [cell.name], "status": "FINISHED", "folder": str(cell)}
               for i, cell in enumerate(cells)]
    return write_summary(records, Path(out), None, title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bitpruner.sweeps.collect", description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="folder of per-cell output folders, e.g. pipelines/sweep/outputs/cells")
    parser.add_argument("--out", required=True, help="where sweep_summary.{csv,md} and sweep_tradeoff.png go")
    parser.add_argument("--title", default="DVC sweep")
    args = parser.parse_args(argv)
    try:
        paths = collect(Path(args.dir), Path(args.out), args.title)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
