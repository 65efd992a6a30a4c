"""The store unit: executes CONFIG and STORE, post-processing accumulator rows into DRAM."""
from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import ADDR_WIDTH, merged_burst_rows, response_failed
from .config import AcceleratorConfig
from .isa import CHANNEL_RECORD_BYTES, INSTRUCTION, STORE_BYTE_OFFSET_BITS, Opcode
from .numerics import ACC_BITS, BINARY_VALUES_PER_LANE, SHIFT_BITS, ArithMode
from .postprocess import PostProcessor, channel_params_layout, output_params_layout
from .sram import RowReader, address_width
from .walker import DESCRIPTOR_FIELDS, RowWalker

__all__ = ["StoreUnit"]


class StoreUnit(wiring.Component):
    """Runs CONFIG and STORE; one AXI write burst per output row, or per run of single-beat rows
    that follow each other in DRAM (up to ``MAX_BURST_ROWS``, within a 4 KiB page).

    Members
    -------
    instructions : In(stream.Signature(INSTRUCTION))
    token_available : In(1)      a compute->store token exists (for pop_prev)
    pop_token, push_token : Out(1)
    acc_read, channel_read : read ports of the accumulator and the channel memory
    awvalid .. bresp : the AXI write channels it uses (bready is always 1)
    bytes_written : Out(8)       bytes strobed by the W beat accepted this cycle
    error_write, error_range : Out(1);  retired : Out(1);  busy : Out(1)
    """

    def __init__(self, config: AcceleratorConfig):
        self.config = config
        cols = config.array.cols
        super().__init__({
            "instructions": In(stream.Signature(INSTRUCTION)),
            "token_available": In(1), "pop_token": Out(1), "push_token": Out(1),
            "acc_read": In(memory.ReadPort.Signature(addr_width=address_width(config.acc_rows),
                                                     shape=cols * ACC_BITS)),
            "channel_read": In(memory.ReadPort.Signature(addr_width=address_width(config.channel_rows),
                                                         shape=cols * CHANNEL_RECORD_BYTES * 8)),
            "awvalid": Out(1), "awaddr": Out(ADDR_WIDTH), "awlen": Out(8), "awready": In(1),
            "wvalid": Out(1), "wdata": Out(config.bus_bits), "wstrb": Out(config.bus_bytes), "wlast": Out(1),
            "wready": In(1), "bvalid": In(1), "bresp": In(2),
            "bytes_written": Out(8), "error_write": Out(1), "error_range": Out(1), "retired": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config, cols, bus_bytes = self.config, self.config.array.cols, self.config.bus_bytes
        reader = m.submodules.reader = RowReader(addr_width=len(self.acc_read.addr), row_shape=cols * ACC_BITS)
        wiring.connect(m, reader.port, wiring.flipped(self.acc_read))
        post = m.submodules.post = PostProcessor(cols)

        instruction = self.instructions.payload
        fields = Signal.like(instruction.fields.store)
        header = Signal.like(instruction.header)
        output = Signal(output_params_layout(), init={"clamp_min": -128, "clamp_max": 127})
        channel_params = Signal(data.ArrayLayout(channel_params_layout(), cols))
        m.d.comb += [post.rows_in.valid.eq(reader.rows.valid), post.rows_in.payload.data.eq(reader.rows.payload),
                     reader.rows.ready.eq(post.rows_in.ready), post.channel_params.eq(channel_params),
                     post.params.eq(output), post.channels.eq(fields.channels)]

        # Channel records as they sit in memory: bias, multiplier, shift byte, flip byte.
        record_bits = CHANNEL_RECORD_BYTES * 8
        records = self.channel_read.data
        decoded = Signal.like(channel_params)
        for lane in range(cols):
            record = records[lane * record_bits:(lane + 1) * record_bits]
            m.d.comb += [decoded[lane].bias.eq(record[0:32]), decoded[lane].multiplier.eq(record[32:64]),
                         decoded[lane].shift.eq(record[64:64 + SHIFT_BITS]), decoded[lane].flip.eq(record[72])]

        # Output rows: the stored bytes start byte_offset bytes into the row; beats per row.
        stored = Signal(8)
        end = Signal(8)
        beats = Signal(8)
        m.d.comb += [
            stored.eq(Mux(output.mode == ArithMode.BINARY,
                          (fields.channels + BINARY_VALUES_PER_LANE - 1) >> 3, fields.channels)),
            end.eq(fields.byte_offset + stored),
            beats.eq((end + bus_bytes - 1) >> (bus_bytes - 1).bit_length()),
        ]
        beat = Signal(8)
        span = -(-(cols + (1 << STORE_BYTE_OFFSET_BITS) - 1) // bus_bytes) * bus_bytes    # bytes, whole beats
        row_bytes = Signal(span * 8)
        m.d.comb += row_bytes.eq(post.rows_out.payload.data.as_value() << (fields.byte_offset * 8))
        beat_words = Array(row_bytes[j * bus_bytes * 8:(j + 1) * bus_bytes * 8] for j in range(span // bus_bytes))
        position = [(beat << (bus_bytes - 1).bit_length()) + byte for byte in range(bus_bytes)]
        strobes = Cat((at >= fields.byte_offset) & (at < end) for at in position)
        m.d.comb += [self.wdata.eq(beat_words[beat]), self.wstrb.eq(strobes),
                     self.bytes_written.eq(Mux(self.wvalid & self.wready, sum(strobes), 0))]

        walker = m.submodules.walker = RowWalker(padding=False)
        m.d.comb += [getattr(walker, name).eq(getattr(fields, name)) for name in DESCRIPTOR_FIELDS]
        m.d.comb += [walker.step.eq(1), walker.step_bytes.eq(fields.row_stride)]
        # Single-beat rows that follow each other in DRAM share one burst, as loads do.
        mergeable = Signal()
        m.d.comb += mergeable.eq((beats == 1) & (fields.row_stride == bus_bytes))
        burst_rows = merged_burst_rows(m, address=walker.address, rows_left=walker.data_rows_left,
                                       mergeable=mergeable, bus_bytes=bus_bytes)
        rows_left = Signal.like(burst_rows)        # rows of the current burst still to send
        outstanding = Signal(8)
        aw_fire = Signal()
        b_fire = Signal()
        m.d.comb += [self.awaddr.eq(walker.address), self.awlen.eq(Mux(mergeable, burst_rows, beats) - 1),
                     aw_fire.eq(self.awvalid & self.awready), b_fire.eq(self.bvalid)]
        m.d.sync += outstanding.eq(outstanding + aw_fire - b_fire)
        with m.If(b_fire & (response_failed(self.bresp))):
            m.d.comb += self.error_write.eq(1)

        retire = Signal()
        m.d.comb += [self.retired.eq(retire), self.push_token.eq(retire & header.push_prev)]
        with m.FSM():
            with m.State("Idle"):
                is_store = instruction.header.opcode == Opcode.STORE
                with m.If(self.instructions.valid & (~instruction.header.pop_prev | self.token_available)):
                    m.d.comb += [self.instructions.ready.eq(1), self.pop_token.eq(instruction.header.pop_prev)]
                    m.d.sync += [fields.eq(instruction.fields.store), header.eq(instruction.header)]
                    with m.If(is_store):
                        m.d.comb += [self.channel_read.addr.eq(instruction.fields.store.channel_row),
                                     self.channel_read.en.eq(1)]
                        m.next = "Check"
                    with m.Else():
                        m.d.sync += output.eq(instruction.fields.config)
                        m.next = "Retire"
            with m.State("Check"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += channel_params.eq(decoded)
                total_rows = fields.rows * fields.blocks * fields.groups
                with m.If((fields.acc_addr + total_rows > config.acc_rows) |
                          (fields.channel_row >= config.channel_rows) | (fields.channels > cols)):
                    m.d.comb += self.error_range.eq(1)
                    m.next = "Idle"
                with m.Elif(total_rows == 0):
                    m.next = "Retire"
                with m.Else():
                    m.d.comb += [reader.first.eq(fields.acc_addr), reader.count.eq(total_rows), reader.start.eq(1),
                                 walker.start.eq(1)]
                    m.next = "Address"
            with m.State("Address"):
                m.d.comb += self.busy.eq(1)
                with m.If(post.rows_out.valid):
                    m.d.comb += self.awvalid.eq(1)
                    with m.If(self.awready):
                        m.d.sync += [beat.eq(0), rows_left.eq(burst_rows)]
                        m.next = "Data"
            with m.State("Data"):
                row_end = beat == beats - 1
                m.d.comb += [self.busy.eq(1), self.wvalid.eq(post.rows_out.valid),
                             self.wlast.eq(row_end & (rows_left == 1))]
                with m.If(self.wvalid & self.wready):
                    m.d.sync += beat.eq(Mux(row_end, 0, beat + 1))
                    with m.If(row_end):
                        m.d.comb += [post.rows_out.ready.eq(1), walker.advance.eq(1)]
                        m.d.sync += rows_left.eq(rows_left - 1)
                        with m.If(walker.last):
                            m.next = "Drain"
                        with m.Elif(rows_left == 1):
                            m.next = "Address"
            with m.State("Drain"):
                m.d.comb += self.busy.eq(1)
                with m.If((outstanding == 0) & ~reader.busy):
                    m.next = "Retire"
            with m.State("Retire"):
                m.d.comb += [self.busy.eq(1), retire.eq(1)]
                m.next = "Idle"
        return m
