"""``hdl.sram.check_collisions``, in Amaranth's simulator."""
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from hdl.sram import check_collisions, collision_free_memory


def run_accesses(read_address: int, write_address: int, kept: int = 1, leading_address: int = 0):
    """``leading_address``: the row a write port of another memory writes every cycle, given to the checks as
    a leading write (one that reaches ``storage`` a cycle later, as the accumulator's reaches the store's copy)."""
    m = Module()
    storage = collision_free_memory(m, "storage", shape=8, depth=16)
    original = collision_free_memory(m, "original", shape=8, depth=16)
    read, write, leading = storage.read_port(), storage.write_port(), original.write_port()
    check_collisions(m, storage, "storage", {read: kept}, {"the original's write port": leading})
    m.d.comb += [read.addr.eq(read_address), write.addr.eq(write_address), write.data.eq(0x5A), write.en.eq(1),
                 leading.addr.eq(leading_address), leading.data.eq(0x5A), leading.en.eq(1)]
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


def test_a_read_of_the_row_written_a_cycle_ahead_fails():
    with pytest.raises(AssertionError, match="storage: read port 0 addresses the row the original's write port "
                                             "writes"):
        run_accesses(read_address=4, write_address=5, leading_address=4)
