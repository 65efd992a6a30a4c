"""Instruction fetch and dispatch: reads the program over AXI and routes instructions to the unit queues."""
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import ADDR_WIDTH, response_failed
from .config import AcceleratorConfig
from .isa import INSTRUCTION, INSTRUCTION_BITS, Opcode

__all__ = ["FetchUnit"]


class FetchUnit(wiring.Component):
    """Fetches one instruction per AXI burst and dispatches it.

    It requests an instruction only once the previous one is dispatched, so
    its read data is always accepted and never blocks the load unit's.

    Members
    -------
    start : In(1);  program_addr, program_length : In(32)
    arvalid .. rresp : the AXI read channels it uses (ID routing is the top level's)
    to_load, to_compute, to_store : Out(stream.Signature(INSTRUCTION))
    finished : Out(1)     END was dispatched (held until the next start)
    error_opcode, error_read, error_overrun : Out(1) pulses;  retired_end : Out(1) pulse
    """

    def __init__(self, config: AcceleratorConfig):
        self.config = config
        super().__init__({
            "start": In(1), "program_addr": In(32), "program_length": In(32),
            "arvalid": Out(1), "araddr": Out(ADDR_WIDTH), "arlen": Out(8), "arready": In(1),
            "rvalid": In(1), "rdata": In(config.bus_bits), "rresp": In(2), "rlast": In(1),
            "to_load": Out(stream.Signature(INSTRUCTION)), "to_compute": Out(stream.Signature(INSTRUCTION)),
            "to_store": Out(stream.Signature(INSTRUCTION)),
            "finished": Out(1), "error_opcode": Out(1), "error_read": Out(1), "error_overrun": Out(1),
            "retired_end": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        beats = INSTRUCTION_BITS // self.config.bus_bits
        words = Signal(INSTRUCTION_BITS)
        instruction = INSTRUCTION(words)
        count = Signal(32)
        address = Signal(ADDR_WIDTH)
        m.d.comb += [self.araddr.eq(address), self.arlen.eq(beats - 1)]
        for queue in (self.to_load, self.to_compute, self.to_store):
            m.d.comb += queue.payload.eq(words)

        with m.FSM():
            with m.State("Idle"):
                with m.If(self.start):
                    m.d.sync += [count.eq(0), address.eq(self.program_addr), self.finished.eq(0)]
                    m.next = "Request"
            with m.State("Request"):
                with m.If(count == self.program_length):
                    m.d.comb += self.error_overrun.eq(1)
                    m.next = "Idle"
                with m.Else():
                    m.d.comb += self.arvalid.eq(1)
                    with m.If(self.arready):
                        m.next = "Receive"
            with m.State("Receive"):
                with m.If(self.rvalid):
                    # Beats arrive low word first: shift them in from the top.
                    m.d.sync += words.eq(Cat(words[self.config.bus_bits:], self.rdata))
                    with m.If(response_failed(self.rresp)):
                        m.d.comb += self.error_read.eq(1)
                        m.next = "Idle"
                    with m.Elif(self.rlast):
                        m.next = "Dispatch"
            with m.State("Dispatch"):
                opcode = instruction.header.opcode
                queue = None
                with m.Switch(opcode):
                    for opcodes, queue in (((Opcode.LOAD,), self.to_load),
                                           ((Opcode.COMPUTE, Opcode.SYNC), self.to_compute),
                                           ((Opcode.CONFIG, Opcode.STORE), self.to_store)):
                        with m.Case(*opcodes):
                            m.d.comb += queue.valid.eq(1)
                            with m.If(queue.ready):
                                m.d.sync += [count.eq(count + 1), address.eq(address + INSTRUCTION_BITS // 8)]
                                m.next = "Request"
                    with m.Case(Opcode.END):
                        m.d.comb += self.retired_end.eq(1)
                        m.d.sync += self.finished.eq(1)
                        m.next = "Idle"
                    with m.Default():
                        m.d.comb += self.error_opcode.eq(1)
                        m.next = "Idle"
        return m
