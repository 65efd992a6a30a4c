#!/usr/bin/env python3
"""Demo: generate a systolic array, run a random GEMM on it in Verilator, check it bit-exactly.

Example: python tools/demo.py --pe 16x16 --dataflow os --gemm 64x96x48
With --accelerator the GEMM is a quantized layer compiled to a program and run on the whole
accelerator (AXI DRAM model, registers, perf counters), checked against the ISA simulator.
"""
import argparse
import re
import sys
import time

import numpy as np
from _cli import Parser, add_array_options, array_config

from hdl.config import AcceleratorConfig
from hdl.numerics import ArithMode, golden_gemm, quantize_multiplier, random_operands
from hdl.systolic_array import stream_cycles
from quant.gemm import GemmLayer, compile_gemm
from quant.isasim import IsaSimulator
from sim.accelerator_runner import AcceleratorRun, accelerator_model, run_programs
from sim.array_runner import GemmCase, array_model, run_gemms


def gemm_shape(text: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)x(\d+)", text.strip())
    if not match or not all(1 <= int(v) <= 4096 for v in match.groups()):
        raise argparse.ArgumentTypeError(f"GEMM shape must be MxKxN with each from 1 to 4096, not {text!r}")
    return tuple(int(v) for v in match.groups())


def main(argv=None) -> int:
    parser = Parser(prog="demo.py", description=__doc__.splitlines()[0])
    add_array_options(parser)
    parser.add_argument("--gemm", type=gemm_shape, default=(64, 96, 48), metavar="MxKxN",
                        help="GEMM shape A(MxK) @ W(KxN) (default 64x96x48)")
    parser.add_argument("--mode", choices=[mode.name.lower() for mode in ArithMode], default=None,
                        help="arithmetic of the GEMM (default: the array's first mode)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--accelerator", action="store_true",
                        help="run a quantized GEMM layer on the whole accelerator instead of the array core")
    args = parser.parse_args(argv)
    config = array_config(args)
    mode = ArithMode[args.mode.upper()] if args.mode else config.modes[0]
    if mode not in config.modes:
        parser.error(f"--mode {args.mode} needs --arith {mode.name.lower()} or both, not {config.arith.value}")

    if args.accelerator:
        return accelerator_demo(AcceleratorConfig(config), mode, args.gemm, args.seed)
    print(f"[1/3] generating and building {config.name} in Verilator (cached after the first run)...",
          flush=True)
    start = time.perf_counter()
    model = array_model(config)
    print(f"      ready in {time.perf_counter() - start:.1f} s", flush=True)

    m, k, n = args.gemm
    a, w = random_operands(np.random.default_rng(args.seed), m, k, n)
    print(f"[2/3] running a random {mode.name} GEMM {m}x{k} @ {k}x{n} (seed {args.seed})...", flush=True)
    start = time.perf_counter()
    (outcome,) = run_gemms(config, [GemmCase(a, w, mode)], model)
    seconds = time.perf_counter() - start

    print("[3/3] checking against the golden model...")
    golden = golden_gemm(a, w, mode)
    mismatches = int(np.count_nonzero(outcome.product != golden))
    tiles = len(outcome.streams.tiles)
    formula = stream_cycles(config, tiles, outcome.streams.beats_per_tile)
    macs = m * k * n
    print(f"      bit-exact: {'yes' if mismatches == 0 else f'NO, {mismatches} of {golden.size} differ'}")
    print(f"      cycles: {outcome.cycles} (formula {formula}; {tiles} tiles)")
    print(f"      PE utilization: {macs / (config.rows * config.cols * outcome.cycles):.1%} "
          f"({macs} MACs on {config.rows * config.cols} PEs)")
    print(f"      simulation wall time: {seconds:.1f} s")
    return 0 if mismatches == 0 and outcome.cycles == formula else 1


def accelerator_demo(config: AcceleratorConfig, mode: ArithMode, shape, seed: int) -> int:
    m, k, n = shape
    rng = np.random.default_rng(seed)
    a, w = random_operands(rng, m, k, n)
    multipliers, shifts = map(np.array, zip(*(quantize_multiplier(s) for s in rng.uniform(1e-4, 1e-2, n))))
    layer = GemmLayer(a, w, rng.integers(-1000, 1000, n), multipliers, shifts, rng.integers(0, 2, n), mode)
    program = compile_gemm(config, layer)
    print(f"[1/3] compiled a {mode.name} {m}x{k}x{n} layer: {len(program.program)} instructions, "
          f"{len(program.image.data)}-byte DRAM image; building the accelerator (cached after the first run)...",
          flush=True)
    model = accelerator_model(config)
    print("[2/3] running it in Verilator...", flush=True)
    start = time.perf_counter()
    (outcome,) = run_programs(config, [AcceleratorRun(bytes(program.image.data), program.program_region.address,
                                                      len(program.program))], model)
    seconds = time.perf_counter() - start
    print("[3/3] checking against the ISA simulator and the golden model...")
    dram = bytearray(program.image.data)
    IsaSimulator(config, dram).run(program.program_region.address, len(program.program))
    exact = outcome.done and outcome.dram[:len(dram)] == bytes(dram) and all(
        np.array_equal(got, want) for got, want in zip(program.read_outputs(outcome.dram), program.expected_outputs()))
    counters = outcome.counters
    print(f"      bit-exact: {'yes' if exact else 'NO'} (status {'done' if outcome.done else outcome.error})")
    print(f"      cycles: {counters['CYCLES']}, array busy {counters['ARRAY_BUSY'] / counters['CYCLES']:.1%}, "
          f"load stall {counters['LOAD_STALL']}, {counters['BYTES_READ']} B read, "
          f"{counters['BYTES_WRITTEN']} B written, {counters['INSTRUCTIONS']} instructions")
    print(f"      simulation wall time: {seconds:.1f} s")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
