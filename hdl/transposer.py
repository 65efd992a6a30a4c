"""A streaming N x N transposer: rows in, columns out, one per cycle.

Output-stationary arrays take one reduction index per beat with a lane per
output pixel, while the scratchpads hold pixels as rows (NHWC: a row is one
pixel's channels). Transposing each block of N rows in the compute path lets
both dataflows share that layout, so convolution windows are whole rows to
the DMA.

Two N x N register banks: the fill bank takes N rows, each row's registers
written with an enable of their own; a complete block moves at once into the
drain bank, whose rows shift one lane per column sent, so that column t is
always lane 0 of each row. Neither bank has a multiplexer in front of its
registers beyond that move (Yosys had made the rows an indexed write and the
columns an indexed 2N-way read: 1,857 LUTs at N = 8, 2026-12-05 #9). A block
moves when its N-th row arrives or, if the drain bank is still sending, the
cycle its last column leaves; the fill bank meanwhile holds the complete block
and refuses rows. A steady stream passes at one beat per cycle after an
N-beat latency; only whole blocks pass.
"""
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import refusable
from .numerics import OPERAND_BITS

__all__ = ["Transposer"]


class Transposer(wiring.Component):
    """Column ``t`` of each block of ``size`` rows: lane ``i`` of output beat ``t`` is lane ``t`` of input row ``i``.

    Members
    -------
    rows_in : In(stream.Signature(ArrayLayout(signed(8), size)))
    columns : Out(stream.Signature(ArrayLayout(signed(8), size)))
    """

    @refusable
    def __init__(self, size: int):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"Transposer size must be a positive integer, not {size!r}")
        self.size = size
        lanes = data.ArrayLayout(signed(OPERAND_BITS), size)
        super().__init__({"rows_in": In(stream.Signature(lanes)), "columns": Out(stream.Signature(lanes))})

    def elaborate(self, platform):
        m = Module()
        size = self.size
        lanes = data.ArrayLayout(signed(OPERAND_BITS), size)
        fill = [Signal(lanes, name=f"fill_row{row}") for row in range(size)]
        drain = [Signal(lanes, name=f"drain_row{row}") for row in range(size)]
        fill_row = Signal(range(size))
        drain_column = Signal(range(size))
        block_waits = Signal()        # the fill bank holds a complete block
        draining = Signal()           # the drain bank has columns to send

        row_taken = Signal()
        column_taken = Signal()
        m.d.comb += [
            self.rows_in.ready.eq(~block_waits),
            row_taken.eq(self.rows_in.valid & self.rows_in.ready),
            self.columns.valid.eq(draining),
            column_taken.eq(self.columns.valid & self.columns.ready),
        ]
        for lane in range(size):
            m.d.comb += self.columns.payload[lane].eq(drain[lane][0])
        block_complete = row_taken & (fill_row == size - 1)
        drain_free = ~draining | (column_taken & (drain_column == size - 1))
        move = drain_free & (block_waits | block_complete)

        with m.If(row_taken):
            for row in range(size):
                with m.If(fill_row == row):
                    m.d.sync += fill[row].eq(self.rows_in.payload)
            m.d.sync += fill_row.eq(Mux(fill_row == size - 1, 0, fill_row + 1))
        with m.If(move):
            # A block completing now has its last row on the input, not yet in the fill bank.
            last = Mux(block_waits, fill[size - 1].as_value(), self.rows_in.payload.as_value())
            m.d.sync += [drain[row].eq(fill[row]) for row in range(size - 1)]
            m.d.sync += [drain[size - 1].eq(last), drain_column.eq(0), draining.eq(1), block_waits.eq(0)]
        with m.Else():
            with m.If(column_taken):
                m.d.sync += [drain[row].eq(drain[row].as_value() >> OPERAND_BITS) for row in range(size)]
                m.d.sync += drain_column.eq(drain_column + 1)
                with m.If(drain_column == size - 1):
                    m.d.sync += draining.eq(0)
            with m.If(block_complete):
                m.d.sync += block_waits.eq(1)
        return m
