"""The compute unit: executes COMPUTE (and SYNC), streaming scratchpad rows through the systolic array."""
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import AcceleratorConfig, ArithSupport, Dataflow
from .isa import INSTRUCTION, Opcode
from .numerics import ACC_BITS
from .sram import RowReader, address_width
from .systolic_array import SystolicArray

__all__ = ["ComputeUnit"]


class ComputeUnit(wiring.Component):
    """Runs COMPUTE and SYNC instructions; results go to the accumulator (overwrite or accumulate).

    Members
    -------
    instructions : In(stream.Signature(INSTRUCTION))
    prev_token_available / next_token_available : In(1)  load->compute / store->compute tokens
    pop_prev, pop_next, push_prev, push_next : Out(1)     token pulses
    act_read, weight_read : scratchpad read ports;  acc_read, acc_write : accumulator ports
    array_busy : Out(1)   an activation beat enters the array this cycle
    waiting_load, waiting_store : Out(1)   stalled on a missing token
    error_range : Out(1);  retired : Out(1);  busy : Out(1)
    """

    def __init__(self, config: AcceleratorConfig):
        self.config = config
        rows, cols = config.array.rows, config.array.cols
        acc_width = address_width(config.acc_rows)
        super().__init__({
            "instructions": In(stream.Signature(INSTRUCTION)),
            "prev_token_available": In(1), "next_token_available": In(1),
            "pop_prev": Out(1), "pop_next": Out(1), "push_prev": Out(1), "push_next": Out(1),
            "act_read": In(memory.ReadPort.Signature(addr_width=address_width(config.act_rows), shape=rows * 8)),
            "weight_read": In(memory.ReadPort.Signature(addr_width=address_width(config.weight_rows), shape=cols * 8)),
            "acc_read": In(memory.ReadPort.Signature(addr_width=acc_width, shape=cols * ACC_BITS)),
            "acc_write": In(memory.WritePort.Signature(addr_width=acc_width, shape=cols * ACC_BITS)),
            "array_busy": Out(1), "waiting_load": Out(1), "waiting_store": Out(1),
            "error_range": Out(1), "retired": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config, rows, cols = self.config, self.config.array.rows, self.config.array.cols
        array = m.submodules.array = SystolicArray(config.array)
        act_reader = m.submodules.act_reader = RowReader(addr_width=len(self.act_read.addr), row_shape=rows * 8)
        weight_reader = m.submodules.weight_reader = RowReader(addr_width=len(self.weight_read.addr),
                                                               row_shape=cols * 8)
        wiring.connect(m, act_reader.port, wiring.flipped(self.act_read))
        wiring.connect(m, weight_reader.port, wiring.flipped(self.weight_read))

        instruction = self.instructions.payload
        fields = Signal.like(instruction.fields.compute)
        header = Signal.like(instruction.header)
        os = config.array.dataflow == Dataflow.OS

        # Activation beats: rows from the scratchpad, framed and tagged with the mode.
        sent = Signal(12)
        m.d.comb += [array.activations.valid.eq(act_reader.rows.valid),
                     array.activations.payload.data.eq(act_reader.rows.payload),
                     array.activations.payload.last.eq(sent == fields.beats - 1),
                     act_reader.rows.ready.eq(array.activations.ready),
                     array.weights.valid.eq(weight_reader.rows.valid),
                     array.weights.payload.data.eq(weight_reader.rows.payload),
                     weight_reader.rows.ready.eq(array.weights.ready),
                     self.array_busy.eq(array.activations.valid & array.activations.ready)]
        if config.array.arith == ArithSupport.BOTH:
            m.d.comb += array.activations.payload.mode.eq(fields.mode)
        with m.If(array.activations.valid & array.activations.ready):
            m.d.sync += sent.eq(sent + 1)

        # Results: read-modify-write into the accumulator, one row per cycle.
        received = Signal(12)
        pending = Signal()
        pending_row = Signal(data.ArrayLayout(signed(ACC_BITS), cols))
        pending_address = Signal.like(self.acc_write.addr)
        result_address = Signal.like(self.acc_write.addr)
        m.d.comb += [array.results.ready.eq(1), self.acc_read.addr.eq(result_address),
                     self.acc_read.en.eq(array.results.valid)]
        m.d.sync += pending.eq(array.results.valid)
        with m.If(array.results.valid):
            m.d.sync += [pending_row.eq(array.results.payload.data), pending_address.eq(result_address),
                         result_address.eq(result_address + 1), received.eq(received + 1)]
        old_row = data.ArrayLayout(signed(ACC_BITS), cols)(self.acc_read.data)
        new_row = Signal(data.ArrayLayout(signed(ACC_BITS), cols))
        for lane in range(cols):
            m.d.comb += new_row[lane].eq(Mux(fields.accumulate, old_row[lane] + pending_row[lane], pending_row[lane]))
        m.d.comb += [self.acc_write.addr.eq(pending_address), self.acc_write.data.eq(new_row),
                     self.acc_write.en.eq(pending)]

        result_rows = rows if os else fields.beats
        retire = Signal()
        m.d.comb += [self.retired.eq(retire), self.push_prev.eq(retire & header.push_prev),
                     self.push_next.eq(retire & header.push_next)]
        with m.FSM():
            with m.State("Idle"):
                blocked_prev = instruction.header.pop_prev & ~self.prev_token_available
                blocked_next = instruction.header.pop_next & ~self.next_token_available
                m.d.comb += [self.waiting_load.eq(self.instructions.valid & blocked_prev),
                             self.waiting_store.eq(self.instructions.valid & blocked_next)]
                with m.If(self.instructions.valid & ~blocked_prev & ~blocked_next):
                    m.d.comb += [self.instructions.ready.eq(1),
                                 self.pop_prev.eq(instruction.header.pop_prev),
                                 self.pop_next.eq(instruction.header.pop_next)]
                    m.d.sync += [fields.eq(instruction.fields.compute), header.eq(instruction.header),
                                 sent.eq(0), received.eq(0),
                                 result_address.eq(instruction.fields.compute.acc_addr)]
                    with m.If(instruction.header.opcode == Opcode.SYNC):
                        m.next = "Retire"
                    with m.Else():
                        m.next = "Check"
            with m.State("Check"):
                m.d.comb += self.busy.eq(1)
                weight_rows = fields.beats if os else rows
                with m.If((fields.act_addr + fields.beats > config.act_rows) |
                          (fields.weight_addr + weight_rows > config.weight_rows) |
                          (fields.acc_addr + result_rows > config.acc_rows)):
                    m.d.comb += self.error_range.eq(1)
                    m.next = "Idle"
                with m.Elif(fields.beats == 0):
                    m.next = "Retire"
                with m.Else():
                    m.d.comb += [act_reader.first.eq(fields.act_addr), act_reader.count.eq(fields.beats),
                                 act_reader.start.eq(1), weight_reader.first.eq(fields.weight_addr),
                                 weight_reader.count.eq(weight_rows), weight_reader.start.eq(1)]
                    m.next = "Run"
            with m.State("Run"):
                m.d.comb += self.busy.eq(1)
                with m.If((received == result_rows) & ~pending):
                    m.next = "Retire"
            with m.State("Retire"):
                m.d.comb += [self.busy.eq(1), retire.eq(1)]
                m.next = "Idle"
        return m
