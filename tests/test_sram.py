"""``hdl.sram.check_collisions``, in Amaranth's simulator."""
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from hdl.sram import check_collisions, collision_free_memory


def run_accesses(read_address: int, write_address: int, kept: int = 1):
    m = Module()
    storage = collision_free_memory(m, "storage", shape=8, depth=16)
    read, write = storage.read_port(), storage.write_port()
    check_collisions(m, storage, "storage", {read: kept})
    m.d.comb += [read.addr.eq(read_address), write.addr.eq(write_address), write.data.eq(0x5A), write.en.eq(1)]
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def bench(ctx):
        await ctx.tick()
        await ctx.tick()
    sim.add_testbench(bench)
    sim.run()


def test_a_read_of_another_row_passes():
    run_accesses(read_address=3, write_address=4)


def test_a_read_of_the_row_being_written_fails():
    with pytest.raises(AssertionError, match="storage: read port 0 addresses the row write port 0 writes"):
        run_accesses(read_address=4, write_address=4)


def test_a_dropped_read_of_the_row_being_written_passes():
    run_accesses(read_address=4, write_address=4, kept=0)
