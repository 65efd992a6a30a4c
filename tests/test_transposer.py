"""The transposer in Amaranth's simulator: random blocks under random valid/ready, columns exact and in order."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.transposer import Transposer


@pytest.mark.parametrize("size", [1, 3, 4])
def test_columns_of_each_block_in_order_under_random_handshakes(size, seed):
    rng = np.random.default_rng(seed)
    blocks = rng.integers(-128, 128, size=(5, size, size))
    rows = blocks.reshape(-1, size)
    expected = blocks.transpose(0, 2, 1).reshape(-1, size)
    dut = Transposer(size)
    received = []

    # amaranth.lib.stream's documented testbench idiom, with random idle cycles between transfers.
    async def producer(ctx):
        for row in rows:
            idle = int(rng.integers(0, 3)) * int(rng.random() < 0.3)
            if idle:
                await ctx.tick().repeat(idle)
            ctx.set(dut.rows_in.valid, 1)
            ctx.set(dut.rows_in.payload, [int(v) for v in row])
            await ctx.tick().until(dut.rows_in.ready)
            ctx.set(dut.rows_in.valid, 0)

    async def consumer(ctx):
        while len(received) < len(expected):
            idle = int(rng.integers(0, 3)) * int(rng.random() < 0.3)
            if idle:
                await ctx.tick().repeat(idle)
            ctx.set(dut.columns.ready, 1)
            payload, = await ctx.tick().sample(dut.columns.payload).until(dut.columns.valid)
            ctx.set(dut.columns.ready, 0)
            received.append(list(payload))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(1e-6 * 10 * len(rows))
    assert np.array_equal(np.array(received), expected)


@pytest.mark.parametrize("size", [1, 2, 4])
def test_a_steady_stream_passes_at_one_beat_per_cycle_after_n(size):
    """Rows offered every cycle and columns always taken: no bubble between blocks."""
    dut = Transposer(size)
    blocks = 4
    timeline = []

    async def testbench(ctx):
        ctx.set(dut.columns.ready, 1)
        for cycle in range(blocks * size + size):
            ctx.set(dut.rows_in.valid, cycle < blocks * size)
            ctx.set(dut.rows_in.payload, [cycle] * size)
            timeline.append((ctx.get(dut.rows_in.ready), ctx.get(dut.columns.valid)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert all(ready for ready, _ in timeline[:blocks * size])
    assert [valid for _, valid in timeline] == [0] * size + [1] * (blocks * size)


def test_rejects_a_bad_size():
    with pytest.raises(ValueError, match="positive integer"):
        Transposer(0)
