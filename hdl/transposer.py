"""A streaming N x N transposer: rows in, columns out, one per cycle.

Output-stationary arrays take one reduction index per beat with a lane per
output pixel, while the scratchpads hold pixels as rows (NHWC: a row is one
pixel's channels). Transposing each block of N rows in the compute path lets
both dataflows share that layout, so convolution windows are whole rows to
the DMA.

Two N x N register banks alternate: one fills with N rows while the other
drains as N columns, so a steady stream passes at one beat per cycle after an
N-beat latency. Only whole blocks pass: a block's columns leave after its
N-th row arrived.
"""
from amaranth.hdl import Array, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .numerics import OPERAND_BITS

__all__ = ["Transposer"]


class Transposer(wiring.Component):
    """Column ``t`` of each block of ``size`` rows: lane ``i`` of output beat ``t`` is lane ``t`` of input row ``i``.

    Members
    -------
    rows_in : In(stream.Signature(ArrayLayout(signed(8), size)))
    columns : Out(stream.Signature(ArrayLayout(signed(8), size)))
    """

    def __init__(self, size: int):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"Transposer size must be a positive integer, not {size!r}")
        self.size = size
        lanes = data.ArrayLayout(signed(OPERAND_BITS), size)
        super().__init__({"rows_in": In(stream.Signature(lanes)), "columns": Out(stream.Signature(lanes))})

    def elaborate(self, platform):
        m = Module()
        size = self.size
        block = data.ArrayLayout(data.ArrayLayout(signed(OPERAND_BITS), size), size)
        banks = [Signal(block, name=f"bank{index}") for index in range(2)]
        full = [Signal(name=f"full{index}") for index in range(2)]
        fill_bank, drain_bank = Signal(), Signal()
        fill_row = Signal(range(size))
        drain_column = Signal(range(size))

        m.d.comb += self.rows_in.ready.eq(~Array(full)[fill_bank])
        with m.If(self.rows_in.valid & self.rows_in.ready):
            for index, bank in enumerate(banks):
                with m.If(fill_bank == index):
                    m.d.sync += Array(bank)[fill_row].eq(self.rows_in.payload)
            m.d.sync += fill_row.eq(fill_row + 1)
            with m.If(fill_row == size - 1):
                m.d.sync += [fill_row.eq(0), fill_bank.eq(~fill_bank)]

        m.d.comb += self.columns.valid.eq(Array(full)[drain_bank])
        for lane in range(size):
            column = Array(Array(bank[lane][t] for t in range(size)) for bank in banks)
            m.d.comb += self.columns.payload[lane].eq(column[drain_bank][drain_column])
        drained = Signal()
        with m.If(self.columns.valid & self.columns.ready):
            m.d.sync += drain_column.eq(drain_column + 1)
            with m.If(drain_column == size - 1):
                m.d.comb += drained.eq(1)
                m.d.sync += [drain_column.eq(0), drain_bank.eq(~drain_bank)]

        filled = self.rows_in.valid & self.rows_in.ready & (fill_row == size - 1)
        for index in range(2):
            with m.If(filled & (fill_bank == index)):
                m.d.sync += full[index].eq(1)
            with m.Elif(drained & (drain_bank == index)):
                m.d.sync += full[index].eq(0)
        return m
