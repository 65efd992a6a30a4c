#!/usr/bin/env python3
"""Benchmark (not a test): SCALE-Sim against this accelerator on the same layer shapes, per layer.

The net is compiled for the configured accelerator; every dense convolution (the layers that run
on the systolic array) is also given to SCALE-Sim (``pip install -e '.[bench]'``) with the same
array size, dataflow, SRAM sizes (activation and weight scratchpads = half of --spad-kib each,
output SRAM = --acc-kib) and DRAM bandwidth (the AXI bus: bus bytes per cycle, int8 words).
Printed per layer: MACs, SCALE-Sim's total cycles (compute + stalls, with its prefetch), this
accelerator's cycles from the analytic model (``quant.perfmodel``; with --rtl also measured
by the RTL's counters), their ratio, and the DRAM bytes each moves. Depthwise convolutions,
pooling and adds run on the accumulator path here, not on the array, and are left out.

SCALE-Sim 3.0.0 calls int() on one-element arrays, which numpy 2 refuses; the two module-level
``max`` calls concerned are patched to return a scalar (its arithmetic is unchanged).

Run: python bench/scalesim_compare.py --model squeezenet1_1 --width 0.25 --input 3x32x32 --pe 8x8 [--rtl]
"""
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from _cli import Parser, accelerator_config, add_array_options, add_memory_options  # noqa: E402
from _net import add_net_options, build_model, quantize_net  # noqa: E402

from quant.compiler import UnsupportedLayer, compile_graph  # noqa: E402
from quant.frontend import UnsupportedOperation, trace  # noqa: E402
from quant.graph import Conv  # noqa: E402
from quant.perfmodel import predict_net  # noqa: E402

_CONFIG = """[general]
run_name = compare

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
ifmapsramszkB = {half}
filtersramszkB = {half}
ofmapsramszkB = {acc}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Bandwidth = {bandwidth}
Dataflow = {dataflow}
ReadRequestBuffer = 32
WriteRequestBuffer = 32
TopologyCsvLoc = "{topology}"

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = USER
UseRamulatorTrace = False

[network_presets]
TopologyCsvLoc = "{topology}"
"""


def _patch_scalesim_for_numpy2() -> None:
    import scalesim.memory.double_buffered_scratchpad_mem as scratchpad
    import scalesim.memory.read_buffer as read_buffer

    def scalar_max(*arrays):
        return np.max(np.concatenate([np.ravel(a) for a in arrays]))
    read_buffer.max = scalar_max
    scratchpad.max = scalar_max


def scalesim_layers(config, shapes: list[tuple], workdir: Path) -> list[dict]:
    """SCALE-Sim's COMPUTE and DETAILED_ACCESS report rows for ``shapes`` (ifmap H, W, kh, kw, C, N, stride)."""
    _patch_scalesim_for_numpy2()
    from scalesim.scale_sim import scalesim
    topology, layout, cfg = workdir / "topology.csv", workdir / "layout.csv", workdir / "config.cfg"
    topology.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                        "Strides,\n" + "".join(f"L{i}, {', '.join(map(str, shape))},\n"
                                                for i, shape in enumerate(shapes)))
    layout.write_text("Layer name,\n")
    cfg.write_text(_CONFIG.format(rows=config.array.rows, cols=config.array.cols, half=config.spad_kib // 2,
                                  acc=config.acc_kib, bandwidth=config.bus_bytes,
                                  dataflow=config.array.dataflow.value, topology=topology))
    simulator = scalesim(save_disk_space=True, verbose=False, config=str(cfg), topology=str(topology),
                         layout=str(layout))
    simulator.run_scale(top_path=str(workdir / "out"))

    def rows(name):
        with (workdir / "out" / "compare" / name).open() as handle:
            return [{key.strip(): value.strip() for key, value in row.items() if key and key.strip()}
                    for row in csv.DictReader(handle)]
    return [{**compute, **access} for compute, access in zip(rows("COMPUTE_REPORT.csv"),
                                                             rows("DETAILED_ACCESS_REPORT.csv"))]


def main(argv=None) -> int:
    parser = Parser(prog="scalesim_compare.py", description=__doc__.splitlines()[0])
    add_net_options(parser)
    add_array_options(parser, default_pe="8x8")
    add_memory_options(parser)
    parser.add_argument("--rtl", action="store_true", help="also run the net in RTL (per-layer counters)")
    parser.set_defaults(input="3x32x32", width=0.25, classes=10)
    args = parser.parse_args(argv)
    config = accelerator_config(parser, args)
    try:
        model, shape = build_model(args)
        integer, _, x = quantize_net(trace(model, shape), shape, args.calibration)
        net = compile_graph(config, integer, x)
    except (UnsupportedOperation, UnsupportedLayer, ValueError, OSError, RuntimeError) as error:
        parser.error(str(error).splitlines()[0])
    nodes = {node.name: node for node in integer.nodes}
    dense = [i for i, span in enumerate(net.layers)
             if isinstance(nodes[span.name], Conv) and nodes[span.name].groups == 1]
    shapes, macs = [], []
    for index in dense:
        node = nodes[net.layers[index].name]
        height, width, channels = integer.tensors[node.input].shape
        out_h, out_w, out_c = integer.tensors[node.output].shape
        kh, kw = node.kernel
        pad = node.padding
        shapes.append((height + pad.top + pad.bottom, width + pad.left + pad.right, kh, kw, channels, out_c,
                       node.stride[0]))
        macs.append(out_h * out_w * out_c * kh * kw * channels)
    predicted = predict_net(net)
    measured = None
    if args.rtl:
        from sim.net_runner import run_layers
        measured = run_layers(net).segments
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        reference = scalesim_layers(config, shapes, Path(workdir))
    print(f"SCALE-Sim 3.0.0 against this accelerator, {time.strftime('%Y-%m-%d')}: {args.model} width {args.width} "
          f"input {args.input}, {config.array.name}, scratchpads {config.spad_kib // 2}+{config.spad_kib // 2} KiB, "
          f"accumulator {config.acc_kib} KiB, {config.bus_bytes} B/cycle DRAM; SCALE-Sim took "
          f"{time.perf_counter() - start:.0f} s")
    head = (f"{'layer':<26} {'IFMAP HxW k C->N s':>22} {'MACs':>10} {'SCALE-Sim':>10} {'model':>9} "
            + (f"{'RTL':>9} " if measured else "") + f"{'ratio':>6} {'SS DRAM B':>10} {'our DRAM B':>10}")
    print(head)
    print("-" * len(head))
    totals = [0, 0, 0]
    for position, index in enumerate(dense):
        ours = measured[index]["CYCLES"] if measured else predicted[index].cycles
        theirs = int(float(reference[position]["Total Cycles (incl. prefetch)"]))
        theirs_bytes = sum(int(float(reference[position][key])) for key in
                           ("DRAM IFMAP Reads", "DRAM Filter Reads", "DRAM OFMAP Writes"))
        our_bytes = predicted[index].bytes_read + predicted[index].bytes_written
        h, w, kh, kw, c, n, s = shapes[position]
        totals = [totals[0] + theirs, totals[1] + ours, totals[2] + macs[position]]
        print(f"{net.layers[index].name[:26]:<26} {f'{h}x{w} {kh}x{kw} {c}->{n} s{s}':>22} {macs[position]:>10,} "
              f"{theirs:>10,} {predicted[index].cycles:>9,} " + (f"{ours:>9,} " if measured else "")
              + f"{ours / theirs:>6.2f} {theirs_bytes:>10,} {our_bytes:>10,}")
    print(f"{'total':<26} {'':>22} {totals[2]:>10,} {totals[0]:>10,} {'':>9} " + ("          " if measured else "")
          + f"{totals[1] / totals[0]:>6.2f}   (ratio: this accelerator's cycles / SCALE-Sim's"
          + (", measured in RTL)" if measured else ", from the model)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
