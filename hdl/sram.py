"""Streaming reads of consecutive SRAM rows through a one-cycle-latency read port."""
from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RowReader", "address_width"]


def address_width(depth: int) -> int:
    """Bits to address ``depth`` rows (at least 1)."""
    return max(1, (depth - 1).bit_length())


class RowReader(wiring.Component):
    """Read rows ``first .. first + count - 1`` and offer them as a stream, one per cycle.

    Reads are issued only while the output buffer has room for every row in
    flight, so back-pressure never loses a row.

    Members
    -------
    start : In(1)          pulse: latch ``first`` and ``count`` and begin
    first : In(addr_width)
    count : In(16)
    step_shift : In(2)     rows advance ``1 << step_shift`` per row read (latched with ``start``)
    tag : In(tag_bits)     (with ``tag_bits``) latched with ``start``; ``row_tag`` gives it with each of
                           the job's rows, so a job may start while the previous one's are still buffered
    row_tag : Out(tag_bits)
    busy : Out(1)          rows remain to be read or delivered
    reading : Out(1)       rows remain to be read; ``start`` may pulse again once it is low
                           (rows still buffered are delivered first)
    port : In(ReadPort.Signature)   connect to the memory's read port
    rows : Out(stream.Signature(row_shape))
    """

    DEPTH = 4

    def __init__(self, *, addr_width: int, row_shape, tag_bits: int = 0):
        self._row_shape = row_shape
        self._tag_bits = tag_bits
        super().__init__({
            "start": In(1), "first": In(addr_width), "count": In(16), "step_shift": In(2),
            **({"tag": In(tag_bits), "row_tag": Out(tag_bits)} if tag_bits else {}),
            "busy": Out(1), "reading": Out(1),
            "port": In(memory.ReadPort.Signature(addr_width=addr_width, shape=row_shape)),
            "rows": Out(stream.Signature(row_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        row_bits = len(Value.cast(self.port.data))
        buffer = m.submodules.buffer = fifo.SyncFIFOBuffered(width=row_bits + self._tag_bits, depth=self.DEPTH)
        tag = Signal(self._tag_bits) if self._tag_bits else None
        address = Signal.like(self.port.addr)
        remaining = Signal(16)
        in_flight = Signal()
        issue = Signal()
        m.d.comb += [
            # Room for this row, the one in flight and everything buffered: never overflows.
            issue.eq((remaining != 0) & (buffer.level + in_flight < self.DEPTH)),
            self.port.addr.eq(address),
            self.port.en.eq(issue),
            buffer.w_en.eq(in_flight),
            # A start takes effect at the clock edge: the row read just before it still gets the old tag.
            buffer.w_data.eq(Cat(self.port.data, tag) if self._tag_bits else self.port.data),
            self.rows.valid.eq(buffer.r_rdy),
            self.rows.payload.eq(buffer.r_data[:row_bits]),
            buffer.r_en.eq(self.rows.ready),
            self.reading.eq(remaining != 0),
            self.busy.eq(self.reading | in_flight | (buffer.level != 0)),     # level: rows not yet at r_rdy too
        ]
        m.d.sync += in_flight.eq(issue)
        if self._tag_bits:
            m.d.comb += self.row_tag.eq(buffer.r_data[row_bits:])
        step_shift = Signal.like(self.step_shift)
        with m.If(self.start):
            m.d.sync += [address.eq(self.first), remaining.eq(self.count), step_shift.eq(self.step_shift)]
            if self._tag_bits:
                m.d.sync += tag.eq(self.tag)
        with m.Elif(issue):
            m.d.sync += [address.eq(address + (1 << step_shift)), remaining.eq(remaining - 1)]
        return m
