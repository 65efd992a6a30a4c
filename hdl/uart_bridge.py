"""A UART-to-bus bridge: a framed byte protocol that reads and writes 32-bit words on two AXI4-Lite ports.

The protocol is defined here once: the bridge's state machine and the host driver
(``boards/host.py``) both use ``Command``, ``Status``, ``HEADER`` and ``LinkInfo``.

Request: a 7-byte header (``HEADER``, little-endian): ``command`` (1 byte), ``address`` (4 bytes,
a byte address, multiple of 4) and ``count`` (2 bytes, 32-bit words, 0 to 65535). A write
command is followed by ``count`` little-endian words. Response: a read sends ``count`` words
then one status byte; a write sends one status byte after its last word has been written.
Every frame is answered with exactly one status byte, so the host always knows how many bytes
to read:

======================  =============================================================================
status                  meaning
======================  =============================================================================
``OK``                  every word was transferred
``BAD_ADDRESS``         the address is not a multiple of 4, or ``address + 4 * count`` exceeds the
                        space (nothing is written; reads return zeros)
``BUS_ERROR``           a word got SLVERR/DECERR (e.g. an unmapped register); the other words were
                        transferred, a failed read word is returned as the bus gave it
``TIMEOUT``             a header or write data byte did not come within ``timeout_cycles`` of the
                        previous one; the frame was abandoned (words already written stay written)
``BAD_COMMAND``         sent as soon as an unknown command byte arrives; the bridge then drops bytes
                        until the line has been quiet for ``timeout_cycles``, and is ready again
======================  =============================================================================

Spaces (``Space``, the high nibble of the command; bit 0 of the command means write):
``MEMORY`` (the SoC's memory, what the accelerator's DMA sees, from address 0), ``CSR`` (the
accelerator's registers, ``hdl.csr.REGISTERS``) and ``INFO`` (read only: ``LinkInfo``, what was
generated: array, memories, memory size, UART divider, timeout).

The host must wait for a frame's status byte before sending the next frame: bytes are received
into a one-byte holding register while the bridge works, and a command's bus accesses take a
few cycles against the ten bit times of a byte.
"""
from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import Out

from .axi import ADDR_WIDTH, axi_lite_signature, response_failed
from .config import AcceleratorConfig, ArithSupport, ArrayConfig, Dataflow, refusable
from .csr import CSR_ADDR_WIDTH
from .uart import check_clocks_per_bit

__all__ = ["Space", "Command", "Status", "HEADER", "HEADER_BYTES", "WORD_BYTES", "MAX_WORDS", "INFO_MAGIC",
           "PROTOCOL_VERSION", "INFO_WORDS", "LinkInfo", "space_bytes", "UartBridge"]

WORD_BYTES = 4
MAX_WORDS = 0xFFFF
INFO_MAGIC = int.from_bytes(b"ACCL", "little")
PROTOCOL_VERSION = 1


class Space(enum.Enum, shape=4):
    """What a command addresses (the command byte's high nibble)."""
    MEMORY = 1
    CSR = 2
    INFO = 3


class Command(enum.Enum, shape=8):
    """Command byte: ``Space`` in bits 4 to 7, bit 0 set for a write."""
    READ_MEMORY = 0x10
    WRITE_MEMORY = 0x11
    READ_CSR = 0x20
    WRITE_CSR = 0x21
    READ_INFO = 0x30

    @property
    def space(self) -> Space:
        return Space(self.value >> 4)

    @property
    def is_write(self) -> bool:
        return bool(self.value & 1)


class Status(enum.Enum, shape=8):
    """The byte that ends every response; values unlike 0x00/0xFF, which a broken line produces."""
    OK = 0x4B               # ASCII 'K'
    BAD_COMMAND = 0xE1
    BAD_ADDRESS = 0xE2
    BUS_ERROR = 0xE3
    TIMEOUT = 0xE4


HEADER = data.StructLayout({"command": Command, "address": 32, "count": 16})
HEADER_BYTES = HEADER.size // 8

INFO_WORDS = 8
_DATAFLOWS = list(Dataflow)
_ARITHS = list(ArithSupport)


@dataclass(frozen=True)
class LinkInfo:
    """What a SoC was generated with, readable over the link (``Space.INFO``, ``INFO_WORDS`` words).

    Word 0 ``INFO_MAGIC``, 1 ``PROTOCOL_VERSION``, 2 memory bytes, 3 array (rows | cols << 8 |
    bus bits << 16 | dataflow << 24 | arith << 28, indices into ``Dataflow`` / ``ArithSupport``),
    4 spad KiB | acc KiB << 16, 5 channel rows, 6 clocks per bit, 7 timeout cycles.
    """
    config: AcceleratorConfig
    memory_bytes: int
    clocks_per_bit: int
    timeout_cycles: int

    def __post_init__(self):
        if not isinstance(self.config, AcceleratorConfig):
            raise TypeError(f"Link info config must be an AcceleratorConfig, not {self.config!r}")
        for name in ("memory_bytes", "timeout_cycles"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 1 << 32:
                raise ValueError(f"Link info {name} must be an integer from 1 to 2**32 - 1, not {value!r}")
        check_clocks_per_bit(self.clocks_per_bit)

    def words(self) -> tuple[int, ...]:
        config, array = self.config, self.config.array
        return (INFO_MAGIC, PROTOCOL_VERSION, self.memory_bytes,
                array.rows | array.cols << 8 | config.bus_bits << 16 | _DATAFLOWS.index(array.dataflow) << 24 |
                _ARITHS.index(array.arith) << 28,
                config.spad_kib | config.acc_kib << 16, config.channel_rows, self.clocks_per_bit,
                self.timeout_cycles)

    @classmethod
    def from_words(cls, words) -> "LinkInfo":
        """Decode ``words`` as read from ``Space.INFO``; ValueError if they are not this protocol's."""
        words = list(words)
        if len(words) != INFO_WORDS or words[0] != INFO_MAGIC:
            raise ValueError(f"Not an accelerator host link: info words {[hex(w) for w in words]} "
                             f"(expected {INFO_WORDS} words starting with {INFO_MAGIC:#x})")
        if words[1] != PROTOCOL_VERSION:
            raise ValueError(f"Host link protocol version {words[1]} is not the supported {PROTOCOL_VERSION}")
        array = words[3]
        config = AcceleratorConfig(
            ArrayConfig(array & 0xFF, array >> 8 & 0xFF, _DATAFLOWS[array >> 24 & 0xF], _ARITHS[array >> 28 & 0xF]),
            spad_kib=words[4] & 0xFFFF, acc_kib=words[4] >> 16, bus_bits=array >> 16 & 0xFF,
            channel_rows=words[5])
        return cls(config, words[2], words[6], words[7])


def space_bytes(space: Space, memory_bytes: int) -> int:
    """The size of ``space`` in bytes: addresses from 0 up to it are valid."""
    return {Space.MEMORY: memory_bytes, Space.CSR: 1 << CSR_ADDR_WIDTH, Space.INFO: INFO_WORDS * WORD_BYTES}[space]


class UartBridge(wiring.Component):
    """Executes the framed protocol above on bytes from ``rx``, answering on ``tx``.

    Parameters
    ----------
    info : LinkInfo
        The ``Space.INFO`` contents; ``info.memory_bytes`` bounds ``Space.MEMORY`` and
        ``info.timeout_cycles`` is the byte timeout.

    Members
    -------
    rx : In(stream.Signature(8))     received bytes (``hdl.uart.UartRx.data``)
    tx : Out(stream.Signature(8))    bytes to send (``hdl.uart.UartTx.data``)
    csr : Out(axi_lite_signature(CSR_ADDR_WIDTH))    the accelerator's registers
    memory : Out(axi_lite_signature(ADDR_WIDTH))     the memory, 32-bit words at byte addresses
    """

    @refusable
    def __init__(self, info: LinkInfo):
        if not isinstance(info, LinkInfo):
            raise TypeError(f"Bridge info must be a LinkInfo, not {info!r}")
        self.info = info
        super().__init__({
            "rx": wiring.In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "csr": Out(axi_lite_signature(CSR_ADDR_WIDTH)),
            "memory": Out(axi_lite_signature(ADDR_WIDTH)),
        })

    def elaborate(self, platform):
        m = Module()
        info = self.info
        header = Signal(HEADER)
        command = header.command.as_value()
        is_write = command[0]
        space = Signal(Space, init=Space.MEMORY)
        m.d.comb += space.eq(command[4:8])
        address = Signal(32)
        remaining = Signal(16)
        word = Signal(32)
        byte = Signal(range(HEADER_BYTES))     # byte of the header or of the current word
        status = Signal(Status, init=Status.OK)
        in_range = Signal()               # the frame's whole address range is valid
        aw_done = Signal()
        w_done = Signal()
        idle = Signal(range(info.timeout_cycles + 1))
        took = self.rx.valid & self.rx.ready
        timed_out = idle == info.timeout_cycles
        known = Cat(self.rx.payload == c.value for c in Command).any()

        end = header.address + WORD_BYTES * header.count
        limit = Signal(33)                # bytes in the addressed space
        with m.Switch(space):
            for each in Space:
                with m.Case(each):
                    m.d.comb += limit.eq(space_bytes(each, info.memory_bytes))
        info_rom = Array(Const(w, 32) for w in info.words())
        ports = {Space.MEMORY: self.memory, Space.CSR: self.csr}

        def count_idle():
            with m.If(took):
                m.d.sync += idle.eq(0)
            with m.Elif(~timed_out):
                m.d.sync += idle.eq(idle + 1)

        # Addresses and data go to both ports unconditionally (only the valids select one): no gating logic.
        for port in ports.values():
            m.d.comb += [port.awaddr.eq(address), port.araddr.eq(address), port.wdata.eq(word),
                         port.wstrb.eq(0b1111)]

        m.d.sync += idle.eq(0)
        with m.FSM(name="bridge_state"):
            with m.State("Command"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(took):
                    m.d.sync += header.eq(Cat(header.as_value()[8:], self.rx.payload))
                    with m.If(known):
                        m.d.sync += byte.eq(0)
                        m.next = "Header"
                    with m.Else():
                        m.next = "Reject"
            with m.State("Header"):
                # Address and count: six bytes, shifted in behind the command byte.
                m.d.comb += self.rx.ready.eq(1)
                count_idle()
                with m.If(took):
                    m.d.sync += [header.eq(Cat(header.as_value()[8:], self.rx.payload)), byte.eq(byte + 1)]
                    with m.If(byte == HEADER_BYTES - 2):
                        m.next = "Check"
                with m.Elif(timed_out):
                    m.d.sync += status.eq(Status.TIMEOUT)
                    m.next = "Status"
            with m.State("Check"):
                ok = (header.address[:2] == 0) & (end <= limit)
                m.d.sync += [address.eq(header.address), remaining.eq(header.count), in_range.eq(ok),
                             status.eq(Status.OK), byte.eq(0), aw_done.eq(0), w_done.eq(0)]
                with m.If(~ok):
                    m.d.sync += status.eq(Status.BAD_ADDRESS)
                with m.If(header.count == 0):
                    m.next = "Status"
                with m.Elif(is_write):
                    m.next = "Receive"
                with m.Else():
                    m.next = "Read"
            with m.State("Receive"):
                m.d.comb += self.rx.ready.eq(1)
                count_idle()
                with m.If(took):
                    m.d.sync += [word.eq(Cat(word[8:], self.rx.payload)), byte.eq(byte + 1)]
                    with m.If((byte == WORD_BYTES - 1) & in_range):
                        m.next = "Write"
                    with m.Elif(byte == WORD_BYTES - 1):
                        m.next = "Next"
                with m.Elif(timed_out):
                    m.d.sync += status.eq(Status.TIMEOUT)
                    m.next = "Status"
            with m.State("Write"):
                for port_space, port in ports.items():
                    with m.If(space == port_space):
                        m.d.comb += [port.awvalid.eq(~aw_done), port.wvalid.eq(~w_done)]
                        aw = aw_done | port.awready
                        w = w_done | port.wready
                        m.d.sync += [aw_done.eq(aw), w_done.eq(w)]
                        with m.If(aw & w):
                            m.next = "Write-Response"
            with m.State("Write-Response"):
                for port_space, port in ports.items():
                    with m.If(space == port_space):
                        m.d.comb += port.bready.eq(1)
                        with m.If(port.bvalid):
                            with m.If(response_failed(port.bresp)):
                                m.d.sync += status.eq(Status.BUS_ERROR)
                            m.next = "Next"
            with m.State("Read"):
                with m.If(~in_range):
                    m.d.sync += word.eq(0)
                    m.next = "Send"
                with m.Elif(space == Space.INFO):
                    m.d.sync += word.eq(info_rom[address[2:]])
                    m.next = "Send"
                for port_space, port in ports.items():
                    with m.Elif(space == port_space):
                        m.d.comb += port.arvalid.eq(1)
                        with m.If(port.arready):
                            m.next = "Read-Data"
            with m.State("Read-Data"):
                for port_space, port in ports.items():
                    with m.If(space == port_space):
                        m.d.comb += port.rready.eq(1)
                        with m.If(port.rvalid):
                            m.d.sync += word.eq(port.rdata)
                            with m.If(response_failed(port.rresp)):
                                m.d.sync += status.eq(Status.BUS_ERROR)
                            m.next = "Send"
            with m.State("Send"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(word[:8])]
                with m.If(self.tx.ready):
                    # Receive's shift: the byte shifted in is never sent, and one shift costs no multiplexer.
                    m.d.sync += [word.eq(Cat(word[8:], self.rx.payload)), byte.eq(byte + 1)]
                    with m.If(byte == WORD_BYTES - 1):
                        m.next = "Next"
            with m.State("Next"):
                m.d.sync += [address.eq(address + WORD_BYTES), remaining.eq(remaining - 1), byte.eq(0),
                             aw_done.eq(0), w_done.eq(0)]
                with m.If(remaining == 1):
                    m.next = "Status"
                with m.Elif(is_write):
                    m.next = "Receive"
                with m.Else():
                    m.next = "Read"
            with m.State("Status"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(status)]
                with m.If(self.tx.ready):
                    m.next = "Command"
            with m.State("Reject"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(Status.BAD_COMMAND)]
                with m.If(self.tx.ready):
                    m.next = "Discard"
            with m.State("Discard"):
                # Drop the rest of the unknown frame: resynchronize on a quiet line.
                m.d.comb += self.rx.ready.eq(1)
                count_idle()
                with m.If(timed_out):
                    m.next = "Command"
        return m
