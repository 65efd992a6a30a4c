#!/usr/bin/env python3
"""Generate the accelerator's Verilog for a configuration.

Example: python tools/gen.py --pe 16x16 --dataflow os > accel.v
Only Verilog goes to stdout; progress goes to stderr.
"""
import sys
import time
from pathlib import Path

from _cli import Parser, add_array_options, array_config

from hdl.generate import generate_verilog


def main(argv=None) -> int:
    parser = Parser(prog="gen.py", description=__doc__.splitlines()[0],
                    epilog="The top module is named systolic_<R>x<C>_<dataflow>_<arith>; its "
                           "stream protocol is documented in hdl/systolic_array.py.")
    add_array_options(parser)
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write the Verilog to FILE instead of stdout")
    args = parser.parse_args(argv)
    config = array_config(args)
    start = time.perf_counter()
    verilog = generate_verilog(config)
    if args.output:
        try:
            args.output.write_text(verilog)
        except OSError as error:
            parser.error(f"cannot write -o {str(args.output)!r}: {error.strerror}")
    else:
        sys.stdout.write(verilog)
    print(f"gen.py: {config.name}: {config.rows}x{config.cols} PEs, {len(verilog.splitlines())} "
          f"lines of Verilog in {time.perf_counter() - start:.1f} s"
          + (f" -> {args.output}" if args.output else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
