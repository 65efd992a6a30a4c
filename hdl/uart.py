"""8N1 UART receiver and transmitter with ``amaranth.lib.stream`` byte interfaces.

A frame is a start bit (0), eight data bits least significant first and a stop bit (1), each
``clocks_per_bit`` clock cycles long; the idle line is 1. ``clocks_per_bit(clock_hz, baud)``
derives the divider from a clock and a bit rate and refuses combinations whose rate error
would break the link.
"""
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from .config import refusable

__all__ = ["UartRx", "UartTx", "MIN_CLOCKS_PER_BIT", "FRAME_BITS", "MAX_RATE_ERROR", "clocks_per_bit",
           "check_clocks_per_bit"]

MIN_CLOCKS_PER_BIT = 4     # the receiver samples mid-bit and needs a cycle of margin either side
FRAME_BITS = 10            # start + 8 data + stop
# Sampling the middle of bit 9 tolerates half a bit of drift over 9.5 bits (5.3%) between both
# ends; 2% for this end leaves the rest to the other end's clock and the line.
MAX_RATE_ERROR = 0.02


def check_clocks_per_bit(value) -> int:
    """``value`` if it is a usable UART divider, else a TypeError/ValueError saying what is allowed."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"Clocks per bit must be an integer, not {value!r}")
    if value < MIN_CLOCKS_PER_BIT:
        raise ValueError(f"Clocks per bit must be at least {MIN_CLOCKS_PER_BIT}, not {value}")
    return value


def clocks_per_bit(clock_hz: float, baud: float) -> int:
    """The divider for ``baud`` from a ``clock_hz`` clock, rounded; refused if the rate is off by more than 2%."""
    for name, value in (("Clock frequency", clock_hz), ("Baud rate", baud)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise ValueError(f"{name} must be a positive number, not {value!r}")
    divider = round(clock_hz / baud)
    if divider < MIN_CLOCKS_PER_BIT:
        raise ValueError(f"Baud rate {baud} is too fast for a {clock_hz} Hz clock: the UART needs at least "
                         f"{MIN_CLOCKS_PER_BIT} clocks per bit (baud at most {clock_hz / MIN_CLOCKS_PER_BIT:.0f})")
    error = abs(clock_hz / divider - baud) / baud
    if error > MAX_RATE_ERROR:
        raise ValueError(f"Baud rate {baud} from a {clock_hz} Hz clock is off by {error:.1%} with {divider} clocks "
                         f"per bit; at most {MAX_RATE_ERROR:.0%} is allowed")
    return divider


class UartRx(wiring.Component):
    """8N1 receiver.

    The line passes a two-flop synchronizer; a falling edge starts a frame, which is checked at
    the middle of the start bit (a shorter pulse is a glitch and ignored) and sampled at the
    middle of every following bit. A byte whose stop bit is 0 is dropped with ``framing_error``,
    and the receiver then waits for the line to return to 1 (a break does not repeat bytes).
    The received byte is held on ``data`` until taken; a byte that completes while the previous
    one is still held is dropped with ``overrun``.

    Parameters
    ----------
    clocks_per_bit : int
        Clock cycles per bit, at least ``MIN_CLOCKS_PER_BIT``.

    Members
    -------
    rx : In(1)                         the line (idle 1)
    data : Out(stream.Signature(8))    received bytes
    framing_error, overrun : Out(1)    one-cycle pulses, for status LEDs or counters
    """

    @refusable
    def __init__(self, *, clocks_per_bit: int):
        self.clocks_per_bit = check_clocks_per_bit(clocks_per_bit)
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        period = self.clocks_per_bit
        line = Signal(init=1)
        m.submodules.synchronizer = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(period))
        bits = Signal(range(8))
        shift = Signal(8)

        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]
        with m.FSM(name="rx_state"):
            with m.State("Idle"):
                with m.If(~line):
                    m.d.sync += timer.eq(period // 2 - 1)
                    m.next = "Start"
            with m.State("Start"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "Idle"
                with m.Else():
                    m.d.sync += [timer.eq(period - 1), bits.eq(0)]
                    m.next = "Data"
            with m.State("Data"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), timer.eq(period - 1), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "Stop"
            with m.State("Stop"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(~line):
                    m.d.sync += self.framing_error.eq(1)
                    m.next = "Break"
                with m.Else():
                    with m.If(~self.data.valid | self.data.ready):
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                    with m.Else():
                        m.d.sync += self.overrun.eq(1)
                    m.next = "Idle"
            with m.State("Break"):
                with m.If(line):
                    m.next = "Idle"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter: takes a byte from ``data`` whenever the line is free.

    Parameters
    ----------
    clocks_per_bit : int
        Clock cycles per bit, at least ``MIN_CLOCKS_PER_BIT``.

    Members
    -------
    data : In(stream.Signature(8))    bytes to send
    tx : Out(1)                       the line (idle 1, registered)
    """

    @refusable
    def __init__(self, *, clocks_per_bit: int):
        self.clocks_per_bit = check_clocks_per_bit(clocks_per_bit)
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        period = self.clocks_per_bit
        timer = Signal(range(period))
        remaining = Signal(range(FRAME_BITS))      # bits still to send after the current one
        shift = Signal(FRAME_BITS - 1)               # data bits then the stop bit
        busy = Signal()

        with m.If(~busy):
            m.d.comb += self.data.ready.eq(1)
            with m.If(self.data.valid):
                m.d.sync += [self.tx.eq(0), shift.eq(Cat(self.data.payload, 1)), remaining.eq(FRAME_BITS - 1),
                             timer.eq(period - 1), busy.eq(1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(remaining == 0):
            m.d.sync += busy.eq(0)
        with m.Else():
            m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift >> 1), remaining.eq(remaining - 1),
                         timer.eq(period - 1)]
        return m
