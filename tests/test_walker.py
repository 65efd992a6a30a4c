"""The DMA address walker in Amaranth's simulator against ``row_addresses``, its Python definition."""
import numpy as np
from amaranth.sim import Simulator

from hdl.walker import DESCRIPTOR_FIELDS, PADDING_FIELDS, RowWalker, row_addresses


def random_descriptor(rng):
    rows, blocks = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    pad_before = int(rng.integers(0, rows + 1))
    pad_blocks_before = int(rng.integers(0, blocks + 1))
    return {"dram_addr": int(rng.integers(0, 1 << 20)), "rows": rows, "row_stride": int(rng.integers(0, 300)),
            "blocks": blocks, "block_stride": int(rng.integers(0, 5000)), "groups": int(rng.integers(1, 4)),
            "group_stride": int(rng.integers(0, 1 << 16)), "pad_before": pad_before,
            "pad_after": int(rng.integers(0, rows - pad_before + 1)), "pad_blocks_before": pad_blocks_before,
            "pad_blocks_after": int(rng.integers(0, blocks - pad_blocks_before + 1))}


def test_walks_match_the_definition_with_multi_row_steps(seed):
    rng = np.random.default_rng(seed)
    dut = RowWalker()
    descriptors = [random_descriptor(rng) for _ in range(40)]
    walked = []

    async def testbench(ctx):
        for descriptor in descriptors:
            for name in {**DESCRIPTOR_FIELDS, **PADDING_FIELDS}:
                ctx.set(getattr(dut, name), descriptor[name])
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            rows = []
            while True:
                pad, left = ctx.get(dut.pad), ctx.get(dut.data_rows_left)
                # Data rows may advance several at once, as merged bursts do; padding advances one
                # row whatever the step (a random one here).
                step = int(rng.integers(1, 17)) if pad else int(rng.integers(1, left + 1))
                rows += [None] if pad else [ctx.get(dut.address) + i * descriptor["row_stride"]
                                            for i in range(step)]
                ctx.set(dut.step, step)
                ctx.set(dut.step_bytes, step * descriptor["row_stride"])
                last = ctx.get(dut.last)
                ctx.set(dut.advance, 1)
                await ctx.tick()
                ctx.set(dut.advance, 0)
                if last:
                    break
            walked.append(rows)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    for descriptor, rows in zip(descriptors, walked):
        assert rows == row_addresses(descriptor), descriptor
