"""Whole-process speed of ``bitpruner sim`` against DNNsim on the same traces, design by design.

Run: ``python benchmarks/sim_vs_dnnsim.py [--dnnsim PATH] [--runs N] [--workloads ...] [--designs ...]``.
It writes the workloads of ``sim_workloads.py`` (a ResNet-18 conv2_x layer + fc 512 x 1000, a ResNet-18-shaped
network without its 7 x 7 first layer, LeNet-5) in DNNsim's layout, then runs each (workload, design) as whole
processes: ``bitpruner sim ... --json`` and, with ``--dnnsim PATH`` (a DNNsim binary, isakedo/DNNsim 4748a60,
run from a folder holding the traces and links to ``DRAMSim2/ini`` and ``DRAMSim2/system.ini`` of its checkout,
the binary's folder), DNNsim on a batch file with one experiment (task Cycles, dataflow WindowFirstOutS,
quantised traces, ``--fast_mode``). The two alternate run by run; the table shows median wall seconds, the
ratio ours / DNNsim (< 1: ours is faster), peak resident memory of each process, and whether every layer's
compute cycles agree in every run. CPU seconds (user + system, median) are printed beside the wall times:
on a shared machine they vary less than wall time does. Known DNNsim defects are left out of that check and named in the table
(BitTacticalE/P on fc: DNNsim reads the promoted activations from the wrong column; docs/simulator.md).
Without ``--dnnsim`` it prints ours alone.

Timings include everything a user waits for: interpreter start-up, imports, numba's on-disk cache (warm it
with one untimed run of each design first, as the script does), trace loading and the simulation. Our
process decides itself whether numba pays (``BITPRUNER_JIT``, default auto). The load average is printed
before and after: on a busy machine the numbers are noisy.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sim_workloads import WORKLOADS

from bitpruner.sim.dnnsim_io import save_dnnsim

# DNNsim reads its DRAM model relative to the working directory: link these from its checkout (the binary's
# folder); DRAMSim2 writes its own results under the working directory's DRAMSim2/results.
DRAMSIM = Path("DRAMSim2")
DNNSIM_INI = (DRAMSIM / "ini", DRAMSIM / "system.ini")
KIB_PER_MIB = 1024
NO_BYTECODE_ENV = "PYTHONDONTWRITEBYTECODE"


@dataclass(frozen=True)
class Case:
    """One design with its options: our CLI flags and DNNsim's experiment fields."""

    label: str
    arch: str  # our design name
    flags: tuple[str, ...] = ()
    dnnsim_arch: str = ""  # DNNsim's architecture (BitTactical designs: the base design + tactical)
    dnnsim_fields: dict = field(default_factory=dict)
    fc_defect: bool = False  # DNNsim's fc numbers are wrong for this design (left out of the check)


TACTICAL = {"tactical": "true", "lookahead_h": 2, "lookaside_d": 5, "search_shape": '"T"'}
BFS2_CR2_BOOTH = ("--bits-first-stage", "2", "--column-registers", "2", "--booth")
CASES = {
    c.label: c
    for c in (
        Case("DaDianNao", "DaDianNao"),
        Case("Stripes", "Stripes"),
        Case("Laconic", "Laconic"),
        Case("BitPragmatic", "BitPragmatic"),
        Case("BitPragmatic bfs2+CR2+Booth", "BitPragmatic", BFS2_CR2_BOOTH, "BitPragmatic",
             {"bits_first_stage": 2, "column_registers": 2, "booth_encoding": "true"}),
        Case("ShapeShifter", "ShapeShifter"),
        Case("Loom", "Loom"),
        Case("BitTactical", "BitTactical", (), "DaDianNao", TACTICAL),
        Case("BitTacticalE", "BitTacticalE", (), "BitPragmatic", TACTICAL, fc_defect=True),
        Case("BitTacticalP", "BitTacticalP", (), "ShapeShifter", TACTICAL, fc_defect=True),
    )
}


def batch_file(network: str, case: Case) -> str:
    """DNNsim's batch prototxt for one experiment (defaults: 16 lanes/columns/rows/tiles, pe_width 16)."""
    fields = {"architecture": f'"{case.dnnsim_arch or case.arch}"', "task": '"Cycles"',
              "dataflow": '"WindowFirstOutS"', **case.dnnsim_fields}
    body = "\n".join(f"        {k}: {v}" for k, v in fields.items())
    return (f'simulate {{\n    network: "{network}"\n    model: "CSV"\n    data_type: "Fixed"\n'
            f"    data_width: 16\n    quantised: true\n    batch: 0\n    experiment {{\n{body}\n    }}\n}}\n")


def ours_command(trace_dir: Path, network: str, case: Case) -> list[str]:
    script = Path(sys.executable).with_name("bitpruner")
    entry = [str(script)] if script.exists() else [sys.executable, "-m", "bitpruner.cli"]
    return [*entry, "sim", "--traces", str(trace_dir), "--network", network, "--arch", case.arch,
            *case.flags, "--json"]


def ours_cycles(stdout: str) -> dict[str, int]:
    return {layer["name"]: layer["compute_cycles"] for layer in json.loads(stdout)["layers"]}


def dnnsim_cycles(results: Path) -> dict[str, int]:
    """compute_cycles per layer from the one result CSV of a run (its 'Layer scalar results' block)."""
    files = sorted(results.rglob("*_cycles.csv"))
    if len(files) != 1:
        raise RuntimeError(f"expected one DNNsim result file under {results}, found {len(files)}")
    text = files[0].read_text().split("Layer scalar results:")[1].split("Network scalar results:")[0]
    rows = list(csv.DictReader(io.StringIO(text.strip())))
    return {row["Layer"]: int(row["compute_cycles"]) for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dnnsim", type=Path, metavar="PATH", help="a DNNsim binary (isakedo/DNNsim 4748a60)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each process (median; default 3)")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--designs", nargs="+", default=list(CASES), choices=list(CASES), metavar="DESIGN",
                        help=f"designs to run (default all: {', '.join(CASES)})")
    parser.add_argument("--workdir", type=Path, help="keep the traces and DNNsim's results here")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: expected >= 1")
    dnnsim = args.dnnsim.resolve() if args.dnnsim else None
    if dnnsim and not all((dnnsim.parent / path).exists() for path in DNNSIM_INI):
        parser.error(f"--dnnsim {dnnsim}: expected {' and '.join(map(str, DNNSIM_INI))} beside the binary "
                     "(in its checkout)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sim_vs_dnnsim_"))
    work.mkdir(parents=True, exist_ok=True)
    traces = {name: WORKLOADS[name]() for name in args.workloads}
    for trace in traces.values():
        save_dnnsim(trace, work)
    if dnnsim:
        (work / DRAMSIM).mkdir(exist_ok=True)
        for path in DNNSIM_INI:
            if not (work / path).exists():
                (work / path).symlink_to(dnnsim.parent / path)
    print(f"load: {_load()} (1/5/15 min), cpus: {os.cpu_count()}, traces in {work}", flush=True)
    if os.environ.get(NO_BYTECODE_ENV):
        print(f"note: {NO_BYTECODE_ENV} is set, so every run of ours compiles the project's sources (~0.07 s); "
              "unset it to time what a user waits for", flush=True)

    header = "| workload | design | ours (s) | ours CPU (s) | ours (MiB) |"
    header += (" DNNsim (s) | DNNsim CPU (s) | DNNsim (MiB) | ours / DNNsim | CPU ours / DNNsim | compute cycles |"
               if dnnsim else "")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in args.workloads:
        network = traces[name].name
        for label in args.designs:
            case = CASES[label]
            cmd = ours_command(work, network, case)
            _isolated(cmd, work)  # untimed: warms numba's on-disk cache and the page cache
            ours_t, ours_c, ours_m, dn_t, dn_c, dn_m = [], [], [], [], [], []
            batch = work / f"{network}_{label.replace(' ', '_').replace('+', '_')}.prototxt"
            batch.write_text(batch_file(network, case))
            checks = []
            for _ in range(args.runs):
                wall, cpu, peak, out = _isolated(cmd, work)
                ours_t.append(wall)
                ours_c.append(cpu)
                ours_m.append(peak)
                if dnnsim:
                    results = work / "results" / network
                    for old in results.rglob("*_cycles.csv") if results.exists() else []:
                        old.unlink()
                    wall, cpu, peak, _ = _isolated([str(dnnsim), "--batch", str(batch), "--fast_mode", "--quiet"],
                                                   work)
                    dn_t.append(wall)
                    dn_c.append(cpu)
                    dn_m.append(peak)
                    checks.append(_compare(ours_cycles(out), dnnsim_cycles(results), case, traces[name]))
            ours_cpu = statistics.median(ours_c)
            row = f"| {name} | {label} | {statistics.median(ours_t):.3f} | {ours_cpu:.3f} | {max(ours_m):.0f} |"
            if dnnsim:
                dn, dn_cpu = statistics.median(dn_t), statistics.median(dn_c)
                same = next((c for c in checks if "DIFFER" in c), checks[-1])  # a difference in any run shows
                row += (f" {dn:.3f} | {dn_cpu:.3f} | {max(dn_m):.0f} | {statistics.median(ours_t) / dn:.3f} |"
                        f" {ours_cpu / dn_cpu:.3f} | {same} |")
            print(row, flush=True)
    print(f"load at the end: {_load()} (1/5/15 min)")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _isolated(cmd: list[str], cwd: Path) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + system), peak resident MiB and stdout of `cmd` as a whole process, run
    from a fresh helper process so that the CPU time and peak memory (the helper's RUSAGE_CHILDREN) are this
    command's alone. Fails on a non-zero status."""
    helper = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
              "p = subprocess.run(sys.argv[2:], cwd=sys.argv[1], capture_output=True, text=True); "
              "w = time.perf_counter() - t; r = resource.getrusage(resource.RUSAGE_CHILDREN); "
              "print(json.dumps([p.returncode, w, r.ru_utime + r.ru_stime, r.ru_maxrss, p.stdout, p.stderr[-500:]]))")
    done = subprocess.run([sys.executable, "-c", helper, str(cwd), *cmd], capture_output=True, text=True, check=True)
    code, wall, cpu, maxrss_kib, out, err = json.loads(done.stdout)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}: {err.strip()}")
    return wall, cpu, maxrss_kib / KIB_PER_MIB, out


def _compare(ours: dict[str, int], theirs: dict[str, int], case: Case, trace) -> str:
    """'equal', or the layers that differ; layers of a known DNNsim defect are left out and named."""
    skipped = [layer.name for layer in trace.layers if case.fc_defect and layer.type == "fc"]
    names = [layer.name for layer in trace.layers if layer.name not in skipped]
    if set(theirs) != {layer.name for layer in trace.layers}:
        return f"DNNsim printed layers {sorted(theirs)}"
    diff = [n for n in names if ours[n] != theirs[n]]
    text = "equal" if not diff else "DIFFER: " + ", ".join(f"{n} {ours[n]} vs {theirs[n]}" for n in diff)
    return text + (" (fc left out: DNNsim defect)" if skipped else "")


if __name__ == "__main__":
    main()
