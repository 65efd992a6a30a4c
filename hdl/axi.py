"""AXI4 and AXI4-Lite bus signatures, written from the manager's (initiator's) side."""
from amaranth.hdl import Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Response", "response_failed", "axi4_signature", "axi_lite_signature", "ADDR_WIDTH", "ID_WIDTH",
           "BURST_BOUNDARY", "MAX_BURST_ROWS", "rows_merge", "merged_burst_rows", "planned_burst_rows"]

ADDR_WIDTH = 32
BURST_BOUNDARY = 4096      # no AXI burst may cross a multiple of this address
MAX_BURST_ROWS = 16        # single-beat rows one DMA burst may carry
ID_WIDTH = 2
BURST_INCR = 1


class Response(enum.Enum, shape=2):
    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


def response_failed(response):
    """True for SLVERR or DECERR."""
    return (response == Response.SLVERR) | (response == Response.DECERR)


def rows_merge(last_beat, row_stride, bus_bytes: int):
    """Whether a walk's rows share DMA bursts: single-beat rows (``last_beat``, a row's beats - 1, is 0)
    that follow each other in DRAM (the load and the store unit; ``quant.perfmodel`` predicts the same)."""
    return (last_beat == 0) & (row_stride == bus_bytes)


def merged_burst_rows(m, *, address, rows_left, mergeable, bus_bytes: int):
    """Rows the DMA burst starting at ``address`` carries: 1, or where single-beat rows follow each other
    in DRAM (``mergeable``), up to ``MAX_BURST_ROWS`` of the ``rows_left`` in the block, never across a
    ``BURST_BOUNDARY``. The load and the store unit both burst this way."""
    beat_shift = (bus_bytes - 1).bit_length()
    burst_rows = Signal(range(MAX_BURST_ROWS + 1))
    page_beats_left = Signal(range((BURST_BOUNDARY >> beat_shift) + 1))
    m.d.comb += [page_beats_left.eq((BURST_BOUNDARY - address[:(BURST_BOUNDARY - 1).bit_length()]) >> beat_shift),
                 burst_rows.eq(1)]
    with m.If(mergeable):
        m.d.comb += burst_rows.eq(MAX_BURST_ROWS)
        with m.If((rows_left <= page_beats_left) & (rows_left < MAX_BURST_ROWS)):
            m.d.comb += burst_rows.eq(rows_left)
        with m.Elif(page_beats_left < MAX_BURST_ROWS):
            m.d.comb += burst_rows.eq(page_beats_left)
    return burst_rows


def planned_burst_rows(m, *, walker, mergeable, bus_bytes: int):
    """``merged_burst_rows`` from ``walker``'s position, registered, so the page-boundary arithmetic does
    not sit in front of the walker's step; and ``planned``: the walker neither started nor advanced in the
    last cycle, so the registered rows are its current burst's. A walk's first plan is 1, so a walk whose
    rows do not merge (``mergeable`` is registered as it starts) may step by the rows at once, planned
    or not. The load and the store unit both plan so."""
    burst_rows = Signal(range(MAX_BURST_ROWS + 1))
    planned = Signal()
    m.d.sync += [burst_rows.eq(Mux(walker.start, 1, merged_burst_rows(m, address=walker.address,
                                                                      rows_left=walker.data_rows_left,
                                                                      mergeable=mergeable, bus_bytes=bus_bytes))),
                 planned.eq(~walker.start & ~walker.advance)]
    return burst_rows, planned


def axi4_signature(data_width: int) -> wiring.Signature:
    """AXI4 manager: all five channels, INCR bursts, ``ID_WIDTH``-bit IDs."""
    strobe = data_width // 8
    return wiring.Signature({
        "awid": Out(ID_WIDTH), "awaddr": Out(ADDR_WIDTH), "awlen": Out(8), "awsize": Out(3),
        "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(strobe), "wlast": Out(1), "wvalid": Out(1), "wready": In(1),
        "bid": In(ID_WIDTH), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "arid": Out(ID_WIDTH), "araddr": Out(ADDR_WIDTH), "arlen": Out(8), "arsize": Out(3),
        "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
        "rid": In(ID_WIDTH), "rdata": In(data_width), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
        "rready": Out(1),
    })


def axi_lite_signature(addr_width: int = 8, data_width: int = 32) -> wiring.Signature:
    """AXI4-Lite manager."""
    return wiring.Signature({
        "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1), "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })
