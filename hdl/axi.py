"""AXI4 and AXI4-Lite bus signatures, written from the manager's (initiator's) side."""
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Response", "response_failed", "axi4_signature", "axi_lite_signature", "ADDR_WIDTH", "ID_WIDTH",
           "BURST_BOUNDARY"]

ADDR_WIDTH = 32
BURST_BOUNDARY = 4096      # no AXI burst may cross a multiple of this address
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
