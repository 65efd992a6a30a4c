#!/usr/bin/env python3
"""Run a zoo net end to end on the generated RTL and check it bit-exactly against the golden model.

Example: python tools/run.py --model squeezenet1_1 --pe 16x16 --dataflow os --input 3x224x224
Generates the accelerator, compiles the net (as tools/compile.py), runs the whole program in
Verilator with the in-design DRAM model (sim/fast_runner.py; the model build takes minutes the
first time and is cached), compares every tensor in the final DRAM with the golden model, reports
the top-1 class against the float net, and prints a per-layer table read from the hardware's
performance counters (each layer is run as its own program segment: START clears the counters;
sim/net_runner.py). Writes <out>/run.json (totals and layers), <out>/layers.csv,
<out>/utilization.png and <out>/roofline.png.
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _cli import Parser, accelerator_config, add_array_options, add_memory_options
from _net import add_net_options, build_model, quantize_net

from quant import golden
from quant.compiler import UnsupportedLayer, compile_graph
from quant.frontend import UnsupportedOperation, trace
from quant.report import format_table, layer_figures, plot_roofline, plot_utilization, write_csv, write_json
from sim.net_runner import layer_segments, net_model, run_layers


def main(argv=None) -> int:
    parser = Parser(prog="run.py", description=__doc__.splitlines()[0])
    add_net_options(parser)
    add_array_options(parser)
    add_memory_options(parser)
    parser.add_argument("-o", "--output", type=Path, default=Path("build/run"), metavar="DIR",
                        help="where run.json, layers.csv and the plots go (default build/run)")
    parser.add_argument("--max-cycles", type=int, default=100_000_000, help="give up after this many cycles")
    args = parser.parse_args(argv)
    config = accelerator_config(parser, args)
    try:
        model, shape = build_model(args)
    except (ValueError, OSError, RuntimeError) as error:
        parser.error(str(error).splitlines()[0])

    def step(message: str) -> None:
        print(f"run.py: {message}", file=sys.stderr, flush=True)

    try:
        graph = trace(model, shape)
        integer, images, x = quantize_net(graph, shape, args.calibration)
        start = time.perf_counter()
        net = compile_graph(config, integer, x)
    except (UnsupportedOperation, UnsupportedLayer, ValueError) as error:
        parser.error(str(error).splitlines()[0])
    step(f"compiled {args.model}: {len(net.program)} instructions, {len(net.image.data):,} B of DRAM "
         f"({time.perf_counter() - start:.1f} s)")
    expected = golden.run(integer, x[None])
    with torch.no_grad():
        float_class = int(model(images[:1]).argmax())
    step(f"building (or loading) the Verilator model of {config.array.name}; minutes the first time")
    start = time.perf_counter()
    simulator = net_model(config, len(layer_segments(net)[0]))
    step(f"model ready ({time.perf_counter() - start:.0f} s); running {len(net.layers)} layers")

    def layer_done(index: int, counters: dict[str, int]) -> None:
        step(f"layer {index + 1}/{len(net.layers)} {net.layers[index].name}: {counters['CYCLES']:,} cycles")

    outcome = run_layers(net, model=simulator, max_cycles=args.max_cycles, progress=layer_done)
    if not (outcome.finished and outcome.done):
        step(f"the run did not finish: {outcome.error.name if outcome.error else 'no interrupt'}")
        return 1
    wrong = [node.name for node in integer.nodes
             if not np.array_equal(net.read_tensor(outcome.dram, node.output), expected[node.output][0])]
    logits = net.read_tensor(outcome.dram, integer.output).reshape(-1)
    c = outcome.counters
    rows = layer_figures(net, outcome.segments)
    macs = sum(row.macs for row in rows if row.op.startswith("conv"))
    report = {
        "model": args.model, "accelerator": config.array.name, "bus_bits": config.bus_bits,
        "spad_kib": config.spad_kib, "acc_kib": config.acc_kib, "input": args.input, "bit_exact": not wrong,
        "layers_differing": wrong, "top1_accelerator": int(logits.argmax()), "top1_float": float_class,
        "counters": c, "array_macs": macs,
        "array_utilization": macs / (config.array.rows * config.array.cols * c["CYCLES"]),
        "simulated_cycles_per_second": outcome.clock_cycles / outcome.loop_seconds,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    write_json(args.output / "run.json", rows, **report)
    write_csv(args.output / "layers.csv", rows)
    title = f"{args.model} {args.input} on {config.array.name}"
    plot_utilization(args.output / "utilization.png", {"measured (RTL counters)": rows}, title)
    plot_roofline(args.output / "roofline.png", config, {"measured (RTL counters)": rows}, title)
    print(format_table(rows))
    print(f"{args.model} on {config.array.name}: bit-exact {not wrong} ({len(integer.nodes)} tensors checked); "
          f"top-1 {report['top1_accelerator']} (float net: {float_class}); {c['CYCLES']:,} cycles; array "
          f"utilization on dense convolutions {report['array_utilization']:.1%}; load stall {c['LOAD_STALL']:,}; "
          f"read {c['BYTES_READ']:,} B, wrote {c['BYTES_WRITTEN']:,} B; "
          f"{report['simulated_cycles_per_second']:,.0f} simulated cycles/s -> {args.output}/")
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
