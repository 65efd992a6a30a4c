#!/usr/bin/env python3
"""Compile a zoo net for an accelerator: program, DRAM image, layout map and a per-layer summary.

Example: python tools/compile.py --model squeezenet1_1 --pe 16x16 --dataflow os --input 3x224x224 -o build/sq11
The net (the zoo's seeded initialization, or --weights) is traced with torch.fx, calibrated
on --calibration seeded random images (activation ranges only), quantized to int8 and
lowered. Writes <out>/image.bin (the whole DRAM image, program and first calibration image
included), <out>/program.bin, <out>/layout.json, <out>/summary.json, <out>/summary.csv and
<out>/input.npy; prints the per-layer summary. Errors exit 2 with one line.
"""
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from _cli import Parser, accelerator_config, add_array_options, add_memory_options
from _net import add_net_options, build_model, quantize_net

from quant.compiler import UnsupportedLayer, compile_graph
from quant.frontend import UnsupportedOperation, trace
from quant.memory import INSTRUCTION_BYTES
from quant.summary import summarize


def main(argv=None) -> int:
    parser = Parser(prog="compile.py", description=__doc__.splitlines()[0])
    add_net_options(parser)
    add_array_options(parser)
    add_memory_options(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="output directory")
    args = parser.parse_args(argv)
    config = accelerator_config(parser, args)
    try:
        model, (channels, height, width) = build_model(args)
    except (ValueError, OSError, RuntimeError) as error:
        parser.error(str(error).splitlines()[0])

    def progress(message: str) -> None:       # only on a terminal: errors stay one line in logs
        if sys.stderr.isatty():
            print(f"compile.py: {message}", file=sys.stderr)

    start = time.perf_counter()
    try:
        progress(f"tracing {args.model} at {channels}x{height}x{width}")
        graph = trace(model, (channels, height, width))
        progress(f"calibrating on {args.calibration} images, quantizing")
        integer, _, x = quantize_net(graph, (channels, height, width), args.calibration)
        progress(f"lowering {len(integer.nodes)} nodes for {config.array.name}")
        net = compile_graph(config, integer, x)
    except (UnsupportedOperation, UnsupportedLayer, ValueError) as error:
        parser.error(str(error).splitlines()[0])
    seconds = time.perf_counter() - start
    layers = summarize(net)
    try:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "image.bin").write_bytes(bytes(net.image.data))
        program_bytes = len(net.program) * INSTRUCTION_BYTES
        (args.output / "program.bin").write_bytes(bytes(net.image.data[net.program_address:
                                                                      net.program_address + program_bytes]))
        (args.output / "layout.json").write_text(json.dumps({
            "accelerator": config.array.name, "bus_bytes": config.bus_bytes, "program_address": net.program_address,
            "program_length": len(net.program), "image_bytes": len(net.image.data),
            "regions": {name: vars(region) for name, region in net.image.regions.items()},
            "tensors": {name: vars(fmap) for name, fmap in net.feature_maps.items()},
            "input": integer.input, "output": integer.output,
            "input_im2col_copies": {node: vars(fmap) for node, fmap in net.input_copies.items()}}, indent=2))
        (args.output / "summary.json").write_text(json.dumps([layer.as_dict() for layer in layers], indent=2))
        with open(args.output / "summary.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(layers[0].as_dict()))
            writer.writeheader()
            writer.writerows(layer.as_dict() for layer in layers)
    except OSError as error:
        parser.error(f"cannot write to {str(args.output)!r}: {error.strerror}")
    print(f"{'layer':28} {'op':10} {'output':>14} {'MACs':>12} {'params':>9} {'read B':>10} {'written B':>10} "
          f"{'est. cycles':>12}")
    for layer in layers:
        shape = "x".join(map(str, layer.output_shape))
        print(f"{layer.name[:28]:28} {layer.op:10} {shape:>14} {layer.macs:12,} {layer.parameters:9,} "
              f"{layer.bytes_read:10,} {layer.bytes_written:10,} {layer.estimated_cycles:12,}")
    total_macs = sum(layer.macs for layer in layers)
    total_cycles = sum(layer.estimated_cycles for layer in layers)
    print(f"compile.py: {args.model}: {len(net.program)} instructions, {len(net.image.data):,} bytes of DRAM image, "
          f"{total_macs:,} MACs, >= {total_cycles:,} cycles estimated; compiled in {seconds:.1f} s -> {args.output}",
          file=sys.stderr)
    np.save(args.output / "input.npy", x)
    return 0


if __name__ == "__main__":
    sys.exit(main())
