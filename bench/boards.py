#!/usr/bin/env python3
"""Benchmark (not a test): board builds and the README's table of them.

Each row is one ``tools/build_board.py`` run; its ``report.json`` holds the
figures. ``--collect`` only tabulates reports already built (the builds take
from a minute to hours on this 2-core machine).

Run: python bench/boards.py [--collect] [--only NAME ...]
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name (its build directory) -> build_board.py arguments: the builds the README's table quotes.
BUILDS = {
    "ulx3s_soc4_os": ["--board", "ulx3s", "--pe", "4x4", "--spad-kib", "16", "--acc-kib", "16",
                      "--timing-effort", "compact"],
    "ulx3s_soc8_os": ["--board", "ulx3s", "--pe", "8x8", "--spad-kib", "16", "--acc-kib", "16",
                      "--timing-effort", "compact"],
    "ulx3s_soc12_os": ["--board", "ulx3s", "--pe", "12x12"],
    "ulx3s_soc16_os": ["--board", "ulx3s", "--pe", "16x16", "--lut4-only", "--fifos-in-block-ram"],
    "ulx3s_array16_os": ["--board", "ulx3s", "--pe", "16x16", "--top", "array"],
    "ulx3s_array4_mixed_p": ["--board", "ulx3s", "--pe", "4x4", "--top", "array", "--multipliers", "mixed",
                             "--dsp-limit", "8"],
    "ulx3s_array4_mixed_u": ["--board", "ulx3s", "--pe", "4x4", "--top", "array", "--multipliers", "mixed",
                             "--dsp-limit", "8", "--unpipelined"],
    "orangecrab_array8_os": ["--board", "orangecrab", "--pe", "8x8", "--top", "array"],
    "icebreaker_array4_int8": ["--board", "icebreaker", "--pe", "4x4", "--top", "array", "--synth-only"],
    "icebreaker_array5x5_int8": ["--board", "icebreaker", "--pe", "5x5", "--top", "array", "--synth-only"],
    "icebreaker_array6x6_int8": ["--board", "icebreaker", "--pe", "6x6", "--top", "array", "--synth-only"],
    "icebreaker_array6x6_binary": ["--board", "icebreaker", "--pe", "6x6", "--arith", "binary", "--top", "array",
                                   "--synth-only"],
    "icebreaker_array8_binary": ["--board", "icebreaker", "--pe", "8x8", "--arith", "binary", "--top", "array",
                                 "--synth-only"],
}


def peak_gops(report: dict) -> float | None:
    """Peak int8 GOPS at the achieved clock: 2 operations per PE per cycle (binary: 8 lanes, 16)."""
    if report["fmax_mhz"] is None:
        return None
    rows, cols = (int(x) for x in report["top"].split("_")[1].split("x"))
    ops = 16 if "_binary" in report["top"] else 2
    return ops * rows * cols * min(report["fmax_mhz"], report["target_mhz"]) / 1000


def table(reports: dict[str, dict]) -> str:
    lines = ["| build | top | LUTs | FFs | DSPs | block RAMs | Fmax (target) | peak GOPS | stage | result | time |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, report in reports.items():
        usage = {key: f"{value['used']} / {value['available']}" for key, value in report["resources"].items()}
        fmax = f"{report['fmax_mhz']:.1f} ({report['target_mhz']:g}) MHz" if report["fmax_mhz"] else "-"
        gops = peak_gops(report)
        lines.append(f"| {name} | `{report['top']}` | {usage.get('LUTs', '-')} | {usage.get('FFs', '-')} | "
                     f"{usage.get('DSPs', '-')} | {usage.get('block RAMs', '-')} | {fmax} | "
                     f"{'-' if gops is None else f'{gops:.1f}'} | {report['stage']} | {'PASS' if report['passed'] else 'FAIL'} | "
                     f"{report['seconds'].get('total', 0) / 60:.1f} min |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collect", action="store_true", help="only tabulate existing reports")
    parser.add_argument("--only", nargs="+", choices=list(BUILDS), help="these builds only")
    parser.add_argument("--dir", type=Path, default=ROOT / "build" / "boards", help="build directory root")
    args = parser.parse_args()
    reports = {}
    for name in args.only or BUILDS:
        workdir = args.dir / name
        if not args.collect:
            start = time.perf_counter()
            subprocess.run([sys.executable, str(ROOT / "tools" / "build_board.py"), *BUILDS[name],
                            "-o", str(workdir)], cwd=ROOT)
            print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        if (workdir / "report.json").exists():
            reports[name] = json.loads((workdir / "report.json").read_text())
    print(f"board builds, {time.strftime('%Y-%m-%d')}")
    print(table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
