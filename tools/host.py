#!/usr/bin/env python3
"""Run a compiled program on a board's host-link SoC over a serial port.

Examples:
  python tools/host.py --port /dev/ttyUSB0 info
  python tools/host.py --port /dev/ttyUSB0 --baud 115200 run build/sq11 -o build/sq11/board.bin

``run`` loads <dir>/image.bin (written by tools/compile.py) into the SoC's memory, starts the
program, waits for it, prints the performance counters and writes the image with every tensor
as the board computed it to -o (default <dir>/board.bin). Needs pyserial (pip install pyserial).
"""
import sys
import time
from pathlib import Path

from _cli import Parser

from boards.host import CompiledProgram, HostLink, LinkError
from hdl.uart import FRAME_BITS


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise ValueError
        return value
    parse.__name__ = "positive number"
    return parse


def main(argv=None) -> int:
    parser = Parser(prog="host.py", description=__doc__.splitlines()[0],
                    epilog="The SoC is hdl/soc.py's HostLinkSoC; the protocol is in hdl/uart_bridge.py.")
    parser.add_argument("--port", required=True, help="serial port of the board's UART, e.g. /dev/ttyUSB0")
    parser.add_argument("--baud", type=positive(int), default=115200,
                        help="bit rate the SoC was generated for (clock / clocks per bit; default 115200)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    commands.add_parser("info", help="print what the SoC was generated with")
    run = commands.add_parser("run", help="load, run and read back a tools/compile.py output directory")
    run.add_argument("directory", type=Path, help="compile.py output directory (image.bin, layout.json)")
    run.add_argument("--timeout", type=positive(float), default=600.0, metavar="S",
                     help="seconds to wait for the program (default 600)")
    run.add_argument("-o", "--output", type=Path, metavar="FILE",
                     help="where to write the image with the board's tensors (default <directory>/board.bin)")
    args = parser.parse_args(argv)

    program = None
    if args.command == "run":
        try:
            program = CompiledProgram.from_directory(args.directory)
        except ValueError as error:
            parser.error(str(error))
    try:
        import serial
    except ImportError:
        parser.error("pyserial is not installed (pip install pyserial)")
    try:
        port = serial.Serial(args.port, args.baud, timeout=1.0)
    except (serial.SerialException, ValueError) as error:
        parser.error(f"cannot open {args.port!r}: {error}")
    with port:
        link = HostLink(port)
        try:
            # A frame left unfinished by an earlier session would swallow ours: wait until the bridge is idle.
            port.reset_input_buffer()
            link.resync()
            info = link.connect()
            # Reads must outlast the bridge's own timeout for resync() to find it idle.
            port.timeout = max(1.0, 2 * info.timeout_cycles / (info.clocks_per_bit * args.baud))
            if program is None:
                print(f"{info.config}\nmemory {info.memory_bytes} bytes, {info.clocks_per_bit} clocks per bit, "
                      f"frame timeout {info.timeout_cycles} cycles")
                return 0
            link.check_program(program)
            start = time.monotonic()
            link.load(program.image)
            loaded = time.monotonic()
            print(f"host.py: loaded {len(program.image):,} bytes in {loaded - start:.1f} s "
                  f"({len(program.image) * FRAME_BITS / (loaded - start):,.0f} bit/s)", file=sys.stderr)
            link.start(program.program_addr, program.program_length)
            result = link.wait(args.timeout)
            result.counters = link.counters()
            first, end = program.tensor_span()
            board = bytearray(program.image)
            board[first:end] = link.read_memory(first, end - first)
        except (LinkError, TimeoutError) as error:
            print(f"host.py: error: {error}", file=sys.stderr)
            return 1
    if result.error is not None:
        print(f"host.py: error: the program stopped with {result.error.name}", file=sys.stderr)
        return 1
    output = args.output or args.directory / "board.bin"
    try:
        output.write_bytes(board)
    except OSError as error:
        parser.error(f"cannot write {str(output)!r}: {error.strerror}")
    for name, value in result.counters.items():
        print(f"{name:16} {value:12,}")
    print(f"host.py: done in {result.seconds:.2f} s; tensors {first:#x}..{end:#x} read back -> {output}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
