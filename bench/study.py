#!/usr/bin/env python3
"""The design-space study: WS against OS for compact nets at 8x8, 16x16 and 32x32, with the performance model.

One command writes docs/study.md, docs/study.json (every layer's figures) and the plots
docs/study_*.png. Every net is traced at --input (default 3x224x224, width 1.0, 1000 classes,
seeded random weights: performance does not depend on the weights), quantized once, compiled for
each array and dataflow (default memories: 64 KiB scratchpads, 64 KiB accumulator, 128-bit
AXI) and predicted layer by layer by ``quant.perfmodel`` (validated against the RTL's counters
by tests/test_perfmodel.py; the README gives its measured accuracy). No RTL is run.

Run: python bench/study.py [--input 3x224x224] [--arrays 8,16,32] [--models ...] [--reuse]
(--reuse renders docs/ again from docs/study.json without recomputing.)
"""
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import torch  # noqa: E402
from _cli import Parser  # noqa: E402
from _net import input_shape, quantize_net  # noqa: E402

from hdl.config import AcceleratorConfig, ArrayConfig  # noqa: E402
from quant.compiler import UnsupportedLayer, compile_graph  # noqa: E402
from quant.frontend import trace  # noqa: E402
from quant.perfmodel import predicted_figures  # noqa: E402
from quant.report import LayerFigures, plot_roofline  # noqa: E402
from quant.zoo import ZOO  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
MODELS = ("squeezenext23", "squeezenext23v5", "squeezenet1_1", "mobilenet_v2", "shufflenet_v2")
DATAFLOWS = ("ws", "os")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def compute(models, arrays, shape) -> dict:
    results = {"input": "x".join(map(str, shape)), "nets": {}}
    for name in models:
        start = time.perf_counter()
        torch.manual_seed(0)
        model = ZOO[name](width=1.0, num_classes=1000, in_channels=shape[0]).eval()
        integer, _, x = quantize_net(trace(model, shape), shape, 2)
        results["nets"][name] = {}
        for pe in arrays:
            for dataflow in DATAFLOWS:
                config = AcceleratorConfig(ArrayConfig(pe, pe, dataflow, "int8"))
                key = f"{pe}x{pe}_{dataflow}"
                try:
                    rows = predicted_figures(compile_graph(config, integer, x))
                except UnsupportedLayer as error:
                    results["nets"][name][key] = {"error": str(error).splitlines()[0]}
                    continue
                results["nets"][name][key] = {"layers": [asdict(row) for row in rows]}
                print(f"study.py: {name} {key}: {sum(r.cycles for r in rows):,} cycles "
                      f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
        (DOCS / "study.json").write_text(json.dumps(results))       # after each net: --reuse renders a partial run
    return results


def _rows(entry) -> list[LayerFigures]:
    return [LayerFigures(**{**row, "shape": tuple(row["shape"])}) for row in entry["layers"]]


def _array_layers(rows):
    """The layers the array runs: dense convolutions and depthwise ones (its depthwise mode)."""
    return [r for r in rows if r.op.startswith("conv") or r.op == "depthwise"]


def _utilization(rows, pe) -> float:
    """MACs of the array's layers over the whole net's cycles x R x C."""
    return sum(r.macs for r in _array_layers(rows)) / (pe * pe * sum(r.cycles for r in rows))


def _peak(row: LayerFigures, pe: int) -> int:
    """MACs per cycle of the unit that runs the layer: the array (R x C); for a depthwise layer the array's
    depthwise mode, at most one output per column and cycle (its window's taps x C, at most R x C); else
    C (the accumulator path)."""
    if row.op.startswith("conv"):
        return pe * pe
    if row.op == "depthwise":
        height, width, channels = row.shape
        return pe * min(pe, row.macs // (height * width * channels))
    return pe


def _memory_bound(row: LayerFigures, pe: int, bus_bytes: int) -> bool:
    """Below its unit's roofline ridge: DRAM bytes take more bus cycles than the MACs take at the unit's peak."""
    return (row.bytes_read + row.bytes_written) / bus_bytes > row.macs / _peak(row, pe)


def _stages(rows):
    """Layers grouped by output resolution (a stage of the net), in order."""
    groups: list[tuple[int, list]] = []
    for r in rows:
        if groups and groups[-1][0] == r.shape[0]:
            groups[-1][1].append(r)
        else:
            groups.append((r.shape[0], [r]))
    return groups


def _blocks_by_stage(rows):
    """(stage output size, utilization of that stage's dense convolutions other than the stem, cycles)."""
    stages = []
    for size, group in _stages(rows[1:]):           # rows[0]: the 7x7 stem
        convs = _array_layers(group)
        if len(convs) >= 4:                          # a stage of blocks (4 convolutions and more)
            stages.append((size, sum(r.macs for r in convs), sum(r.cycles for r in convs)))
    return stages


def _squeezenext_answer(nets, arrays) -> list[str]:
    lines = ["**Answer.**", ""]
    first_worse, savings, stem_shares = [], [], []
    for pe in arrays:
        for df in DATAFLOWS:
            key = f"{pe}x{pe}_{df}"
            a, b = _rows(nets["squeezenext23"][key]), _rows(nets["squeezenext23v5"][key])
            total_a, total_b = sum(r.cycles for r in a), sum(r.cycles for r in b)
            stem = a[0]
            stages = _blocks_by_stage(a)
            utils = ", ".join(f"{size}x{size}: {macs / (pe * pe * cycles):.0%}" for size, macs, cycles in stages)
            lines.append(f"* {pe}x{pe} {df.upper()}: the 7x7 stem ({stem.shape[0]}x{stem.shape[1]}x{stem.shape[2]} "
                         f"output; an im2col copy of the input, 49 x 3 channels in {-(-147 // pe)} blocks of {pe} "
                         f"lanes) takes {stem.cycles / total_a:.0%} of "
                         f"SqueezeNext-23's cycles at {stem.pe_utilization:.0%} utilization; the blocks' "
                         f"convolutions per stage: {utils}. 23v5 takes {total_b:,} cycles against 23's "
                         f"{total_a:,} ({total_b / total_a - 1:+.1%}).")
            if len(stages) >= 2:
                first_worse.append(stages[0][1] / stages[0][2] < stages[1][1] / stages[1][2])
            savings.append(1 - total_b / total_a)
            stem_shares.append(stem.cycles / total_a)
    held = sum(first_worse)
    lines += ["", "SqueezeNext's stages have 32, 64, 128 and 256 channels and every block squeezes twice by half "
              "(quant/zoo.py), so the first stage's block layers have 8 to 32 channels: on 16 or 32 lanes most of "
              "each channel block is empty, and such thin layers move more DRAM bytes per MAC. "
              f"The first stage's blocks use the array less than the second stage's in {held} of "
              f"{len(first_worse)} configurations above, so the authors' observation "
              f"{'shows up here' if held > len(first_worse) / 2 else 'mostly does not show up here'}; "
              f"moving blocks to the third stage (23v5) saves {min(savings):.1%} to {max(savings):.1%} of the "
              "cycles. The 7x7 stem, which neither version changes, takes "
              f"{min(stem_shares):.0%} to {max(stem_shares):.0%} of the cycles: since 2026-12-03 it reads an im2col "
              "copy of the input that the compiler lays out (its 49 taps' 3 channels share lanes), where before "
              "its 3 input channels occupied 3 of a block's lanes in each of 49 taps (57% to 85% of the cycles at "
              "2% to 37% utilization).", ""]
    return lines


def render(results: dict) -> None:
    plt = _pyplot()
    nets = results["nets"]
    bus_bytes = AcceleratorConfig(ArrayConfig(1, 1)).bus_bytes
    arrays = sorted({int(key.split("x")[0]) for entries in nets.values() for key in entries})
    lines = [
        "# Study: weight vs output stationary on compact CNNs (performance model)",
        "",
        f"Generated by `python bench/study.py` on {time.strftime('%Y-%m-%d')}. Input {results['input']}, width 1.0, "
        "1000 classes, int8; default memories (64 KiB scratchpads split evenly between activations and weights, "
        f"64 KiB accumulator, {8 * bus_bytes}-bit AXI = {bus_bytes} B/cycle, DRAM read latency 2). Every figure is a "
        "prediction of `quant/perfmodel.py` from the compiled program: no RTL was run here. The model matches the "
        "RTL's performance counters within 5% on every layer of SqueezeNet 1.1 and MobileNetV2 at 4x4 and 8x8 OS "
        "and at 8x8 WS (the test); on WS at 4x4 up to 7.3% off (one 1x1 projection of MobileNetV2); at 16x16 and "
        "3x224x224 within 0.1% on whole SqueezeNet 1.1, MobileNetV2 and ShuffleNetV2 runs and 1.2% per layer (see the "
        "README, 'The performance model'); it has not been checked against RTL at 32x32. "
        + ("The input is 112x112 rather than 224x224 to keep the run near 15 minutes on this shared 2-core "
           "machine (the model walks every instruction in Python); channel counts, which decide how full the "
           "array's blocks are, are those of the 224x224 nets, maps are half as wide. "
           if results["input"] != "3x224x224" else "")
        + "ShuffleNetV2 compiles (channel shuffle folded into the weights) and is included.",
        "",
        "Utilization is the MACs of the layers the array runs / (R x C x all cycles of the net): dense convolutions, "
        "and depthwise convolutions (the array's depthwise mode, both dataflows since 2026-12-02 #3); pooling and adds "
        "run on the accumulator path, which is not the array, except global average pools (a depthwise sum in the "
        "array's depthwise mode where the window fits since 2026-12-05), which are not counted either. A layer is *memory-bound* when its DRAM bytes need more bus "
        "cycles (bytes / 16) than its MACs need at the peak of the unit that runs it (array: RC MACs/cycle; "
        "depthwise layers in the array's depthwise mode: one output per column and cycle, kh x kw x C; "
        "accumulator path: C): "
        "left of that unit's roofline ridge.",
        "",
        "## WS against OS",
        "",
        "| net | " + " | ".join(f"{pe}x{pe} {df.upper()} cycles (util.)" for pe in arrays for df in DATAFLOWS) + " |",
        "|---|" + "---|" * (2 * len(arrays)),
    ]
    for name, entries in nets.items():
        cells = []
        for pe in arrays:
            for df in DATAFLOWS:
                entry = entries.get(f"{pe}x{pe}_{df}", {})
                if "layers" not in entry:
                    cells.append(f"not compiled: {entry.get('error', 'not run')}")
                    continue
                rows = _rows(entry)
                cells.append(f"{sum(r.cycles for r in rows):,} ({_utilization(rows, pe):.1%})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ratio_by_array = {pe: [sum(r.cycles for r in _rows(e[f"{pe}x{pe}_os"])) / sum(r.cycles for r in _rows(e[f"{pe}x{pe}_ws"]))
                           for e in nets.values() if "layers" in e.get(f"{pe}x{pe}_os", {})
                           and "layers" in e.get(f"{pe}x{pe}_ws", {})] for pe in arrays}
    lines += ["", "OS/WS cycle ratio per net and array (below 1: OS faster): "
              + "; ".join(f"{pe}x{pe}: {min(r):.2f} to {max(r):.2f}" for pe, r in ratio_by_array.items() if r)
              + ". Why: an OS COMPUTE covers R output pixels against (up to) the whole reduction (beats = taps x input "
              "blocks x R) and has fixed costs beyond its beats (its drain of about 2R + C cycles, overlapped by "
              "the compute unit's tiles in flight in their own accumulator regions, and its STORE of R rows; "
              "before 2026-12-02 also the transposer's R-row fill behind the weight reader's hand-over), "
              "which thin layers with few taps and one or two input blocks do not amortize; a WS COMPUTE streams "
              "up to an accumulator half of output pixels past R stationary weight rows, so its fill of R "
              "cycles is spread over many more beats. A WS step also loads one activation tile for a round of output "
              "blocks (each block streams it past its own R weight rows), so its DRAM traffic per MAC is lower; "
              "MobileNetV2's and ShuffleNetV2's depthwise layers run in the array's depthwise mode on both "
              "(OS: at most 3 x C MACs per cycle for a 3x3 window at stride 1, in R-beat COMPUTEs of R - 2 outputs each, "
              "so it also pays the per-COMPUTE costs above; WS: a COMPUTE takes a stack of window rows on segments of "
              "the output rows, on 16x16 all three rows of a 3x3 window at stride 1, up to 6 x C; at stride 2 a "
              "paired COMPUTE per window row, 3 x C).", ""]
    lines += ["| net | " + " | ".join(f"{pe}x{pe}" for pe in arrays) + " |", "|---|" + "---|" * len(arrays)]
    for name, entries in nets.items():
        ratios = []
        for pe in arrays:
            ws, os_ = entries.get(f"{pe}x{pe}_ws", {}), entries.get(f"{pe}x{pe}_os", {})
            if "layers" in ws and "layers" in os_:
                ratios.append(f"{sum(r.cycles for r in _rows(os_)) / sum(r.cycles for r in _rows(ws)):.2f}")
            else:
                ratios.append("-")
        lines.append(f"| {name} | " + " | ".join(ratios) + " |")

    # Plot: total cycles per net, WS and OS, per array.
    figure, axes = plt.subplots(1, len(arrays), figsize=(4.2 * len(arrays), 4))
    for axis, pe in zip(axes if len(arrays) > 1 else [axes], arrays):
        names = [n for n in nets if "layers" in nets[n].get(f"{pe}x{pe}_ws", {})]
        for offset, df in enumerate(DATAFLOWS):
            axis.bar([i + 0.4 * offset for i in range(len(names))],
                     [sum(r.cycles for r in _rows(nets[n][f"{pe}x{pe}_{df}"])) / 1e6 for n in names], 0.4,
                     label=df.upper())
        axis.set_xticks([i + 0.2 for i in range(len(names))], names, rotation=30, fontsize=7)
        axis.set_title(f"{pe}x{pe}")
        axis.set_ylabel("million cycles")
        axis.legend()
    figure.tight_layout()
    figure.savefig(DOCS / "study_ws_os.png", dpi=110)
    plt.close(figure)
    lines += ["", "![cycles, WS and OS](study_ws_os.png)", ""]

    # SqueezeNext: utilization per stage, 23 against 23v5.
    lines += ["## SqueezeNext: do the early layers use the array poorly?", ""]
    if all("layers" in nets.get(n, {}).get(f"{pe}x{pe}_os", {}) for n in ("squeezenext23", "squeezenext23v5")
           for pe in arrays):
        lines += ["Per stage (layers grouped by output resolution): share of the net's cycles and array "
                  "utilization of that stage's dense convolutions (MACs / (RC x the stage's cycles)), OS:", ""]
        figure, axes = plt.subplots(1, len(arrays), figsize=(4.2 * len(arrays), 4))
        for axis, pe in zip(axes if len(arrays) > 1 else [axes], arrays):
            lines += [f"**{pe}x{pe} OS**", "", "| net | " + " | ".join(["stage (output HxW): cycles share, "
                                                                       "utilization"]) + " |", "|---|---|"]
            for name in ("squeezenext23", "squeezenext23v5"):
                rows = _rows(nets[name][f"{pe}x{pe}_os"])
                total = sum(r.cycles for r in rows)
                cells, xs, ys = [], [], []
                for size, group in _stages(rows):
                    cycles = sum(r.cycles for r in group)
                    util = sum(r.macs for r in _array_layers(group)) / (pe * pe * cycles)
                    cells.append(f"{size}x{size}: {cycles / total:.0%}, {util:.0%}")
                    xs.append(f"{size}")
                    ys.append(100 * util)
                lines.append(f"| {name} ({total:,} cycles) | " + "; ".join(cells) + " |")
                axis.plot(range(len(ys)), ys, marker="o", label=name)
                axis.set_xticks(range(len(xs)), xs)
            axis.set_title(f"{pe}x{pe} OS")
            axis.set_xlabel("stage (output size)")
            axis.set_ylabel("array utilization of the stage (%)")
            axis.legend(fontsize=7)
            lines.append("")
        figure.tight_layout()
        figure.savefig(DOCS / "study_squeezenext_stages.png", dpi=110)
        plt.close(figure)
        lines += ["![SqueezeNext utilization per stage](study_squeezenext_stages.png)", ""]

        lines += _squeezenext_answer(nets, arrays)

    # Memory-bound layers.
    lines += ["## Which layers are memory-bound?", "",
              "Layers left of their unit's ridge (DRAM bytes / 16 > MACs / peak), and their share of the net's "
              "cycles, per array (OS):", "",
              "| net | " + " | ".join(f"{pe}x{pe}: memory-bound layers (cycle share)" for pe in arrays) + " |",
              "|---|" + "---|" * len(arrays)]
    for name, entries in nets.items():
        cells = []
        for pe in arrays:
            entry = entries.get(f"{pe}x{pe}_os", {})
            if "layers" not in entry:
                cells.append("-")
                continue
            rows = _rows(entry)
            bound = [r for r in rows if _memory_bound(r, pe, bus_bytes)]
            ops = {}
            for r in bound:
                ops[r.op] = ops.get(r.op, 0) + 1
            cells.append(f"{len(bound)} of {len(rows)} ({sum(r.cycles for r in bound) / sum(r.cycles for r in rows):.0%}"
                         f"): " + ", ".join(f"{count} {op}" for op, count in sorted(ops.items())))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for pe in arrays:
        series = {name: _rows(entries[f"{pe}x{pe}_os"]) for name, entries in nets.items()
                  if "layers" in entries.get(f"{pe}x{pe}_os", {})}
        plot_roofline(DOCS / f"study_roofline_{pe}x{pe}.png", AcceleratorConfig(ArrayConfig(pe, pe, "os", "int8")),
                      series, f"every layer, {pe}x{pe} OS, model")
    lines += ["", *[f"![roofline {pe}x{pe}](study_roofline_{pe}x{pe}.png)" for pe in arrays], ""]
    (DOCS / "study.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = Parser(prog="study.py", description=__doc__.splitlines()[0])
    parser.add_argument("--input", default="3x224x224", metavar="CxHxW")
    parser.add_argument("--arrays", default="8,16,32", help="square array sizes, comma separated")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--reuse", action="store_true", help="render docs/ from docs/study.json")
    args = parser.parse_args(argv)
    DOCS.mkdir(exist_ok=True)
    if args.reuse:
        results = json.loads((DOCS / "study.json").read_text())
    else:
        try:
            shape = input_shape(args.input)
            arrays = [int(v) for v in args.arrays.split(",")]
            models = args.models.split(",")
            unknown = [m for m in models if m not in ZOO]
            if unknown or not all(1 <= pe <= 64 for pe in arrays):
                raise ValueError(f"--models must name zoo nets ({', '.join(sorted(ZOO))}) and --arrays be 1..64, "
                                 f"not {args.models!r} / {args.arrays!r}")
        except ValueError as error:
            parser.error(str(error))
        results = compute(models, arrays, shape)
        (DOCS / "study.json").write_text(json.dumps(results))
    render(results)
    print(f"study.py: wrote {DOCS / 'study.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
