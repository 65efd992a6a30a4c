"""The 8N1 UART in Amaranth's simulator: exact bit timing, loopback, glitches, framing errors, overrun."""
import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator

from hdl.uart import FRAME_BITS, MIN_CLOCKS_PER_BIT, UartRx, UartTx, clocks_per_bit


def _simulate(dut, *benches, deadline=None):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run_until(deadline) if deadline else sim.run()


class _Loopback(Elaboratable):
    def __init__(self, period):
        self.tx = UartTx(clocks_per_bit=period)
        self.rx = UartRx(clocks_per_bit=period)

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx, m.submodules.rx = self.tx, self.rx
        m.d.comb += self.rx.rx.eq(self.tx.tx)
        return m


@pytest.mark.parametrize("period", [MIN_CLOCKS_PER_BIT, 5, 7, 16])
def test_loopback_with_exact_bit_timing(period, seed):
    rng = random.Random(seed)
    sent = [0x00, 0xFF, 0x55, 0xAA] + [rng.getrandbits(8) for _ in range(12)]
    dut = _Loopback(period)
    received, line = [], []

    async def send(ctx):
        for byte in sent:
            ctx.set(dut.tx.data.payload, byte)
            ctx.set(dut.tx.data.valid, 1)
            await ctx.tick().until(dut.tx.data.ready)
            ctx.set(dut.tx.data.valid, 0)
            if rng.random() < 0.3:
                await ctx.tick().repeat(rng.randrange(1, 3 * period))

    async def receive(ctx):
        ctx.set(dut.rx.data.ready, 1)
        while len(received) < len(sent):
            _, _, payload, valid, framing, overrun = await ctx.tick().sample(
                dut.rx.data.payload, dut.rx.data.valid, dut.rx.framing_error, dut.rx.overrun)
            assert not framing and not overrun
            if valid:
                received.append(payload)

    async def record(ctx):
        for _ in range(len(sent) * (FRAME_BITS + 3) * period * 2):
            line.append(ctx.get(dut.tx.tx))
            await ctx.tick()

    _simulate(dut, send, receive, record)
    assert received == sent
    # The line: each frame is a start bit, 8 data bits LSB first and a stop bit, every bit exactly `period` cycles.
    decoded, index = [], 0
    while index < len(line) and len(decoded) < len(sent):
        if line[index]:
            index += 1
            continue
        frame = line[index:index + FRAME_BITS * period]
        bits = [frame[i * period:(i + 1) * period] for i in range(FRAME_BITS)]
        assert all(len(set(bit)) == 1 for bit in bits), f"a bit is not {period} cycles of one level: {bits}"
        assert bits[0][0] == 0 and bits[-1][0] == 1
        decoded.append(sum(bits[1 + i][0] << i for i in range(8)))
        index += FRAME_BITS * period
    assert decoded == sent


def _drive_bits(ctx, rx, bits, period):
    async def drive():
        for bit in bits:
            ctx.set(rx, bit)
            await ctx.tick().repeat(period)
    return drive()


def _frame(byte, stop=1):
    return [0, *((byte >> i) & 1 for i in range(8)), stop]


def test_receiver_ignores_glitches_drops_framing_errors_and_waits_out_a_break():
    period = 8
    dut = UartRx(clocks_per_bit=period)
    events = []

    async def bench(ctx):
        ctx.set(dut.data.ready, 1)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        ctx.set(dut.rx, 0)                       # a glitch shorter than half a bit
        await ctx.tick().repeat(period // 2 - 2)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * period)
        await _drive_bits(ctx, dut.rx, _frame(0x3C, stop=0), period)   # framing error...
        await _drive_bits(ctx, dut.rx, [0] * 25, period)                 # ...then a break: no bytes
        await _drive_bits(ctx, dut.rx, [1] * 2 + _frame(0xC3) + [1] * 2, period)

    async def watch(ctx):
        async for _, _, payload, valid, framing, overrun in ctx.tick().sample(
                dut.data.payload, dut.data.valid, dut.framing_error, dut.overrun):
            if valid:
                events.append(("byte", payload))
            if framing:
                events.append(("framing error",))
            if overrun:
                events.append(("overrun",))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(watch, background=True)
    sim.run()
    assert events == [("framing error",), ("byte", 0xC3)]


def test_receiver_holds_a_byte_until_taken_and_reports_overrun():
    period = 4
    dut = UartRx(clocks_per_bit=period)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3)
        overruns = 0
        for byte in (0x11, 0x22):
            for bit in _frame(byte) + [1]:
                ctx.set(dut.rx, bit)
                for _ in range(period):
                    overruns += ctx.get(dut.overrun)
                    await ctx.tick()
        await ctx.tick().repeat(period)
        seen["held"] = (ctx.get(dut.data.valid), ctx.get(dut.data.payload))
        seen["overruns"] = overruns
        ctx.set(dut.data.ready, 1)
        await ctx.tick()
        seen["after"] = ctx.get(dut.data.valid)

    _simulate(dut, bench)
    assert seen == {"held": (1, 0x11), "overruns": 1, "after": 0}


def test_clocks_per_bit_from_a_clock_and_baud_rate():
    assert clocks_per_bit(25e6, 115200) == 217
    assert clocks_per_bit(12e6, 115200) == 104
    assert clocks_per_bit(48e6, 3e6) == 16
    with pytest.raises(ValueError, match="too fast for a 12000000.0 Hz clock: the UART needs at least 4"):
        clocks_per_bit(12e6, 4e6)
    with pytest.raises(ValueError, match=r"off by 6\.7% with 5 clocks per bit; at most 2% is allowed"):
        clocks_per_bit(12e6, 2.25e6)
    with pytest.raises(ValueError, match="Baud rate must be a positive number, not 0"):
        clocks_per_bit(12e6, 0)


@pytest.mark.parametrize("unit", [UartRx, UartTx])
def test_clocks_per_bit_is_validated(unit):
    with pytest.raises(ValueError, match="Clocks per bit must be at least 4, not 3"):
        unit(clocks_per_bit=3)
    with pytest.raises(TypeError, match="Clocks per bit must be an integer, not 4.0"):
        unit(clocks_per_bit=4.0)
    with pytest.raises(TypeError, match="Clocks per bit must be an integer, not True"):
        unit(clocks_per_bit=True)
