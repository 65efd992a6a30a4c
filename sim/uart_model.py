"""A cocotb UART model (8N1) on a design's pins, and a pyserial-like transport over it for the host driver.

``SimTransport`` has the blocking ``write``/``read`` of ``serial.Serial``, so ``boards.host.HostLink``
runs unchanged in simulation: call the driver from a thread started with ``cocotb.task.bridge``;
each transport call resumes the simulation (``cocotb.task.resume``) until its bytes are sent
or received, so simulated time advances only while the driver waits on the link.
"""
import cocotb
from cocotb.task import resume
from cocotb.triggers import ClockCycles, FallingEdge

from hdl.uart import FRAME_BITS, check_clocks_per_bit

__all__ = ["UartSource", "UartSink", "SimTransport"]


class UartSource:
    """Drives ``pin`` with 8N1 frames, ``clocks_per_bit`` cycles of ``clock`` per bit, back to back."""

    def __init__(self, pin, clock, clocks_per_bit: int):
        self.pin, self.clock, self.clocks_per_bit = pin, clock, check_clocks_per_bit(clocks_per_bit)
        pin.value = 1

    async def send(self, data: bytes) -> None:
        for byte in data:
            for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                self.pin.value = bit
                await ClockCycles(self.clock, self.clocks_per_bit)


class UartSink:
    """Receives 8N1 frames from ``pin`` into ``received``; frames with a bad stop bit count as ``framing_errors``."""

    def __init__(self, pin, clock, clocks_per_bit: int):
        self.pin, self.clock, self.clocks_per_bit = pin, clock, check_clocks_per_bit(clocks_per_bit)
        self.received = bytearray()
        self.framing_errors = 0
        self._task = cocotb.start_soon(self._receive())

    async def _receive(self) -> None:
        period = self.clocks_per_bit
        while True:
            await FallingEdge(self.pin)
            await ClockCycles(self.clock, period // 2)       # the middle of the start bit
            if self.pin.value:
                continue
            byte = 0
            for index in range(8):
                await ClockCycles(self.clock, period)
                byte |= int(self.pin.value) << index
            await ClockCycles(self.clock, period)
            if self.pin.value:
                self.received.append(byte)
            else:
                self.framing_errors += 1


class SimTransport:
    """pyserial-like byte stream over a ``UartSource`` and ``UartSink``, for use from a bridge thread.

    ``read(size)`` returns once ``size`` bytes have arrived, or with what has arrived when
    ``timeout_cycles`` clock cycles pass without a new byte (pyserial's read timeout).
    """

    def __init__(self, source: UartSource, sink: UartSink, *, timeout_cycles: int):
        if not isinstance(timeout_cycles, int) or timeout_cycles < 1:
            raise ValueError(f"Transport timeout must be a positive number of cycles, not {timeout_cycles!r}")
        self.source, self.sink = source, sink
        self.timeout_cycles = timeout_cycles
        self.bytes_written = 0
        self.bytes_read = 0

    async def _read(self, size: int) -> bytes:
        step = FRAME_BITS * self.sink.clocks_per_bit
        quiet = 0
        while len(self.sink.received) < size and quiet < self.timeout_cycles:
            before = len(self.sink.received)
            await ClockCycles(self.sink.clock, step)
            quiet = 0 if len(self.sink.received) > before else quiet + step
        data = bytes(self.sink.received[:size])
        del self.sink.received[:size]
        return data

    def write(self, data: bytes) -> int:
        resume(self.source.send)(bytes(data))
        self.bytes_written += len(data)
        return len(data)

    def read(self, size: int) -> bytes:
        data = resume(self._read)(size)
        self.bytes_read += len(data)
        return data
