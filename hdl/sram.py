"""On-chip memories: streaming reads of consecutive rows, and memories whose reads never meet a write."""
from amaranth.hdl import Assert, Cat, Module, Signal, Value
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RowReader", "address_width", "UNDEFINED_COLLISIONS", "collision_free_memory", "check_collisions"]

# The attribute of a memory whose reads never address the row a write port writes in the same cycle (the
# units' tokens order them), or that drop what such a read returns. Synthesis may then leave that read
# undefined (``boards.synth`` sets Yosys' COLLISION_X_MASK on its read ports): otherwise, on ECP5 block RAM,
# Yosys keeps the old row with a register and a multiplexer per bit behind every read port (4x4 SoC:
# 882 LUT4 and 1,475 flip-flops, 2026-12-07), and the multiplexers sit on the reads' paths.
UNDEFINED_COLLISIONS = {"read_during_write": "undefined"}


def address_width(depth: int) -> int:
    """Bits to address ``depth`` rows (at least 1)."""
    return max(1, (depth - 1).bit_length())


def collision_free_memory(m: Module, name: str, *, shape, depth: int) -> memory.Memory:
    """A memory with ``UNDEFINED_COLLISIONS``, added to ``m`` as ``name``; ``check_collisions`` checks it."""
    storage = m.submodules[name] = memory.Memory(shape=shape, depth=depth, init=[], attrs=UNDEFINED_COLLISIONS)
    return storage


def check_collisions(m: Module, storage: memory.Memory, name: str, kept_reads: dict | None = None,
                     leading_writes: dict | None = None) -> None:
    """Simulation only (Yosys' Verilog front end takes no ``assert``): assert, every cycle, that no enabled read
    port of ``storage`` addresses a row an enabled write port writes. ``kept_reads`` maps a read port whose
    unit drops most of what it reads to the signal that is 1 in the cycles whose read it keeps; only those
    are checked. ``leading_writes`` maps a name to a write port (of another memory) whose writes reach
    ``storage`` a cycle later through registers: a read in the cycle of such a write returns the row
    before it, so it is checked too. Call it once the memory's ports are made."""
    m.submodules[f"{name}_collision_checks"] = _CollisionChecks(storage, name, kept_reads or {},
                                                                leading_writes or {})


class _CollisionChecks(wiring.Component):
    """``check_collisions``' assertions: a submodule, elaborated after its parent has made every port."""

    def __init__(self, storage: memory.Memory, name: str, kept_reads: dict, leading_writes: dict):
        self._storage, self._name, self._kept_reads, self._leading_writes = storage, name, kept_reads, leading_writes
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        writes = {**{f"write port {index}": write for index, write in enumerate(self._storage.write_ports)},
                  **self._leading_writes}
        for read_index, read in enumerate(self._storage.read_ports):
            kept = self._kept_reads.get(read, 1)
            for write_name, write in writes.items():
                collision = kept & read.en & write.en.any() & (read.addr == write.addr)
                m.d.sync += Assert(~collision, f"{self._name}: read port {read_index} addresses the row "
                                               f"{write_name} writes")
        return m


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
    reading : Out(1)       rows remain to be read after this cycle; ``start`` may pulse again once it
                           is low, so a job's first read follows the previous one's last without a gap
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
        in_flight_tag = Signal(self._tag_bits) if self._tag_bits else None   # the tag of the row read last cycle
        address = Signal.like(self.port.addr)
        remaining = Signal(16)
        # remaining != 0 and remaining > 1, kept in registers: they gate the port's enable and `reading`.
        any_left, more_left = Signal(), Signal()
        in_flight = Signal()
        issue = Signal()
        m.d.comb += [
            # Room for this row, the one in flight and everything buffered: never overflows.
            issue.eq(any_left & (buffer.level + in_flight < self.DEPTH)),
            self.port.addr.eq(address),
            self.port.en.eq(issue),
            buffer.w_en.eq(in_flight),
            buffer.w_data.eq(Cat(self.port.data, in_flight_tag) if self._tag_bits else self.port.data),
            self.rows.valid.eq(buffer.r_rdy),
            self.rows.payload.eq(buffer.r_data[:row_bits]),
            buffer.r_en.eq(self.rows.ready),
            self.reading.eq(any_left & ~(issue & ~more_left)),
            self.busy.eq(any_left | in_flight | (buffer.level != 0)),     # level: rows not yet at r_rdy too
        ]
        m.d.sync += in_flight.eq(issue)
        if self._tag_bits:
            m.d.sync += in_flight_tag.eq(tag)
            m.d.comb += self.row_tag.eq(buffer.r_data[row_bits:])
        step_shift = Signal.like(self.step_shift)
        # A start in the cycle of the previous job's last read replaces its decrement.
        with m.If(self.start):
            m.d.sync += [address.eq(self.first), remaining.eq(self.count), step_shift.eq(self.step_shift),
                         any_left.eq(self.count != 0), more_left.eq(self.count > 1)]
            if self._tag_bits:
                m.d.sync += tag.eq(self.tag)
        with m.Elif(issue):
            m.d.sync += [address.eq(address + (1 << step_shift)), remaining.eq(remaining - 1),
                         any_left.eq(more_left), more_left.eq(remaining > 2)]
        return m
