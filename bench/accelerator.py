#!/usr/bin/env python3
"""Benchmark (not a test): a large int8 GEMM on the whole accelerator, figures from its perf counters.

``--dram fast`` (default) runs ``sim.fast_runner``: the in-design DRAM model and an SV register
sequencer in a standalone Verilator executable, no Python per cycle. ``--dram axiram`` runs
``sim.accelerator_runner``: cocotbext-axi's AxiRam (Python) and cocotb's clock, so its simulated
cycles per second measure that harness, not the RTL model.

Run: python bench/accelerator.py [--pe 16x16] [--gemm 256x512x256] [--dram fast|axiram]
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
from sim.fast_runner import fast_model, run_fast


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pe", default="16x16")
    parser.add_argument("--gemm", default="256x512x256", help="MxKxN")
    parser.add_argument("--bus-bits", type=int, default=128)
    parser.add_argument("--dataflow", choices=("os", "ws", "both"), default="both")
    parser.add_argument("--dram", choices=("fast", "axiram"), default="fast",
                        help="fast: in-design DRAM model, no Python per cycle; axiram: cocotbext-axi AxiRam")
    parser.add_argument("--read-latency", type=int, default=2, help="fast DRAM read latency in cycles (>= 2)")
    parser.add_argument("--repeat", type=int, default=1, help="run the simulation this often, report the fastest")
    args = parser.parse_args()
    m, k, n = (int(v) for v in args.gemm.split("x"))
    rows, cols = parse_pe(args.pe)
    dram = (f"in-design DRAM model, read latency {max(args.read_latency, 2)}" if args.dram == "fast"
            else "cocotbext-axi AxiRam")
    print(f"benchmark of the accelerator, {time.strftime('%Y-%m-%d')}: {m}x{k}x{n} int8 GEMM, "
          f"{args.bus_bits}-bit AXI, 64 KiB scratchpads, 64 KiB accumulator, DRAM: {dram}")
    rng = np.random.default_rng(0)
    a, w = random_operands(rng, m, k, n)
    multipliers, shifts = map(np.array, zip(*(quantize_multiplier(s) for s in rng.uniform(1e-4, 1e-3, n))))
    layer = GemmLayer(a, w, np.zeros(n, dtype=np.int64), multipliers, shifts, np.zeros(n, dtype=np.int64))
    for dataflow in ("os", "ws") if args.dataflow == "both" else (args.dataflow,):
        config = AcceleratorConfig(ArrayConfig(rows, cols, dataflow, "int8"), bus_bits=args.bus_bits)
        start = time.perf_counter()
        model = fast_model(config) if args.dram == "fast" else accelerator_model(config)
        built = time.perf_counter() - start
        build = (f"build {model.build_seconds:.0f} s, generation {built - model.build_seconds:.0f} s"
                 if model.build_seconds else f"cached build ({built:.0f} s to generate the Verilog or wait for "
                                             f"another process's build)")
        program = compile_gemm(config, layer)
        dram = bytearray(program.image.data)
        IsaSimulator(config, dram).run(program.program_region.address, len(program.program))
        image, address, length = bytes(program.image.data), program.program_region.address, len(program.program)
        runs = []
        for _ in range(max(args.repeat, 1)):
            start = time.perf_counter()
            if args.dram == "fast":
                outcome = run_fast(config, image, address, length, read_latency=args.read_latency, model=model)
            else:
                (outcome,) = run_programs(config, [AcceleratorRun(image, address, length)], model)
            runs.append((time.perf_counter() - start, outcome))
        seconds, outcome = min(runs, key=lambda run: run[0])
        c = outcome.counters
        exact = outcome.done and outcome.dram[:len(dram)] == bytes(dram)
        print(f"{model.toplevel}: {build}; bit-exact {exact}; {c['CYCLES']} cycles; "
              f"array busy {c['ARRAY_BUSY'] / c['CYCLES']:.1%}; MAC utilization "
              f"{m * k * n / (rows * cols * c['CYCLES']):.1%}; load stall {c['LOAD_STALL']}; "
              f"store stall {c['STORE_STALL']}; compute starved {c['COMPUTE_STARVED']}; read {c['BYTES_READ']} B, wrote {c['BYTES_WRITTEN']} B; "
              f"{c['INSTRUCTIONS']} instructions; {c['CYCLES'] / seconds:,.0f} simulated cycles/s "
              f"({seconds:.2f} s end to end)" + (
                  f", {outcome.clock_cycles / outcome.loop_seconds:,.0f} in the clocked loop alone, "
                  f"{outcome.clock_cycles / outcome.cpu_seconds:,.0f} per CPU second of the simulator process"
                  if args.dram == "fast" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
