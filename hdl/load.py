"""The load unit: executes LOAD, moving DRAM rows into a scratchpad, the accumulator or the channel memory."""
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import ADDR_WIDTH, BURST_BOUNDARY, response_failed
from .config import AcceleratorConfig
from .isa import INSTRUCTION, Target, target_element_bytes
from .sram import address_width

__all__ = ["LoadUnit", "memory_shapes", "MAX_OUTSTANDING_READS", "MAX_BURST_ROWS"]

MAX_OUTSTANDING_READS = 4
MAX_BURST_ROWS = 16


def memory_shapes(config: AcceleratorConfig) -> dict:
    """(depth, lanes, bytes per lane) of each LOAD target's memory."""
    rows, cols = config.array.rows, config.array.cols
    return {
        Target.ACTIVATIONS: (config.act_rows, rows, target_element_bytes(Target.ACTIVATIONS)),
        Target.WEIGHTS: (config.weight_rows, cols, target_element_bytes(Target.WEIGHTS)),
        Target.ACCUMULATORS: (config.acc_rows, cols, target_element_bytes(Target.ACCUMULATORS)),
        Target.CHANNELS: (config.channel_rows, cols, target_element_bytes(Target.CHANNELS)),
    }


def _write_port_signature(depth, lanes, element_bytes):
    return memory.WritePort.Signature(addr_width=address_width(depth),
                                      shape=lanes * element_bytes * 8, granularity=8)


class LoadUnit(wiring.Component):
    """Runs LOAD instructions from ``instructions`` with AXI read bursts, up to
    ``MAX_OUTSTANDING_READS`` in flight; consecutive single-beat rows share a burst.

    Members
    -------
    instructions : In(stream.Signature(INSTRUCTION))
    token_available : In(1)       a compute->load token exists (for pop_next)
    pop_token, push_token : Out(1) one-cycle pulses (compute->load pop, load->compute push)
    arvalid, araddr, arlen, arready, rvalid, rdata, rresp, rlast : the AXI read channels it uses
    write_<target> : one write port per target memory (byte granularity)
    error_read, error_range : Out(1) pulses: a bad read response, an out-of-range SRAM row
    retired : Out(1)               pulse per finished instruction
    busy : Out(1)
    """

    def __init__(self, config: AcceleratorConfig):
        self.config = config
        members = {
            "instructions": In(stream.Signature(INSTRUCTION)),
            "token_available": In(1), "pop_token": Out(1), "push_token": Out(1),
            "arvalid": Out(1), "araddr": Out(ADDR_WIDTH), "arlen": Out(8), "arready": In(1),
            "rvalid": In(1), "rdata": In(config.bus_bits), "rresp": In(2), "rlast": In(1),
            "error_read": Out(1), "error_range": Out(1), "retired": Out(1), "busy": Out(1),
        }
        for target, shape in memory_shapes(config).items():
            members[f"write_{target.name.lower()}"] = In(_write_port_signature(*shape))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus_bytes = self.config.bus_bytes
        beat_shift = (bus_bytes - 1).bit_length()
        instruction = self.instructions.payload
        fields = Signal.like(instruction.fields.load)
        header = Signal.like(instruction.header)

        block = Signal(12)
        row = Signal(12)
        sram_row = Signal(16)
        block_address = Signal(ADDR_WIDTH)
        row_address = Signal(ADDR_WIDTH)
        beat = Signal(8)
        pad_row = Signal()

        # Per-target row geometry.
        valid_bytes = Signal(16)
        beats = Signal(8)
        depth = Signal(17)
        for target, (target_depth, lanes, element) in memory_shapes(self.config).items():
            with m.If(fields.target == target):
                m.d.comb += [valid_bytes.eq(fields.row_elems * element),
                             beats.eq((fields.row_elems * element + bus_bytes - 1) >> beat_shift),
                             depth.eq(target_depth)]
        m.d.comb += pad_row.eq((row < fields.pad_before) | (row >= fields.rows - fields.pad_after) |
                               (fields.row_elems == 0))

        # An R beat (for the oldest outstanding burst) has the write port; pad rows take idle cycles.
        # The first SRAM row of each burst in flight; rlast ends a burst.
        outstanding = m.submodules.outstanding = fifo.SyncFIFO(width=16, depth=MAX_OUTSTANDING_READS)
        row_in_burst = Signal(range(MAX_BURST_ROWS))
        data_beat = Signal()
        pad_write = Signal()
        m.d.comb += data_beat.eq(self.rvalid)
        for target, (target_depth, lanes, element) in memory_shapes(self.config).items():
            port = getattr(self, f"write_{target.name.lower()}")
            row_bytes = lanes * element
            pad_bytes = []
            for byte in range(row_bytes):
                if target == Target.CHANNELS:
                    pad_bytes.append(Const(0, 8))
                elif byte % element == 0:
                    pad_bytes.append(fields.pad_value.as_unsigned())
                else:     # sign extension of an int32 pad lane
                    pad_bytes.append(Mux(fields.pad_value < 0, 0xFF, 0x00))
            data_bytes, enables = [], []
            for byte in range(row_bytes):
                in_beat = data_beat & (beat == (byte >> beat_shift)) & (byte < valid_bytes)
                beat_byte = self.rdata[(byte % bus_bytes) * 8:(byte % bus_bytes + 1) * 8]
                data_bytes.append(Mux(in_beat, beat_byte, pad_bytes[byte]))
                # The first beat of a row also fills the lanes past row_elems with padding.
                enables.append(in_beat | ~data_beat | (beat == 0))
            m.d.comb += [port.addr.eq(Mux(data_beat, outstanding.r_data + row_in_burst, sram_row)), port.data.eq(Cat(*data_bytes)),
                         port.en.eq(Mux((data_beat | pad_write) & (fields.target == target), Cat(*enables), 0))]

        # Writer: R beats in order of their bursts; a burst may carry several rows.
        with m.If(self.rvalid):
            row_done = beat == beats - 1
            m.d.sync += [beat.eq(Mux(row_done, 0, beat + 1)),
                         row_in_burst.eq(Mux(self.rlast, 0, row_in_burst + row_done))]
            m.d.comb += outstanding.r_en.eq(self.rlast)
            with m.If(response_failed(self.rresp)):
                m.d.comb += self.error_read.eq(1)

        # Issuer: walks the rows, up to MAX_OUTSTANDING_READS bursts ahead of the writer.
        # Single-beat rows that follow each other in DRAM share one burst, up to MAX_BURST_ROWS
        # and never across a BURST_BOUNDARY.
        mergeable = Signal()
        burst_rows = Signal(range(MAX_BURST_ROWS + 1))
        data_rows_left = Signal(12)
        page_beats_left = Signal(range((BURST_BOUNDARY >> beat_shift) + 1))
        m.d.comb += [
            mergeable.eq((beats == 1) & (fields.row_stride == bus_bytes)),
            data_rows_left.eq(fields.rows - fields.pad_after - row),
            page_beats_left.eq((BURST_BOUNDARY - row_address[:(BURST_BOUNDARY - 1).bit_length()]) >> beat_shift),
            burst_rows.eq(1),
        ]
        with m.If(mergeable):
            m.d.comb += burst_rows.eq(MAX_BURST_ROWS)
            with m.If((data_rows_left <= page_beats_left) & (data_rows_left < MAX_BURST_ROWS)):
                m.d.comb += burst_rows.eq(data_rows_left)
            with m.Elif(page_beats_left < MAX_BURST_ROWS):
                m.d.comb += burst_rows.eq(page_beats_left)
        step = Signal(range(MAX_BURST_ROWS + 1))
        m.d.comb += [self.araddr.eq(row_address), self.arlen.eq(Mux(mergeable, burst_rows, beats) - 1),
                     outstanding.w_data.eq(sram_row),
                     outstanding.w_en.eq(self.arvalid & self.arready),
                     step.eq(Mux(pad_row, 1, burst_rows))]
        retire = Signal()
        advance = Signal()
        m.d.comb += [self.retired.eq(retire), self.push_token.eq(retire & header.push_next)]

        with m.FSM():
            with m.State("Idle"):
                with m.If(self.instructions.valid & (~instruction.header.pop_next | self.token_available)):
                    m.d.comb += [self.instructions.ready.eq(1), self.pop_token.eq(instruction.header.pop_next)]
                    m.d.sync += [fields.eq(instruction.fields.load), header.eq(instruction.header),
                                 block.eq(0), row.eq(0), sram_row.eq(instruction.fields.load.sram_addr),
                                 block_address.eq(instruction.fields.load.dram_addr),
                                 row_address.eq(instruction.fields.load.dram_addr)]
                    m.next = "Check"
            with m.State("Check"):
                m.d.comb += self.busy.eq(1)
                with m.If(fields.sram_addr + fields.rows * fields.blocks > depth):
                    m.d.comb += self.error_range.eq(1)
                    m.next = "Idle"
                with m.Elif((fields.rows == 0) | (fields.blocks == 0)):
                    m.d.comb += retire.eq(1)
                    m.next = "Idle"
                with m.Else():
                    m.next = "Walk"
            with m.State("Walk"):
                m.d.comb += self.busy.eq(1)
                with m.If(pad_row):
                    m.d.comb += [pad_write.eq(~data_beat), advance.eq(~data_beat)]
                with m.Else():
                    m.d.comb += self.arvalid.eq(outstanding.w_rdy)
                    with m.If(self.arvalid & self.arready):
                        m.d.comb += advance.eq(1)
                        m.d.sync += row_address.eq(row_address + Mux(mergeable, burst_rows << beat_shift,
                                                                      fields.row_stride))
                with m.If(advance):
                    m.d.sync += sram_row.eq(sram_row + step)
                    with m.If(row + step == fields.rows):
                        m.d.sync += [row.eq(0), block.eq(block + 1),
                                     block_address.eq(block_address + fields.block_stride),
                                     row_address.eq(block_address + fields.block_stride)]
                        with m.If(block == fields.blocks - 1):
                            m.next = "Drain"
                    with m.Else():
                        m.d.sync += row.eq(row + step)
            with m.State("Drain"):
                m.d.comb += self.busy.eq(1)
                with m.If(~outstanding.r_rdy):
                    m.d.comb += retire.eq(1)
                    m.next = "Idle"
        return m
