"""Shared command-line conventions: bad input exits with status 2 and one line."""
import argparse
import sys

from hdl.config import BUS_WIDTHS, AcceleratorConfig, ArrayConfig, parse_pe


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single line on stderr, exit status 2."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def pe_shape(text: str) -> tuple[int, int]:
    """``argparse`` type for ``--pe RxC``."""
    try:
        return parse_pe(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_array_options(parser: argparse.ArgumentParser, default_pe: str = "16x16") -> None:
    parser.add_argument("--pe", type=pe_shape, default=default_pe, metavar="RxC",
                        help=f"PE array rows x columns, each 1..64 (default {default_pe})")
    parser.add_argument("--dataflow", choices=ArrayConfig.dataflow_choices(), default="os",
                        help="ws: weight stationary; os: output stationary (default os)")
    parser.add_argument("--arith", choices=ArrayConfig.arith_choices(), default="int8",
                        help="int8 MACs, binary XNOR-popcount MACs, or both selected per "
                             "operation at run time (default int8)")
    parser.add_argument("--no-depthwise", action="store_true",
                        help="leave out the array's depthwise mode (an operand multiplexer per PE); "
                             "depthwise layers then run on the accumulator path")
    parser.add_argument("--no-paired", action="store_true",
                        help="leave out paired depthwise COMPUTEs (a second activation read port and a third "
                             "operand per PE, on WS per PE of row 0); stride-2 depthwise layers then take two "
                             "COMPUTEs a window row")


def array_config(args: argparse.Namespace) -> ArrayConfig:
    rows, cols = args.pe
    return ArrayConfig(rows, cols, args.dataflow, args.arith, depthwise=False if args.no_depthwise else None,
                       paired=False if args.no_paired else None)


def add_memory_options(parser: argparse.ArgumentParser) -> None:
    defaults = AcceleratorConfig(ArrayConfig(1, 1))
    parser.add_argument("--spad-kib", type=int, default=defaults.spad_kib, metavar="KIB",
                        help=f"activation + weight scratchpad KiB, 1..1024 (default {defaults.spad_kib})")
    parser.add_argument("--acc-kib", type=int, default=defaults.acc_kib, metavar="KIB",
                        help=f"accumulator SRAM KiB, 1..1024 (default {defaults.acc_kib})")
    parser.add_argument("--bus-bits", type=int, choices=BUS_WIDTHS, default=defaults.bus_bits,
                        help=f"AXI4 data width (default {defaults.bus_bits})")
    parser.add_argument("--channel-rows", type=int, default=defaults.channel_rows, metavar="N",
                        help=f"rows of C output-channel parameters, 1..4096 (default {defaults.channel_rows})")


def accelerator_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> AcceleratorConfig:
    """The accelerator of the parsed options; invalid combinations are reported as CLI errors."""
    try:
        return AcceleratorConfig(array_config(args), args.spad_kib, args.acc_kib, args.bus_bits, args.channel_rows)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
