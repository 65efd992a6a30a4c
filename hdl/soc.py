"""A self-contained SoC for FPGA boards: the accelerator, on-chip memory and a UART host link.

::

    uart_rx -> UartRx -> UartBridge -> UartTx -> uart_tx
                            |  csr (AXI4-Lite)  ---> Accelerator.s_axil --> irq
                            |  memory (AXI4-Lite) -> BlockRamMemory.lite
                 Accelerator.m_axi (AXI4, DMA) ----> BlockRamMemory.bus

The host loads a program and its data into the memory, starts the accelerator through its
registers and reads the results back, all over the UART (``hdl.uart_bridge`` defines the
protocol, ``boards/host.py`` is the driver). The memory is block RAM inside the FPGA; board
SDRAM is not supported (programs and their data must fit in ``memory_kib``).
"""
from amaranth.back import verilog
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .axi import ADDR_WIDTH, BURST_INCR, Response, axi4_signature, axi_lite_signature
from .config import AcceleratorConfig, refusable
from .generate import accelerator_name
from .sram import check_collisions, collision_free_memory
from .uart import UartRx, UartTx, check_clocks_per_bit
from .uart_bridge import WORD_BYTES, LinkInfo, UartBridge

__all__ = ["BlockRamMemory", "HostLinkSoC", "MAX_MEMORY_KIB", "DEFAULT_TIMEOUT_BYTES", "soc_name",
           "generate_soc_verilog"]

MAX_MEMORY_KIB = 1024
# A frame's bytes come back to back from a USB-serial adapter; a gap this long (in byte times)
# means the host gave up, and the bridge answers TIMEOUT instead of waiting forever.
DEFAULT_TIMEOUT_BYTES = 1024
_BYTE_BITS = 10


class BlockRamMemory(wiring.Component):
    """``size_bytes`` of block RAM, one ``bus_bits`` word per row, behind two AXI slave ports.

    ``bus`` serves the accelerator's DMA: INCR bursts of full-width beats (any ID, one burst of
    each direction at a time, one beat per cycle); ``lite`` serves 32-bit word accesses from the
    host bridge. Reads share the memory's one read port and writes its one write port (a simple
    dual-port RAM, which every FPGA block RAM provides); a ``lite`` access waits at most for the
    ``bus`` burst in progress. Beats at or beyond ``size_bytes``, and bursts of another size or
    type, answer SLVERR (writes are dropped; the data of a failed read beat is meaningless).

    Parameters
    ----------
    size_bytes : int
        A positive multiple of the bus width.
    bus_bits : int
        The AXI4 data width.
    collision_checks : bool
        Simulation only: assert that no read meets a write of the same row (``hdl.sram.check_collisions``).
        The memory is collision free: the accelerator's tokens keep its reads and writes of a row apart,
        and the host reads results after DONE (a host read racing the accelerator's write of the same row
        in the same cycle returns an undefined row on the FPGA).

    Members
    -------
    bus : In(axi4_signature(bus_bits))
    lite : In(axi_lite_signature(ADDR_WIDTH))
    """

    @refusable
    def __init__(self, *, size_bytes: int, bus_bits: int, collision_checks: bool = False):
        if not isinstance(bus_bits, int) or bus_bits < 32 or bus_bits & (bus_bits - 1):
            raise ValueError(f"Memory bus width must be a power of two of at least 32 bits, not {bus_bits!r}")
        if not isinstance(size_bytes, int) or size_bytes <= 0 or size_bytes % (bus_bits // 8):
            raise ValueError(f"Memory size must be a positive multiple of {bus_bits // 8} bytes, not {size_bytes!r}")
        self.size_bytes = size_bytes
        self.bus_bits = bus_bits
        self.collision_checks = collision_checks
        super().__init__({
            "bus": In(axi4_signature(bus_bits)),
            "lite": In(axi_lite_signature(ADDR_WIDTH)),
        })

    def elaborate(self, platform):
        m = Module()
        bus, lite = self.bus, self.lite
        bus_bytes = self.bus_bits // 8
        shift = (bus_bytes - 1).bit_length()
        depth = self.size_bytes // bus_bytes
        lanes = bus_bytes // WORD_BYTES
        storage = collision_free_memory(m, "storage", shape=self.bus_bits, depth=depth)
        read = storage.read_port()
        write = storage.write_port(granularity=8)
        if self.collision_checks:
            check_collisions(m, storage, "storage")

        def row(address):
            return address[shift:]

        def lane(address):
            return address[2:shift] if lanes > 1 else 0

        # Reads: one burst at a time through the block RAM's read (its own register) and a two-entry queue in
        # the fabric (head and skid). The block RAM's clock-to-out (5.8 ns on the ECP5) then drives no logic
        # (into the load unit, and through the word select and the host bridge, it was the 4x4 SoC's worst
        # path, 12.5 ns, 2026-12-06), and a read is issued while the three stages are not all full, a decision
        # from registers alone: from the load unit's rready through the pipeline's enable to the burst's row
        # and beat counters was the 4x4 SoC's worst path (11.6 ns, 2026-12-06 #12). Only the head's
        # register waits for rready.
        r_active = Signal()
        r_row = Signal(ADDR_WIDTH - shift)
        r_left = Signal(8)
        r_id = Signal.like(bus.arid)
        r_lite = Signal()
        r_lane = Signal(range(lanes))
        r_bad = Signal()                  # wrong burst size or type: every beat fails
        beat = data.StructLayout({"lite": 1, "id": len(bus.rid), "last": 1, "lane": range(lanes), "error": 1})
        fetched, fetched_beat = Signal(), Signal(beat)
        out_valid, out_beat, out_data = Signal(), Signal(beat), Signal(self.bus_bits)
        skid_valid, skid_beat, skid_data = Signal(), Signal(beat), Signal(self.bus_bits)
        out_ready = Mux(out_beat.lite, lite.rready, bus.rready)
        pop = out_valid & out_ready
        move = fetched & ~(out_valid & skid_valid)        # into the head or the skid, whichever is its place
        issue = r_active & ~(fetched & out_valid & skid_valid)
        with m.If(~r_active):
            with m.If(lite.arvalid):
                m.d.comb += lite.arready.eq(1)
                m.d.sync += [r_active.eq(1), r_row.eq(row(lite.araddr)), r_left.eq(0), r_lite.eq(1),
                             r_lane.eq(lane(lite.araddr)), r_bad.eq(0)]
            # (Ready whether or not a burst is offered: from the load unit's burst planning through the
            # arbiter and this handshake to the load unit's walker was the 4x4 SoC's worst path, 10.9 ns,
            # 2026-12-06 #14.)
            with m.Else():
                m.d.comb += bus.arready.eq(1)
                with m.If(bus.arvalid):
                    m.d.sync += [r_active.eq(1), r_row.eq(row(bus.araddr)), r_left.eq(bus.arlen), r_lite.eq(0),
                                 r_id.eq(bus.arid), r_bad.eq((bus.arsize != shift) | (bus.arburst != BURST_INCR))]
        # The read port's enable resets to 1: drive it always, so a waiting beat's data is held.
        m.d.comb += [read.en.eq(issue), read.addr.eq(r_row)]
        with m.If(issue):
            m.d.sync += [fetched.eq(1), fetched_beat.lite.eq(r_lite), fetched_beat.id.eq(r_id),
                         fetched_beat.last.eq(r_left == 0), fetched_beat.lane.eq(r_lane),
                         fetched_beat.error.eq(r_bad | (r_row >= depth)),
                         r_row.eq(r_row + 1), r_left.eq(r_left - 1)]
            with m.If(r_left == 0):
                m.d.sync += r_active.eq(0)
        with m.Elif(move):
            m.d.sync += fetched.eq(0)
        # The skid takes every moved beat; it is valid only when the head is taken and stays so.
        with m.If(move):
            m.d.sync += [skid_beat.eq(fetched_beat), skid_data.eq(read.data)]
        with m.If(~out_valid | pop):
            m.d.sync += [out_valid.eq(skid_valid | move), skid_valid.eq(skid_valid & move)]
            with m.If(skid_valid):
                m.d.sync += [out_beat.eq(skid_beat), out_data.eq(skid_data)]
            with m.Else():
                m.d.sync += [out_beat.eq(fetched_beat), out_data.eq(read.data)]
        with m.Elif(move):
            m.d.sync += skid_valid.eq(1)
        # A failed beat's data is whatever the row address aliases to (not zeroed: that would cost a gate per bit).
        response = Mux(out_beat.error, Response.SLVERR, Response.OKAY)
        m.d.comb += [
            bus.rvalid.eq(out_valid & ~out_beat.lite), bus.rdata.eq(out_data), bus.rresp.eq(response),
            bus.rlast.eq(out_beat.last), bus.rid.eq(out_beat.id),
            lite.rvalid.eq(out_valid & out_beat.lite), lite.rresp.eq(response),
            lite.rdata.eq(out_data.word_select(out_beat.lane, 32) if lanes > 1 else out_data[:32]),
        ]

        # Writes: a lite word in one cycle, or a burst of beats; one response outstanding per port. The write
        # port's inputs are registered: from the host bridge's frame decoding and the store unit's beat counter
        # through this arbitration to the block RAM's write port (inputs across the die) were the 4x4 SoC's
        # worst paths, 11.0 and 12.1 ns (2026-12-07 #22). A row is then written a cycle after its beat is
        # taken, no later than its response is seen, so a read after the response finds it.
        write_row = Signal.like(write.addr)
        write_data = Signal.like(write.data)
        write_strobes = Signal.like(write.en)
        m.d.comb += [write.addr.eq(write_row), write.data.eq(write_data), write.en.eq(write_strobes)]
        m.d.sync += write_strobes.eq(0)
        w_active = Signal()
        w_row = Signal(ADDR_WIDTH - shift)
        w_left = Signal(8)
        w_error = Signal()
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        with m.If(lite.bvalid & lite.bready):
            m.d.sync += lite.bvalid.eq(0)
        with m.If(w_active):
            m.d.comb += bus.wready.eq(1)
            with m.If(bus.wvalid):
                beat_error = w_error | (w_row >= depth)
                m.d.sync += [write_row.eq(w_row), write_data.eq(bus.wdata),
                             write_strobes.eq(Mux(beat_error, 0, bus.wstrb)),
                             w_row.eq(w_row + 1), w_left.eq(w_left - 1)]
                with m.If(bus.wlast | (w_left == 0)):
                    m.d.sync += [w_active.eq(0), bus.bvalid.eq(1),
                                 bus.bresp.eq(Mux(beat_error | (bus.wlast != (w_left == 0)) | w_error,
                                                  Response.SLVERR, Response.OKAY))]
                with m.Elif(beat_error):
                    m.d.sync += w_error.eq(1)
        with m.Elif(lite.awvalid & lite.wvalid & ~lite.bvalid):
            lite_error = row(lite.awaddr) >= depth
            m.d.comb += [lite.awready.eq(1), lite.wready.eq(1)]
            m.d.sync += [write_row.eq(row(lite.awaddr)), write_data.eq(lite.wdata.replicate(lanes)),
                         write_strobes.eq(Mux(lite_error, 0, lite.wstrb << (lane(lite.awaddr) * WORD_BYTES))),
                         lite.bvalid.eq(1), lite.bresp.eq(Mux(lite_error, Response.SLVERR, Response.OKAY))]
        with m.Elif(~bus.bvalid):             # (ready whether or not a burst is offered, as for reads)
            m.d.comb += bus.awready.eq(1)
            with m.If(bus.awvalid):
                m.d.sync += [w_active.eq(1), w_row.eq(row(bus.awaddr)), w_left.eq(bus.awlen), bus.bid.eq(bus.awid),
                             w_error.eq((bus.awsize != shift) | (bus.awburst != BURST_INCR))]
        return m


class HostLinkSoC(wiring.Component):
    """The accelerator for ``config`` with ``memory_kib`` KiB of block RAM and a UART host link.

    Parameters
    ----------
    config : AcceleratorConfig
    memory_kib : int
        Block RAM the accelerator's DMA and the host share, 1 to ``MAX_MEMORY_KIB`` KiB.
    clocks_per_bit : int
        UART divider (``hdl.uart.clocks_per_bit(clock_hz, baud)``), at least 4.
    timeout_bytes : int
        Byte times (10 bits each) of silence after which the bridge abandons a frame, 1 to 65535.
    collision_checks : bool
        Simulation only: the accelerator's and the memory's assertions (``Accelerator``, ``BlockRamMemory``).

    Members
    -------
    uart_rx : In(1)      from the host (idle 1)
    uart_tx : Out(1)     to the host (idle 1)
    irq : Out(1)         the accelerator's interrupt: DONE or ERROR while CONTROL.IRQ_ENABLE (e.g. an LED)

    The clock and reset are the ``sync`` domain (``clk``, ``rst`` in the Verilog).
    """

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)
    irq: Out(1)

    @refusable
    def __init__(self, config: AcceleratorConfig, *, memory_kib: int = 16, clocks_per_bit: int,
                 timeout_bytes: int = DEFAULT_TIMEOUT_BYTES, collision_checks: bool = False):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"SoC config must be an AcceleratorConfig, not {config!r}")
        if not isinstance(memory_kib, int) or isinstance(memory_kib, bool) or not 1 <= memory_kib <= MAX_MEMORY_KIB:
            raise ValueError(f"SoC memory must be an integer from 1 to {MAX_MEMORY_KIB} KiB, not {memory_kib!r}")
        check_clocks_per_bit(clocks_per_bit)
        if not isinstance(timeout_bytes, int) or isinstance(timeout_bytes, bool) or not 1 <= timeout_bytes <= 0xFFFF:
            raise ValueError(f"SoC timeout must be an integer from 1 to 65535 byte times, not {timeout_bytes!r}")
        if timeout_bytes * _BYTE_BITS * clocks_per_bit >= 1 << 32:
            raise ValueError(f"SoC timeout of {timeout_bytes} byte times at {clocks_per_bit} clocks per bit exceeds "
                             f"2**32 - 1 clock cycles; use fewer timeout bytes")
        self.config = config
        self.collision_checks = collision_checks
        self.memory_kib = memory_kib
        self.info = LinkInfo(config, memory_kib * 1024, clocks_per_bit, timeout_bytes * _BYTE_BITS * clocks_per_bit)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        info = self.info
        accelerator = m.submodules.accelerator = Accelerator(self.config, collision_checks=self.collision_checks)
        ram = m.submodules.memory = BlockRamMemory(size_bytes=info.memory_bytes, bus_bits=self.config.bus_bits,
                                                   collision_checks=self.collision_checks)
        rx = m.submodules.uart_rx = UartRx(clocks_per_bit=info.clocks_per_bit)
        tx = m.submodules.uart_tx = UartTx(clocks_per_bit=info.clocks_per_bit)
        bridge = m.submodules.bridge = UartBridge(info)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx), self.irq.eq(accelerator.irq)]
        wiring.connect(m, rx.data, bridge.rx)
        wiring.connect(m, bridge.tx, tx.data)
        wiring.connect(m, bridge.csr, accelerator.s_axil)
        wiring.connect(m, bridge.memory, ram.lite)
        wiring.connect(m, accelerator.m_axi, ram.bus)
        return m


def soc_name(config: AcceleratorConfig, memory_kib: int) -> str:
    """Top module name, e.g. ``soc_4x4_os_int8_128b_16k``."""
    return f"soc_{accelerator_name(config).removeprefix('accel_')}_{memory_kib}k"


def generate_soc_verilog(soc: HostLinkSoC) -> str:
    """Synthesizable Verilog of ``soc``; the top module is ``soc_name(...)``, ports clk, rst, uart_rx, uart_tx, irq."""
    return verilog.convert(soc, name=soc_name(soc.config, soc.memory_kib), emit_src=False)
