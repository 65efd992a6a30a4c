"""Instruction fetch and dispatch: reads the program over AXI and routes instructions to the unit queues."""
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import ADDR_WIDTH, BURST_BOUNDARY, response_failed
from .config import AcceleratorConfig
from .isa import INSTRUCTION, INSTRUCTION_BITS, Opcode

__all__ = ["FetchUnit", "FETCH_BURST", "FETCH_BUFFER", "head_waited"]

FETCH_BURST = 4       # instructions per AXI read burst, at most
FETCH_BUFFER = 8      # instructions the prefetch buffer holds


def head_waited(m: Module, queue: stream.Interface, cycles: int) -> Signal:
    """Whether the head of a unit's ``queue`` has waited there ``cycles`` cycles: checks registered from the
    head in that many stages then hold its results (the head changes only as it is taken)."""
    age = Signal(range(cycles + 1))
    with m.If(~queue.valid | queue.ready):
        m.d.sync += age.eq(0)
    with m.Elif(age != cycles):
        m.d.sync += age.eq(age + 1)
    return age == cycles


class FetchUnit(wiring.Component):
    """Prefetches the program in bursts of up to ``FETCH_BURST`` instructions and dispatches one per cycle.

    A burst is requested, one at a time, only when the buffer has room for all of
    it, so its read data is always accepted and never blocks the load unit's; it
    never passes ``program_length`` instructions nor a ``BURST_BOUNDARY``. A read
    error marks the instructions it hits, and only dispatching one of them is an
    error (a burst may read past END). After END the unit waits for its burst's
    last beat before it reports ``finished``, so no beat of this program reaches
    the next one.

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
        bus_bits = self.config.bus_bits
        beats = INSTRUCTION_BITS // bus_bits
        instruction_bytes = INSTRUCTION_BITS // 8
        page_bits = (BURST_BOUNDARY - 1).bit_length()
        # Each entry: an instruction and whether a beat of it came with a read error.
        buffer = m.submodules.buffer = fifo.SyncFIFOBuffered(width=INSTRUCTION_BITS + 1, depth=FETCH_BUFFER)

        running = Signal()          # between start and END (or an error)
        address = Signal(ADDR_WIDTH)
        left = Signal(32)           # instructions not yet asked for
        dispatched = Signal(32)
        receiving = Signal()        # a burst is outstanding
        # Request: the next burst's size, registered a cycle ahead so no adder chain meets the AR handshake.
        # The instructions left are counted down, so only a compare with a constant sits in front of the size
        # (the program's length minus those asked for, then a compare, was the 4x4 SoC's worst path, 11.7 ns,
        # 2026-12-06 #13).
        burst = Signal(range(FETCH_BURST + 1))
        page_left = Signal(range(BURST_BOUNDARY // instruction_bytes + 1))
        m.d.comb += page_left.eq((BURST_BOUNDARY - address[:page_bits]) // instruction_bytes)
        capped, size = Signal.like(burst), Signal.like(burst)
        m.d.comb += [capped.eq(Mux(left < FETCH_BURST, left, FETCH_BURST)),
                     size.eq(Mux(page_left < capped, page_left, capped))]
        m.d.sync += burst.eq(size)
        # The level a cycle old may lack the last burst's last instruction, hence the one more.
        room = Signal()
        m.d.sync += room.eq(buffer.level + FETCH_BURST + 1 <= FETCH_BUFFER)
        # `burst` and `room` hold once the unit has been running, and not receiving, for a cycle.
        settled = Signal()
        asking = Signal()
        m.d.comb += [asking.eq(running & settled & ~receiving & room & (burst != 0)),
                     self.arvalid.eq(asking), self.araddr.eq(address), self.arlen.eq(burst * beats - 1)]
        m.d.sync += settled.eq(running & ~receiving & ~(asking & self.arready))
        with m.If(asking & self.arready):
            m.d.sync += [receiving.eq(1), left.eq(left - burst),
                         address.eq(address + burst * instruction_bytes)]

        # Receive: beats arrive low word first, shifted in from the top; each whole instruction goes in.
        words = Signal(INSTRUCTION_BITS)
        beat = Signal(range(beats))
        failed = Signal()
        incoming = Cat(words[bus_bits:], self.rdata) if beats > 1 else self.rdata
        with m.If(receiving & self.rvalid):
            m.d.sync += [words.eq(incoming), beat.eq(0 if beats == 1 else beat + 1)]
            m.d.sync += failed.eq(failed | response_failed(self.rresp))
            m.d.comb += [buffer.w_data.eq(Cat(incoming, failed | response_failed(self.rresp))),
                         buffer.w_en.eq(running & (beat == beats - 1))]
            with m.If(beat == beats - 1):
                m.d.sync += [beat.eq(0), failed.eq(0)]
            with m.If(self.rlast):
                m.d.sync += receiving.eq(0)

        # Dispatch from the buffer's head.
        head = INSTRUCTION(buffer.r_data[:INSTRUCTION_BITS])
        for queue in (self.to_load, self.to_compute, self.to_store):
            m.d.comb += queue.payload.eq(buffer.r_data[:INSTRUCTION_BITS])
        stop = Signal()
        # Every instruction dispatched, registered: the 32-bit compare in front of stopping was the 4x4 SoC's
        # deepest logic (8 levels, 2026-12-07). A cycle late misses nothing: no more than ``program_length``
        # instructions are fetched, so the buffer is empty by then.
        all_dispatched = Signal()
        m.d.sync += all_dispatched.eq(running & ~self.start & (dispatched == self.program_length))
        with m.If(self.start):
            m.d.sync += [running.eq(1), address.eq(self.program_addr), left.eq(self.program_length), dispatched.eq(0),
                         self.finished.eq(0)]
        with m.Elif(running & buffer.r_rdy):
            with m.If(buffer.r_data[INSTRUCTION_BITS]):
                m.d.comb += [self.error_read.eq(1), stop.eq(1)]
            with m.Else():
                with m.Switch(head.header.opcode):
                    for opcodes, queue in (((Opcode.LOAD,), self.to_load),
                                           ((Opcode.COMPUTE, Opcode.SYNC), self.to_compute),
                                           ((Opcode.CONFIG, Opcode.STORE), self.to_store)):
                        with m.Case(*opcodes):
                            m.d.comb += [queue.valid.eq(1), buffer.r_en.eq(queue.ready)]
                            with m.If(queue.ready):
                                m.d.sync += dispatched.eq(dispatched + 1)
                    with m.Case(Opcode.END):
                        m.d.comb += [self.retired_end.eq(1), stop.eq(1)]
                    with m.Default():
                        m.d.comb += [self.error_opcode.eq(1), stop.eq(1)]
        with m.Elif(running & all_dispatched):
            m.d.comb += [self.error_overrun.eq(1), stop.eq(1)]
        with m.If(stop):
            m.d.sync += running.eq(0)
        # END (or an error, after which the accelerator resets the unit) ends the run once no beat is due.
        ending = Signal()
        with m.If(self.retired_end):
            m.d.sync += ending.eq(1)
        with m.If(ending & ~receiving):
            m.d.sync += [ending.eq(0), self.finished.eq(1)]
        return m
