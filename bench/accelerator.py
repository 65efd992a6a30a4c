#!/usr/bin/env python3
"""Benchmark (not a test): a large int8 GEMM on the whole accelerator, figures from its perf counters.

DRAM is cocotbext-axi's AxiRam (Python), the clock is cocotb's, so simulated
cycles per second here measure that harness, not the RTL model alone.

Run: python bench/accelerator.py [--pe 8x8] [--gemm 64x256x64]
"""
import argparse
import sys
import time

import numpy as np

from hdl.config import AcceleratorConfig, ArrayConfig, parse_pe
from hdl.numerics import quantize_multiplier, random_operands
from quant.gemm import GemmLayer, compile_gemm
from quant.isasim import IsaSimulator
from sim.accelerator_runner import AcceleratorRun, accelerator_model, run_programs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pe", default="8x8")
    parser.add_argument("--gemm", default="64x256x64", help="MxKxN")
    parser.add_argument("--bus-bits", type=int, default=128)
    args = parser.parse_args()
    m, k, n = (int(v) for v in args.gemm.split("x"))
    rows, cols = parse_pe(args.pe)
    print(f"benchmark of the accelerator, {time.strftime('%Y-%m-%d')}: {m}x{k}x{n} int8 GEMM, "
          f"{args.bus_bits}-bit AXI, 64 KiB scratchpads, 64 KiB accumulator")
    rng = np.random.default_rng(0)
    a, w = random_operands(rng, m, k, n)
    multipliers, shifts = map(np.array, zip(*(quantize_multiplier(s) for s in rng.uniform(1e-4, 1e-3, n))))
    layer = GemmLayer(a, w, np.zeros(n, dtype=np.int64), multipliers, shifts, np.zeros(n, dtype=np.int64))
    for dataflow in ("os", "ws"):
        config = AcceleratorConfig(ArrayConfig(rows, cols, dataflow, "int8"), bus_bits=args.bus_bits)
        start = time.perf_counter()
        model = accelerator_model(config)
        built = time.perf_counter() - start
        program = compile_gemm(config, layer)
        dram = bytearray(program.image.data)
        IsaSimulator(config, dram).run(program.program_region.address, len(program.program))
        start = time.perf_counter()
        (outcome,) = run_programs(config, [AcceleratorRun(bytes(program.image.data), program.program_region.address,
                                                          len(program.program))], model)
        seconds = time.perf_counter() - start
        c = outcome.counters
        exact = outcome.done and outcome.dram[:len(dram)] == bytes(dram)
        print(f"{model.toplevel}: build {built:.0f} s; bit-exact {exact}; {c['CYCLES']} cycles; "
              f"array busy {c['ARRAY_BUSY'] / c['CYCLES']:.1%}; MAC utilization "
              f"{m * k * n / (rows * cols * c['CYCLES']):.1%}; load stall {c['LOAD_STALL']}; "
              f"store stall {c['STORE_STALL']}; compute starved {c['COMPUTE_STARVED']}; read {c['BYTES_READ']} B, wrote {c['BYTES_WRITTEN']} B; "
              f"{c['INSTRUCTIONS']} instructions; {c['CYCLES'] / seconds:,.0f} simulated cycles/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
