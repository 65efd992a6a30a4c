"""Control/status registers: the register map as data, its AXI4-Lite slave, and its JSON / C header."""
import functools
import json
import operator
from dataclasses import asdict, dataclass

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from .axi import Response, axi_lite_signature

__all__ = ["Register", "REGISTERS", "ErrorCode", "Control", "Status", "COUNTERS", "CsrBlock", "register_map_json",
           "register_map_c_header", "register"]

CSR_ADDR_WIDTH = 8


class ErrorCode(enum.Enum, shape=4):
    """Why a run stopped with STATUS.ERROR set."""
    NONE = 0
    ILLEGAL_OPCODE = 1
    READ_RESPONSE = 2        # SLVERR or DECERR on an AXI read
    WRITE_RESPONSE = 3       # SLVERR or DECERR on an AXI write
    SRAM_RANGE = 4           # an instruction addresses rows outside a scratchpad or the accumulator (or a
                             # STORE keeps no channel or more than C)
    PROGRAM_OVERRUN = 5      # PROGRAM_LENGTH instructions fetched without an END
    ILLEGAL_FIELD = 6        # a field value the hardware cannot execute (OS COMPUTE beats not a multiple of R,
                             # an undefined LOAD target or COMBINE operation, a paired COMPUTE the array
                             # cannot run: ``compute.ComputeUnit``'s error_field)


class Control(enum.IntFlag):
    """Bits of the CONTROL register."""
    START = 1 << 0          # write 1 to start a run (reads 0)
    IRQ_ENABLE = 1 << 1     # raise irq while DONE or ERROR


class Status(enum.IntFlag):
    """Bits of the STATUS register (DONE and ERROR clear on START)."""
    BUSY = 1 << 0
    DONE = 1 << 1
    ERROR = 1 << 2


def _bits_text(flags) -> str:
    return "; ".join(f"bit {flag.value.bit_length() - 1} {flag.name}" for flag in flags)


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    access: str          # "rw", "ro" or "wo"
    description: str


COUNTERS = ("CYCLES", "ARRAY_BUSY", "LOAD_STALL", "STORE_STALL", "BYTES_READ", "BYTES_WRITTEN",
            "INSTRUCTIONS", "COMPUTE_STARVED")
_COUNTER_TEXT = {
    "CYCLES": "cycles from START to done or error",
    "ARRAY_BUSY": "cycles an activation beat entered the systolic array",
    "LOAD_STALL": "cycles the compute unit waited for a load->compute token",
    "STORE_STALL": "cycles the compute unit waited for a store->compute token",
    "BYTES_READ": "bytes read over AXI (instructions and data)",
    "BYTES_WRITTEN": "bytes written over AXI (strobed bytes)",
    "INSTRUCTIONS": "instructions retired, END included",
    "COMPUTE_STARVED": "cycles the compute unit was idle with no instruction fetched for it yet",
}

REGISTERS = [
    Register("CONTROL", 0x00, "rw", _bits_text(Control) + " (START: write 1 to start a run, reads 0)"),
    Register("STATUS", 0x04, "ro", _bits_text(Status) + " (DONE and ERROR clear on START)"),
    Register("PROGRAM_ADDR", 0x08, "rw", "DRAM byte address of the first instruction (bus aligned)"),
    Register("PROGRAM_LENGTH", 0x0C, "rw", "instructions fetched at most; no END within them is an error"),
    Register("ERROR_CODE", 0x10, "ro", "ErrorCode of the last run: " +
             ", ".join(f"{code.value} {code.name}" for code in ErrorCode)),
] + [Register(name, 0x20 + 4 * index, "ro", f"performance counter: {_COUNTER_TEXT[name]} (32-bit, wraps)")
     for index, name in enumerate(COUNTERS)]


def register(name: str) -> Register:
    return next(r for r in REGISTERS if r.name == name)


def register_map_json() -> str:
    return json.dumps({"registers": [asdict(r) for r in REGISTERS],
                       "error_codes": {code.name: code.value for code in ErrorCode}}, indent=2) + "\n"


def register_map_c_header(prefix: str = "ACCEL") -> str:
    lines = ["/* Generated from hdl/csr.py; do not edit. */", f"#ifndef {prefix}_REGS_H", f"#define {prefix}_REGS_H", ""]
    for r in REGISTERS:
        lines.append(f"#define {prefix}_{r.name} 0x{r.offset:02x}u  /* {r.access}: {r.description} */")
    lines.append("")
    lines += [f"#define {prefix}_{flags.__name__.upper()}_{flag.name} (1u << {flag.value.bit_length() - 1})"
              for flags in (Control, Status) for flag in flags]
    lines.append("")
    lines += [f"#define {prefix}_ERROR_{code.name} {code.value}u" for code in ErrorCode]
    lines += ["", f"#endif /* {prefix}_REGS_H */", ""]
    return "\n".join(lines)


class CsrBlock(wiring.Component):
    """AXI4-Lite slave for ``REGISTERS``.

    Members
    -------
    bus : In(axi_lite_signature(8))
    start : Out(1)               one-cycle pulse on a write of CONTROL.START
    irq_enable, program_addr, program_length : Out
    busy, done, error : In(1);   error_code : In(ErrorCode)
    counters : In(32) each, named after ``COUNTERS``
    """

    def __init__(self):
        members = {
            "bus": In(axi_lite_signature(CSR_ADDR_WIDTH)),
            "start": Out(1), "irq_enable": Out(1), "program_addr": Out(32), "program_length": Out(32),
            "busy": In(1), "done": In(1), "error": In(1), "error_code": In(ErrorCode),
        }
        members.update({f"counter_{name.lower()}": In(32) for name in COUNTERS})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        readable = {
            register("CONTROL").offset: Mux(self.irq_enable, Control.IRQ_ENABLE, 0),
            register("STATUS").offset: (Mux(self.busy, Status.BUSY, 0) | Mux(self.done, Status.DONE, 0) |
                                        Mux(self.error, Status.ERROR, 0)),
            register("PROGRAM_ADDR").offset: self.program_addr,
            register("PROGRAM_LENGTH").offset: self.program_length,
            register("ERROR_CODE").offset: self.error_code,
        }
        readable.update({register(name).offset: getattr(self, f"counter_{name.lower()}") for name in COUNTERS})

        # Write: take address and data together, answer on B.
        write = Signal()
        m.d.comb += [write.eq(bus.awvalid & bus.wvalid & ~bus.bvalid),
                     bus.awready.eq(write), bus.wready.eq(write)]
        m.d.sync += self.start.eq(0)
        with m.If(write):
            m.d.sync += [bus.bvalid.eq(1), bus.bresp.eq(Response.OKAY)]
            with m.Switch(bus.awaddr):
                with m.Case(register("CONTROL").offset):
                    m.d.sync += [self.start.eq((bus.wdata & Control.START).any()),
                                 self.irq_enable.eq((bus.wdata & Control.IRQ_ENABLE).any())]
                with m.Case(register("PROGRAM_ADDR").offset):
                    m.d.sync += self.program_addr.eq(bus.wdata)
                with m.Case(register("PROGRAM_LENGTH").offset):
                    m.d.sync += self.program_length.eq(bus.wdata)
                with m.Default():
                    m.d.sync += bus.bresp.eq(Response.SLVERR)
        with m.Elif(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        # Read: the address is decoded into a register, then the answer is the OR of the selected value
        # (decoding in front of a multiplexer of every register was 7 levels of logic, 2026-12-07).
        values = [Value.cast(value) for value in readable.values()]
        selected = Signal(len(values))
        decoded = Signal()
        m.d.comb += bus.arready.eq(~decoded & ~bus.rvalid)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [decoded.eq(1), selected.eq(Cat(bus.araddr == offset for offset in readable))]
        with m.If(decoded):
            m.d.sync += [decoded.eq(0), bus.rvalid.eq(1),
                         bus.rdata.eq(functools.reduce(operator.or_, (Mux(chosen, value, 0)
                                                                      for chosen, value in zip(selected, values)))),
                         bus.rresp.eq(Mux(selected.any(), Response.OKAY, Response.SLVERR))]
        with m.Elif(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        return m
