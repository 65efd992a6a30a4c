"""The DMA's address walker: rows of a 3-D strided descriptor, with padding rows and blocks.

A descriptor covers ``groups x blocks x rows`` SRAM rows in that order (rows
innermost). Row ``r`` of block ``b`` of group ``g`` lives at::

    dram_addr + g * group_stride + (b - pad_blocks_before) * block_stride + (r - pad_before) * row_stride

unless it is padding: the first ``pad_before`` and last ``pad_after`` rows of
every block, and every row of the first ``pad_blocks_before`` and last
``pad_blocks_after`` blocks of every group (convolution borders in x and y).
LOAD and STORE walk with it (STORE without padding).
"""
from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import ADDR_WIDTH
from .config import MAX_MEMORY_ROWS, DspPrimitive
from .dsp import PRODUCT_LATENCY, registered_product

__all__ = ["descriptor_rows", "DESCRIPTOR_LATENCY", "SPAN_BITS", "DESCRIPTOR_FIELDS", "PADDING_FIELDS", "RowWalker",
           "row_addresses", "sram_rows"]

# Field widths, shared by the LOAD and STORE layouts of ``hdl.isa``.
DESCRIPTOR_FIELDS = {
    "dram_addr": 32, "rows": 12, "row_stride": 24, "blocks": 12, "block_stride": 24,
    "groups": 12, "group_stride": 24,
}
PADDING_FIELDS = {"pad_before": 7, "pad_after": 7, "pad_blocks_before": 7, "pad_blocks_after": 7}

# ``descriptor_rows``: spans from 2**SPAN_BITS rows on exceed any memory's rows plus a gap (``isa.MAX_SRAM_GAP``).
SPAN_BITS = MAX_MEMORY_ROWS.bit_length()
DESCRIPTOR_LATENCY = 2 * PRODUCT_LATENCY          # rows x blocks, then x groups


def row_addresses(fields: dict) -> list[int | None]:
    """The walk in SRAM order: each row's DRAM address, or None for padding (absent padding fields are 0)."""
    f = {name: 0 for name in PADDING_FIELDS} | fields
    addresses = []
    for group in range(f["groups"]):
        for block in range(f["blocks"]):
            block_pad = block < f["pad_blocks_before"] or block >= f["blocks"] - f["pad_blocks_after"]
            for row in range(f["rows"]):
                if block_pad or row < f["pad_before"] or row >= f["rows"] - f["pad_after"]:
                    addresses.append(None)
                else:
                    addresses.append(f["dram_addr"] + group * f["group_stride"] +
                                     (block - f["pad_blocks_before"]) * f["block_stride"] +
                                     (row - f["pad_before"]) * f["row_stride"])
    return addresses


def sram_rows(fields: dict) -> list[int]:
    """The SRAM row of each row of a LOAD's walk: from sram_addr on, sram_gap rows skipped after each group."""
    group_rows = fields["rows"] * fields["blocks"]
    return [fields["sram_addr"] + group * (group_rows + fields["sram_gap"]) + row
            for group in range(fields["groups"]) for row in range(group_rows)]


class RowWalker(wiring.Component):
    """Walks a descriptor: ``address``/``pad`` of the current row; ``advance`` moves ``step`` rows on.

    Without ``padding`` (STORE) the padding fields are absent and ``pad`` is 0.

    ``step`` must not pass the end of the current block (``data_rows_left``
    bounds it on data rows); ``step_bytes`` is the address increment for data
    rows (``step * row_stride``, given by the user, who knows when it is a shift).
    A padding row advances one row whatever ``step`` is.

    Members
    -------
    start : In(1)                      pulse: begin at the first row
    <descriptor fields> : In           ``DESCRIPTOR_FIELDS`` and ``PADDING_FIELDS``, held for the whole walk
    advance : In(1); step : In(12); step_bytes : In(ADDR_WIDTH)
    address : Out(ADDR_WIDTH)          DRAM address of the current row (if it is a data row)
    pad : Out(1)                       the current row is padding
    data_rows_left : Out(12)           data rows from the current one to the block's trailing padding
    group_end : Out(1)                 advancing now finishes a group
    last : Out(1)                      advancing now finishes the walk
    """

    def __init__(self, *, padding: bool = True):
        self.padding = padding
        fields = {**DESCRIPTOR_FIELDS, **(PADDING_FIELDS if padding else {})}
        members = {"start": In(1), "advance": In(1), "step": In(12), "step_bytes": In(ADDR_WIDTH),
                   "address": Out(ADDR_WIDTH), "pad": Out(1), "data_rows_left": Out(12), "group_end": Out(1),
                   "last": Out(1)}
        members.update({name: In(width) for name, width in fields.items()})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        d = {name: getattr(self, name) for name in DESCRIPTOR_FIELDS}
        d.update({name: getattr(self, name) if self.padding else Const(0, width)
                  for name, width in PADDING_FIELDS.items()})
        block = Signal(12)
        group_address, block_address, row_address = Signal(ADDR_WIDTH), Signal(ADDR_WIDTH), Signal(ADDR_WIDTH)
        # What is left of the walk, counted down: the burst length (from the data rows left), and the
        # ends of a block, group and walk then wait for no subtraction from a counter (``row + step >=
        # rows`` is ``step >= rows_left``). The padding flags are registers, set as the walk moves (the
        # compares in front of them were on the 4x4 SoC's worst path, through the end of the block and
        # the walk into the load unit, 13.4 ns, 2026-12-06).
        rows_left = Signal(12)                     # rows - row
        data_left = Signal(signed(14))             # rows - pad_after - row (negative in trailing padding)
        lead_left = Signal(signed(14))             # pad_before - row (positive in leading padding)
        blocks_left = Signal(12)                   # blocks - block
        groups_left = Signal(12)                   # groups - group
        leading, trailing, block_pad = Signal(), Signal(), Signal()
        # Both ends are compared before the padding selects one, so no compare waits for the padding's.
        end_of_block = Mux(self.pad, rows_left == 1, self.step >= rows_left)
        step = Mux(self.pad, 1, self.step)
        end_of_group = end_of_block & (blocks_left == 1)
        m.d.comb += [self.address.eq(row_address), self.pad.eq(leading | trailing | block_pad),
                     self.data_rows_left.eq(data_left), self.group_end.eq(end_of_group),
                     self.last.eq(end_of_group & (groups_left == 1))]
        first_data_left = d["rows"] - d["pad_after"]
        block_start = [rows_left.eq(d["rows"]), data_left.eq(first_data_left), lead_left.eq(d["pad_before"])]
        if self.padding:
            block_start += [leading.eq(d["pad_before"] != 0), trailing.eq(first_data_left <= 0)]
        group_start = [block.eq(0), blocks_left.eq(d["blocks"]), *block_start]
        if self.padding:
            group_start.append(block_pad.eq((d["pad_blocks_before"] != 0) | (d["blocks"] <= d["pad_blocks_after"])))

        with m.If(self.start):
            m.d.sync += [groups_left.eq(d["groups"]), *group_start, group_address.eq(self.dram_addr),
                         block_address.eq(self.dram_addr), row_address.eq(self.dram_addr)]
        with m.Elif(self.advance):
            # Padding leaves addresses on the first data row (block) to come.
            next_row_address = Mux(self.pad, row_address, row_address + self.step_bytes)
            next_block_address = Mux(block_pad, block_address, block_address + d["block_stride"])
            next_group_address = group_address + d["group_stride"]
            with m.If(end_of_group):
                m.d.sync += [groups_left.eq(groups_left - 1), *group_start, group_address.eq(next_group_address),
                             block_address.eq(next_group_address), row_address.eq(next_group_address)]
            with m.Elif(end_of_block):
                m.d.sync += [block.eq(block + 1), blocks_left.eq(blocks_left - 1), *block_start,
                             block_address.eq(next_block_address), row_address.eq(next_block_address)]
                if self.padding:
                    m.d.sync += block_pad.eq((block + 1 < d["pad_blocks_before"]) |
                                             (blocks_left - 1 <= d["pad_blocks_after"]))
            with m.Else():
                m.d.sync += [rows_left.eq(rows_left - step), data_left.eq(data_left - step),
                             lead_left.eq(lead_left - step), row_address.eq(next_row_address)]
                if self.padding:
                    m.d.sync += [leading.eq(lead_left > step), trailing.eq(data_left <= step)]
        return m


def descriptor_rows(m, fields, primitive: DspPrimitive | None, gap=None):
    """rows x blocks x groups of the descriptor in ``fields`` and whether it reaches 2**SPAN_BITS
    (then the count is not exact), both valid DESCRIPTOR_LATENCY cycles after ``fields`` last changed.

    With ``gap`` (rows skipped after each group): (rows x blocks + gap) x groups, the SRAM rows a
    non-empty walk spans (``sram_rows``) plus one gap. Both products are registered
    (``registered_product``), so no multiplier sits in front of a unit's checks: a DSP block without
    registers and the carry chains after it were the 4x4 SoC's worst path more than once (ECP5,
    13.6 and 12.5 ns, 2026-12-06). A span of 2**SPAN_BITS rows exceeds every memory, so rows x blocks
    is cut to SPAN_BITS bits (with ``gap``, it fits an 18-bit operand) and a cut in a non-empty span is flagged.
    """
    rows_by_blocks = registered_product(m, fields.rows, fields.blocks, primitive, "rows_by_blocks")
    cut, over = Signal(), Signal()
    m.d.sync += [cut.eq(rows_by_blocks[SPAN_BITS:].any()), over.eq(cut & (fields.groups != 0))]
    partial = rows_by_blocks[:SPAN_BITS] + (0 if gap is None else gap)
    return registered_product(m, partial, fields.groups, primitive, "span"), over
