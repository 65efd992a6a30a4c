#!/usr/bin/env python3
"""Generate the accelerator's Verilog for a configuration.

Example: python tools/gen.py --pe 16x16 --dataflow os > accel.v
Only Verilog goes to stdout; progress goes to stderr.
"""
import sys
import time
from dataclasses import replace
from pathlib import Path

from _cli import Parser, accelerator_config, add_array_options, add_memory_options, array_config

from hdl.config import ArrayConfig
from hdl.csr import register_map_c_header, register_map_json
from hdl.generate import accelerator_name, generate_accelerator_verilog, generate_verilog


def main(argv=None) -> int:
    parser = Parser(prog="gen.py", description=__doc__.splitlines()[0],
                    epilog="The accelerator's top module is accel_<R>x<C>_<dataflow>_<arith>_<bus>b with an "
                           "AXI4 master m_axi, an AXI4-Lite slave s_axil and irq (hdl/accelerator.py); "
                           "--top array emits only the systolic array core (hdl/systolic_array.py).")
    add_array_options(parser)
    add_memory_options(parser)
    parser.add_argument("--multipliers", choices=ArrayConfig.multipliers_choices(), default="dsp",
                        help="int8 multipliers: dsp (an ordinary product), lut (logic only), or mixed "
                             "(the first --dsp-limit PEs dsp, the rest lut) (default dsp)")
    parser.add_argument("--dsp-limit", type=int, metavar="N", help="with --multipliers mixed: PEs with a DSP")
    parser.add_argument("--pipelined", action="store_true",
                        help="register the array's input lanes and each PE's product halfway and whole (3 cycles more latency; "
                             "for 100 MHz on an FPGA)")
    parser.add_argument("--dsp-primitive", choices=ArrayConfig.dsp_primitive_choices(),
                        help="instantiate this FPGA's DSP block with its registers in each DSP PE "
                             "(ecp5: MULT18X18D; needs --pipelined and int8; sim/primitives.py models it)")
    parser.add_argument("--top", choices=["accelerator", "array"], default="accelerator",
                        help="the whole accelerator, or the systolic array core alone (default accelerator)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write the Verilog to FILE instead of stdout")
    parser.add_argument("--regmap", type=Path, metavar="PREFIX",
                        help="also write the register map to PREFIX.json and PREFIX.h")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        array = replace(array_config(args), multipliers=args.multipliers, dsp_limit=args.dsp_limit,
                        pipelined=args.pipelined, dsp_primitive=args.dsp_primitive)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    if args.top == "array":
        name, verilog = array.name, generate_verilog(array)
    else:
        config = replace(accelerator_config(parser, args), array=array)
        name, verilog = accelerator_name(config), generate_accelerator_verilog(config)
    outputs = [(args.output, verilog)] if args.output else []
    if args.regmap:
        outputs += [(args.regmap.with_suffix(".json"), register_map_json()),
                    (args.regmap.with_suffix(".h"), register_map_c_header())]
    for path, text in outputs:
        try:
            path.write_text(text)
        except OSError as error:
            parser.error(f"cannot write {str(path)!r}: {error.strerror}")
    if not args.output:
        sys.stdout.write(verilog)
    print(f"gen.py: {name}: {len(verilog.splitlines())} lines of Verilog in {time.perf_counter() - start:.1f} s"
          + "".join(f" -> {path}" for path, _ in outputs), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
