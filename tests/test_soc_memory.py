"""The SoC's block RAM (``hdl.soc.BlockRamMemory``) in Amaranth's simulator: AXI4 bursts and AXI4-Lite words at once.

Random bursts with random strobes, valid gaps and read back-pressure on the AXI4 port run
concurrently with 32-bit accesses on the lite port; everything read equals a byte-array
model, and bursts beyond the memory or of another size or type answer SLVERR without writing.
"""
import random

import pytest
from amaranth.sim import Simulator

from hdl.axi import BURST_INCR, Response
from hdl.soc import BlockRamMemory

BUS_BITS = 64
BUS_BYTES = BUS_BITS // 8
SIZE = 512
SHIFT = (BUS_BYTES - 1).bit_length()


async def _write_burst(ctx, bus, rng, address, data, strobes, *, size=SHIFT, burst=BURST_INCR):
    ctx.set(bus.awaddr, address)
    ctx.set(bus.awlen, len(data) - 1)
    ctx.set(bus.awsize, size)
    ctx.set(bus.awburst, burst)
    ctx.set(bus.awid, rng.randrange(4))
    ctx.set(bus.awvalid, 1)
    await ctx.tick().until(bus.awready)
    ctx.set(bus.awvalid, 0)
    for index, (beat, strobe) in enumerate(zip(data, strobes)):
        if rng.random() < 0.3:
            await ctx.tick().repeat(rng.randrange(1, 4))
        ctx.set(bus.wdata, beat)
        ctx.set(bus.wstrb, strobe)
        ctx.set(bus.wlast, index == len(data) - 1)
        ctx.set(bus.wvalid, 1)
        await ctx.tick().until(bus.wready)
        ctx.set(bus.wvalid, 0)
    ctx.set(bus.bready, 1)
    response, = await ctx.tick().sample(bus.bresp).until(bus.bvalid)
    ctx.set(bus.bready, 0)
    return Response(response)


async def _read_burst(ctx, bus, rng, address, beats, *, size=SHIFT, burst=BURST_INCR):
    ctx.set(bus.araddr, address)
    ctx.set(bus.arlen, beats - 1)
    ctx.set(bus.arsize, size)
    ctx.set(bus.arburst, burst)
    ctx.set(bus.arid, identifier := rng.randrange(4))
    ctx.set(bus.arvalid, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    got = []
    while len(got) < beats:
        ready = rng.random() < 0.6
        ctx.set(bus.rready, ready)
        _, _, valid, data, response, last, rid = await ctx.tick().sample(bus.rvalid, bus.rdata, bus.rresp,
                                                                         bus.rlast, bus.rid)
        if valid and ready:
            assert rid == identifier and last == (len(got) == beats - 1)
            got.append((data, Response(response)))
    ctx.set(bus.rready, 0)
    return got


async def _lite_write(ctx, lite, address, word, strobe=0b1111):
    ctx.set(lite.awaddr, address)
    ctx.set(lite.wdata, word)
    ctx.set(lite.wstrb, strobe)
    ctx.set(lite.awvalid, 1)
    ctx.set(lite.wvalid, 1)
    await ctx.tick().until(lite.awready & lite.wready)
    ctx.set(lite.awvalid, 0)
    ctx.set(lite.wvalid, 0)
    ctx.set(lite.bready, 1)
    response, = await ctx.tick().sample(lite.bresp).until(lite.bvalid)
    ctx.set(lite.bready, 0)
    return Response(response)


async def _lite_read(ctx, lite, address):
    ctx.set(lite.araddr, address)
    ctx.set(lite.arvalid, 1)
    await ctx.tick().until(lite.arready)
    ctx.set(lite.arvalid, 0)
    ctx.set(lite.rready, 1)
    data, response = await ctx.tick().sample(lite.rdata, lite.rresp).until(lite.rvalid)
    ctx.set(lite.rready, 0)
    return data, Response(response)


def _apply(model: bytearray, address: int, beat: int, strobe: int, width: int):
    for byte in range(width):
        if strobe >> byte & 1:
            model[address + byte] = beat >> (8 * byte) & 0xFF


def test_bursts_and_lite_words_concurrently_against_a_byte_model(seed):
    rng = random.Random(seed)
    dut = BlockRamMemory(size_bytes=SIZE, bus_bits=BUS_BITS, collision_checks=True)
    model = bytearray(SIZE)
    half = SIZE // 2
    # Writes: bursts into the lower half (some crossing nothing), lite words into the upper half, at once.
    bursts = []
    for _ in range(12):
        beats = rng.randrange(1, 9)
        row = rng.randrange(0, half // BUS_BYTES - beats + 1)
        data = [rng.getrandbits(BUS_BITS) for _ in range(beats)]
        strobes = [rng.choice([(1 << BUS_BYTES) - 1, rng.getrandbits(BUS_BYTES)]) for _ in range(beats)]
        bursts.append((row * BUS_BYTES, data, strobes))
    lite_writes = [(half + 4 * rng.randrange(half // 4), rng.getrandbits(32), rng.choice([0b1111, rng.getrandbits(4)]))
                   for _ in range(40)]
    for address, data, strobes in bursts:
        for index, (beat, strobe) in enumerate(zip(data, strobes)):
            _apply(model, address + index * BUS_BYTES, beat, strobe, BUS_BYTES)
    for address, word, strobe in lite_writes:
        _apply(model, address, word, strobe, 4)
    reads = [(BUS_BYTES * (start := rng.randrange(SIZE // BUS_BYTES)), rng.randrange(1, SIZE // BUS_BYTES - start + 1))
             for _ in range(10)]
    lite_reads = [4 * rng.randrange(SIZE // 4) for _ in range(40)]
    results = {"burst writes": [], "lite writes": [], "bursts": [], "lite": []}
    phase = {"writes": 0}

    async def bursts_bench(ctx):
        for address, data, strobes in bursts:
            results["burst writes"].append(await _write_burst(ctx, dut.bus, rng, address, data, strobes))
        phase["writes"] += 1
        while phase["writes"] < 2:
            await ctx.tick()
        for address, beats in reads:
            results["bursts"].append((address, await _read_burst(ctx, dut.bus, rng, address, beats)))

    async def lite_bench(ctx):
        for address, word, strobe in lite_writes:
            results["lite writes"].append(await _lite_write(ctx, dut.lite, address, word, strobe))
        phase["writes"] += 1
        while phase["writes"] < 2:
            await ctx.tick()
        for address in lite_reads:
            results["lite"].append((address, await _lite_read(ctx, dut.lite, address)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bursts_bench)
    sim.add_testbench(lite_bench)
    sim.run()
    assert set(results["burst writes"]) == set(results["lite writes"]) == {Response.OKAY}
    assert len(results["bursts"]) == len(reads) and len(results["lite"]) == len(lite_reads)
    for address, beats in results["bursts"]:
        for index, (data, response) in enumerate(beats):
            row = address + index * BUS_BYTES
            assert response == Response.OKAY
            assert data == int.from_bytes(model[row:row + BUS_BYTES], "little"), f"beat at {row:#x} (seed {seed})"
    for address, (data, response) in results["lite"]:
        assert response == Response.OKAY
        assert data == int.from_bytes(model[address:address + 4], "little"), f"word at {address:#x} (seed {seed})"


@pytest.mark.parametrize("case", ["beyond the end", "crossing the end", "narrow size", "fixed burst"])
def test_bad_bursts_answer_slverr_and_write_nothing(case, seed):
    rng = random.Random(seed)
    dut = BlockRamMemory(size_bytes=SIZE, bus_bits=BUS_BITS, collision_checks=True)
    address, beats, size, burst = {
        "beyond the end": (SIZE, 2, SHIFT, BURST_INCR),
        "crossing the end": (SIZE - BUS_BYTES, 2, SHIFT, BURST_INCR),
        "narrow size": (0, 2, SHIFT - 1, BURST_INCR),
        "fixed burst": (0, 2, SHIFT, 0),
    }[case]
    seen = {}

    async def bench(ctx):
        seen["write"] = await _write_burst(ctx, dut.bus, rng, address, [(1 << BUS_BITS) - 1] * beats,
                                           [(1 << BUS_BYTES) - 1] * beats, size=size, burst=burst)
        seen["read"] = await _read_burst(ctx, dut.bus, rng, address, beats, size=size, burst=burst)
        seen["lite beyond"] = (await _lite_write(ctx, dut.lite, SIZE, 5), await _lite_read(ctx, dut.lite, SIZE))
        seen["memory"] = [await _lite_read(ctx, dut.lite, a) for a in range(0, SIZE, 4)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["write"] == Response.SLVERR
    in_range = case == "crossing the end"       # its first beat is inside: written and read normally
    # A failed beat's data is not specified; its response is.
    expected_reads = [Response.OKAY] if in_range else []
    expected_reads += [Response.SLVERR] * (beats - len(expected_reads))
    assert [response for _, response in seen["read"]] == expected_reads
    if in_range:
        assert seen["read"][0][0] == (1 << BUS_BITS) - 1
    assert seen["lite beyond"][0] == Response.SLVERR and seen["lite beyond"][1][1] == Response.SLVERR
    written = [(0xFFFFFFFF, Response.OKAY)] * (BUS_BYTES // 4) if in_range else []
    assert seen["memory"] == [(0, Response.OKAY)] * (SIZE // 4 - len(written)) + written


def test_a_burst_read_with_rready_high_streams_a_beat_per_cycle():
    beats = 16
    dut = BlockRamMemory(size_bytes=SIZE, bus_bits=BUS_BITS, collision_checks=True)
    valid_cycles = []

    async def bench(ctx):
        ctx.set(dut.bus.araddr, 0)
        ctx.set(dut.bus.arlen, beats - 1)
        ctx.set(dut.bus.arsize, SHIFT)
        ctx.set(dut.bus.arburst, BURST_INCR)
        ctx.set(dut.bus.arvalid, 1)
        ctx.set(dut.bus.rready, 1)
        await ctx.tick().until(dut.bus.arready)
        ctx.set(dut.bus.arvalid, 0)
        for cycle in range(beats + 8):
            _, _, valid, last = await ctx.tick().sample(dut.bus.rvalid, dut.bus.rlast)
            if valid:
                valid_cycles.append((cycle, last))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    first = valid_cycles[0][0]
    assert valid_cycles == [(first + k, k == beats - 1) for k in range(beats)]
