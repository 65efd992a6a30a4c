#!/usr/bin/env python3
"""Benchmark (not a test) of the systolic array core.

Prints: Verilog generation time for 16x16, a from-scratch Verilator build
time, simulated cycles per second of a GEMM driven cycle by cycle from
cocotb, and Yosys ``synth_ecp5`` cell counts for 4x4, 8x8 and 16x16 in both
dataflows. The README quotes its output.

Run: python bench/array_core.py [--skip-synth]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from boards.synth import synth_ecp5_cells
from hdl.config import ArrayConfig
from hdl.generate import generate_verilog
from hdl.numerics import ArithMode, golden_gemm, random_operands
from sim.array_runner import GemmCase, run_gemms
from sim.verilator import VerilatorModel


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-synth", action="store_true", help="skip the Yosys runs (minutes)")
    parser.add_argument("--skip-sim", action="store_true", help="skip generation, Verilator and simulation")
    args = parser.parse_args()
    print(f"benchmark of the systolic array core, {time.strftime('%Y-%m-%d')}")

    for dataflow in () if args.skip_sim else ("os", "ws"):
        config = ArrayConfig(16, 16, dataflow, "int8")
        verilog, seconds = timed(generate_verilog, config)
        print(f"generate {config.name}: {seconds:.1f} s, {len(verilog.splitlines())} lines")

        with tempfile.TemporaryDirectory() as scratch:
            model = VerilatorModel(verilog, config.name, build_root=Path(scratch))
            _, seconds = timed(model.build)
            print(f"verilator build {config.name} (from scratch, -O2): {seconds:.1f} s")
            a, w = random_operands(np.random.default_rng(0), 128, 256, 128)
            (outcome,), seconds = timed(run_gemms, config, [GemmCase(a, w, ArithMode.INT8)], model)
            exact = np.array_equal(outcome.product, golden_gemm(a, w, ArithMode.INT8))
            utilization = a.shape[0] * a.shape[1] * w.shape[1] / (256 * outcome.cycles)
            print(f"simulate 128x256x128 GEMM on {config.name}: {outcome.cycles} cycles, "
                  f"utilization {utilization:.1%}, bit-exact {exact}; {seconds:.1f} s end to end, "
                  f"{outcome.simulated_cycles / outcome.sim_seconds:,.0f} simulated cycles/s "
                  f"(cocotb drives every cycle from Python)")

    if args.skip_synth:
        return 0
    print("yosys synth_ecp5 (int8):")
    print(f"{'array':<26}{'LUT4':>8}{'FF':>8}{'MULT18':>8}{'CCU2C':>8}{'time':>8}")
    for size in (4, 8, 16):
        for dataflow in ("ws", "os"):
            config = ArrayConfig(size, size, dataflow, "int8")
            cells, seconds = timed(synth_ecp5_cells, generate_verilog(config), config.name)
            print(f"{config.name:<26}{cells['LUTs']:>8}{cells['FFs']:>8}{cells['multipliers']:>8}"
                  f"{cells['carry cells']:>8}{seconds:>7.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
