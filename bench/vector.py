#!/usr/bin/env python3
"""Benchmark (not a test): depthwise convolution, pooling and residual add in RTL.

Each operation is compiled by ``quant.vector``, run on the accelerator with the
in-design DRAM model (``sim.fast_runner``) and checked bit-exact against the ISA
simulator. The accumulator path does C multiply-accumulates per cycle (one int8
row combined into one accumulator row); its utilization is MACs / (C x cycles).
Depthwise convolutions also run in the array's depthwise mode (``quant.depthwise``;
both dataflows): a COMPUTE of one window row does up to kw x C MACs per cycle at
stride 1 (each beat brings one pixel of C channels, used by the kw taps of every
column); a WS COMPUTE of stacked window rows up to kh x kw x C (one output per
column and cycle). The line gives MACs per cycle and the fractions of 3 x C, 9 x C
(3x3 windows) and the array's R x C.

Run: python bench/vector.py [--pe 16x16] [--size 28x28x64] [--dataflow os|ws]
"""
import argparse
import sys
import time

import numpy as np

from hdl.config import AcceleratorConfig, ArrayConfig, parse_pe
from hdl.numerics import quantize_multiplier
from quant.isasim import IsaSimulator
from quant.vector import Window, compile_add, compile_depthwise, compile_pool, output_size
from sim.fast_runner import fast_model, run_fast


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pe", default="16x16")
    parser.add_argument("--size", default="28x28x64", help="HxWxC of the input feature map")
    parser.add_argument("--bus-bits", type=int, default=128)
    parser.add_argument("--dataflow", choices=["os", "ws"], default="os",
                        help="the array's dataflow (default os)")
    args = parser.parse_args()
    height, width, channels = (int(v) for v in args.size.split("x"))
    rows, cols = parse_pe(args.pe)
    config = AcceleratorConfig(ArrayConfig(rows, cols, args.dataflow, "int8"), bus_bits=args.bus_bits)
    print(f"benchmark of depthwise, pooling and add, {time.strftime('%Y-%m-%d')}: {args.pe} "
          f"{args.dataflow.upper()} int8, {args.bus_bits}-bit AXI, input {height}x{width}x{channels}, "
          f"DRAM read latency 2 cycles")
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(height, width, channels))
    start = time.perf_counter()
    model = fast_model(config)
    print(f"model build {time.perf_counter() - start:.0f} s")
    scales = [quantize_multiplier(s) for s in rng.uniform(1e-4, 1e-2, channels)]
    multipliers, shifts = np.array([m for m, _ in scales]), np.array([s for _, s in scales])
    paths = [("array", True), ("accumulator path", False)] if config.array.depthwise else [("accumulator path", False)]
    cases = []
    for window in (Window(3, 1, 1), Window(3, 2, 1)):
        macs = output_size(height, window) * output_size(width, window) * 9 * channels
        for path, on_array in paths:
            compiled = compile_depthwise(config, x, rng.integers(-128, 128, (3, 3, channels)), window,
                                         rng.integers(-3000, 3000, channels), multipliers, shifts, on_array)
            cases.append((f"depthwise 3x3 s{window.stride} ({path})", compiled, macs, on_array))
    cases += [
        ("max pool 3x3 s2", compile_pool(config, x, Window(3, 2, 1), "max"), None, False),
        ("residual add", compile_add(config, x, rng.integers(-128, 128, x.shape), 300, -200,
                                     *quantize_multiplier(1 / 500)), None, False),
    ]
    for name, compiled, macs, on_array in cases:
        dram = bytearray(compiled.image.data)
        IsaSimulator(config, dram).run(compiled.program_address, len(compiled.program))
        outcome = run_fast(config, bytes(compiled.image.data), compiled.program_address, len(compiled.program),
                           model=model)
        c = outcome.counters
        exact = outcome.done and outcome.dram[:len(dram)] == bytes(dram)
        line = (f"{name}: bit-exact {exact}; {c['CYCLES']} cycles; read {c['BYTES_READ']} B, wrote "
                f"{c['BYTES_WRITTEN']} B; {c['INSTRUCTIONS']} instructions")
        if macs and on_array:
            line += (f"; {macs} MACs; {macs / c['CYCLES']:.1f} MACs/cycle, {macs / (3 * cols * c['CYCLES']):.1%} of "
                     f"3 x {cols} (a window row per beat), {macs / (9 * cols * c['CYCLES']):.1%} of 9 x {cols} (an "
                     f"output per column and beat), {macs / (rows * cols * c['CYCLES']):.1%} of the array's {rows * cols}")
        elif macs:
            line += (f"; {macs} MACs; depthwise-path utilization {macs / (cols * c['CYCLES']):.1%} "
                     f"(of {cols} MACs/cycle)")
        print(line + f"; {outcome.clock_cycles / outcome.loop_seconds:,.0f} simulated cycles/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
