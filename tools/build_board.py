#!/usr/bin/env python3
"""Build the accelerator for an FPGA board: yosys, nextpnr, ecppack/icepack, and a report.

Example: python tools/build_board.py --board ulx3s --pe 16x16 --dataflow os
The report is printed and written to <dir>/report.json (default build/boards/<board>_<design>).
"""
import argparse
import sys
from dataclasses import replace
from pathlib import Path

from _cli import Parser, add_array_options, add_memory_options, array_config

from boards.board import BOARDS, board_choices
from boards.estimate import estimate_needs
from boards.flow import TIMING_EFFORTS, DoesNotFit, build
from boards.pll import PllPlan, plan_pll
from boards.synth import SynthesisError
from hdl.accelerator import Accelerator
from hdl.config import AcceleratorConfig, ArrayConfig
from hdl.generate import accelerator_name, top_ports
from hdl.soc import HostLinkSoC
from hdl.systolic_array import SystolicArray
from hdl.uart import clocks_per_bit

MAX_CLOCK_MHZ = 500


def clock_mhz(text: str) -> float:
    """``argparse`` type for ``--clock-mhz``."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value <= MAX_CLOCK_MHZ:
        raise argparse.ArgumentTypeError(f"clock must be a number of MHz above 0 and at most {MAX_CLOCK_MHZ}, "
                                         f"not {text!r}")
    return value


def _array(args, multipliers, dsp_limit) -> ArrayConfig:
    """The array to build: pipelined unless asked not to, with the board's DSP primitive where it applies."""
    array = replace(array_config(args), multipliers=multipliers, dsp_limit=dsp_limit, pipelined=not args.unpipelined)
    primitive = BOARDS[args.board].dsp_primitive
    if args.no_dsp_primitive or primitive is None or array.dsp_primitive_problem(primitive) is not None:
        return array
    return replace(array, dsp_primitive=primitive)


def _design(args, multipliers, dsp_limit):
    array = _array(args, multipliers, dsp_limit)
    if args.top == "array":
        return SystolicArray(array), array.name
    config = AcceleratorConfig(array, args.spad_kib, args.acc_kib, args.bus_bits, args.channel_rows)
    if args.top == "soc":
        # The SoC runs from the PLL, so the UART divider is set for the PLL's output.
        divider = clocks_per_bit(soc_clock_plan(args).output_mhz * 1e6, args.baud)
        return (HostLinkSoC(config, memory_kib=args.soc_kib, clocks_per_bit=divider),
                "soc_" + accelerator_name(config).removeprefix("accel_"))
    return Accelerator(config), accelerator_name(config)


def soc_clock_plan(args) -> PllPlan:
    """The PLL setting that clocks the SoC at the target (``--clock-mhz`` or the board's default)."""
    board = BOARDS[args.board]
    return plan_pll(board.family, board.oscillator_mhz, args.clock_mhz or board.default_clock_mhz)


def choose_multipliers(args, board):
    """``--multipliers auto``: DSPs for every PE if they fit beside the rest of the design, else as many as do.

    Returns the design, its name and the estimate of the chosen configuration.
    """
    from amaranth.back import rtlil
    design, name = _design(args, "dsp", None)
    needs = estimate_needs(rtlil.convert(design, name=name, ports=top_ports(design)), board)
    array = replace(array_config(args), pipelined=not args.unpipelined)
    spare = board.resources["DSPs"] - (needs.dsps - array.dsp_multipliers)
    if needs.dsps <= board.resources["DSPs"] or array.dsp_multipliers == 0:
        return design, name, needs, "dsp"
    if spare >= 1:
        design, name = _design(args, "mixed", spare)
        return design, name, None, f"mixed (DSP multipliers for {spare} of {array.rows * array.cols} PEs)"
    outside = needs.dsps - array.dsp_multipliers
    if outside > board.resources["DSPs"]:
        raise DoesNotFit(f"{name} does not fit {board.name}: outside the array it needs about {outside} DSP "
                         f"blocks (requantization, combine and address multipliers) but {board.device} has "
                         f"{board.resources['DSPs']}")
    design, name = _design(args, "lut", None)
    return design, name, None, "lut"


def main(argv=None) -> int:
    parser = Parser(prog="build_board.py", description=__doc__.splitlines()[0],
                    epilog="--top accelerator and array have ports no board can pin: they are placed and routed "
                           "out of context on ECP5 (resources and Fmax, no bitstream) and only synthesized on "
                           "iCE40.")
    parser.add_argument("--board", choices=board_choices(), required=True, help="target board")
    add_array_options(parser)
    add_memory_options(parser)
    parser.add_argument("--multipliers", choices=["auto", *ArrayConfig.multipliers_choices()], default="auto",
                        help="int8 multipliers: dsp, lut (logic), mixed (--dsp-limit PEs on DSPs), or auto: "
                             "dsp if the board has enough DSP blocks, else mixed with all it has (default auto)")
    parser.add_argument("--dsp-limit", type=int, metavar="N", help="with --multipliers mixed: PEs with a DSP")
    parser.add_argument("--unpipelined", action="store_true",
                        help="omit the array's edge and product registers (hdl/config.py ArrayConfig.pipelined)")
    parser.add_argument("--no-dsp-primitive", action="store_true",
                        help="leave the DSP PEs' products to synthesis (a *) instead of instantiating the board's "
                             "DSP block with its registers (ECP5 MULT18X18D; pipelined int8 arrays only)")
    parser.add_argument("--top", choices=["soc", "accelerator", "array"],
                        help="soc: the accelerator with block RAM and the UART host link on the board's pins "
                             "(hdl/soc.py; a bitstream); accelerator: its AXI ports stay unplaced (out of context, "
                             "no bitstream); array: the systolic array core alone, likewise (default soc where the "
                             "board has a UART, else accelerator)")
    parser.add_argument("--soc-kib", type=int, default=16, metavar="KIB",
                        help="soc: block RAM shared by the host and the accelerator's DMA (default 16)")
    parser.add_argument("--baud", type=int, default=115200, help="soc: UART baud rate (default 115200)")
    parser.add_argument("--clock-mhz", type=clock_mhz, metavar="MHZ",
                        help="target clock (default: the board's, e.g. 100 for ulx3s)")
    parser.add_argument("--synth-only", action="store_true", help="stop after yosys")
    parser.add_argument("--lut4-only", action="store_true",
                        help="ECP5: map logic to LUT4s only (synth_ecp5 -nowidelut): fewer LUT sites where logic "
                             "multipliers dominate (16x16 SoC), Fmax within a few percent")
    parser.add_argument("--fifos-in-block-ram", action="store_true",
                        help="ECP5: put the widest FIFOs in the block RAMs the design leaves spare instead of "
                             "LUT RAM (six LUT sites per 16x4 bits however shallow the FIFO)")
    parser.add_argument("--seed", type=int, nargs="+", default=[1], metavar="SEED",
                        help="nextpnr placement seed (default 1); several: place and route once per seed, as many "
                             "at a time as the process may use CPUs, and keep the fastest (one netlist's Fmax moves by up to "
                             "8%% between seeds)")
    parser.add_argument("--timing-effort", choices=list(TIMING_EFFORTS), default="normal",
                        help="normal: nextpnr's defaults; compact: its heap placer spreads cells less (the "
                             "4x4 SoC 3 to 12%% faster in the same time); high: it weighs timing more in placement "
                             "and rips up failing arcs in routing, in 2 to 3 times the build time (boards/flow.py "
                             "TIMING_EFFORTS; default normal)")
    parser.add_argument("-o", "--output", type=Path, metavar="DIR", help="build directory")
    args = parser.parse_args(argv)
    board = BOARDS[args.board]
    if len(set(args.seed)) != len(args.seed):
        parser.error(f"--seed values must be distinct, not {' '.join(map(str, args.seed))}")
    if args.lut4_only and board.family != "ecp5":
        parser.error(f"--lut4-only is an ECP5 option; {board.name} is {board.family}, which has no wider LUTs")
    if args.fifos_in_block_ram and board.family != "ecp5":
        parser.error(f"--fifos-in-block-ram is an ECP5 option; {board.name} is {board.family}, which has no LUT RAM")
    if args.top is None:
        args.top = "soc" if board.soc_pins else "accelerator"
    pins = board.soc_pins if args.top == "soc" else None
    if args.top == "soc" and pins is None:
        parser.error(f"--top soc needs a UART on the board; {board.name} has none in amaranth-boards "
                     f"(use --top accelerator or array)")

    try:
        if args.multipliers == "auto":
            if args.dsp_limit is not None:
                parser.error("--dsp-limit needs --multipliers mixed, not auto")
            design, name, needs, chosen = choose_multipliers(args, board)
        else:
            design, name = _design(args, args.multipliers, args.dsp_limit)
            needs, chosen = None, args.multipliers
    except DoesNotFit as error:
        print(f"build_board.py: error: {error}", file=sys.stderr)
        return 1
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    workdir = args.output or Path("build/boards") / f"{args.board}_{name}"
    print(f"build_board.py: {name} for {board.name} ({board.device}), multipliers {chosen}, "
          f"target {args.clock_mhz or board.default_clock_mhz:g} MHz -> {workdir}", file=sys.stderr)
    pll = None
    if pins is not None:
        pll = soc_clock_plan(args)
        top_kind = (f"UART SoC (hdl/soc.py) on the board's pins, clocked at {pll.output_mhz:g} MHz by a PLL from "
                    f"the {board.oscillator_mhz:g} MHz oscillator")
    else:
        top_kind = ("systolic array core" if args.top == "array" else "accelerator") + (
            ", out of context (ports not on pins)" if board.family == "ecp5" else ", unpinned")
    try:
        report = build(design, name, board, workdir, target_mhz=args.clock_mhz, synth_only=args.synth_only,
                       top_kind=top_kind, needs=needs, pins=pins, pll=pll,
                       progress=lambda text: print(f"build_board.py: {text}", file=sys.stderr), seeds=tuple(args.seed),
                       lut4_only=args.lut4_only, fifos_in_block_ram=args.fifos_in_block_ram,
                       timing_effort=args.timing_effort)
    except DoesNotFit as error:
        print(f"build_board.py: error: {error}", file=sys.stderr)
        return 1
    except SynthesisError as error:
        print(f"build_board.py: error: {error}", file=sys.stderr)
        return 1
    print(report.summary())
    print(f"report: {workdir / 'report.json'}", file=sys.stderr)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
