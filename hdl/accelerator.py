"""The accelerator top level: CSRs over AXI4-Lite, an AXI4 DRAM master, and the load/compute/store units.

::

    s_axil -> CsrBlock --start--> FetchUnit --queues--> LoadUnit ---> scratchpads, accumulator, channels
                                                        ComputeUnit (SystolicArray) <-> accumulator
                                                        StoreUnit (PostProcessor) ---> m_axi writes

Reads on ``m_axi`` carry ID 0 (fetch) or 1 (load); writes come from the store unit.
Tokens between units are up/down counters (``hdl.isa`` explains the protocol).
A run ends when END has been dispatched and every queue and unit is idle, or
at the first error (``csr.ErrorCode``), which resets the units and queues two cycles after the unit's
error pulse (the pulse and the reset are both registered).
"""
from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal, Value
from amaranth.lib import fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from .axi import BURST_INCR, axi4_signature, axi_lite_signature
from .compute import ComputeUnit
from .config import AcceleratorConfig, refusable
from .csr import COUNTERS, CsrBlock, ErrorCode
from .fetch import FetchUnit
from .isa import INSTRUCTION_BITS, Target
from .load import LoadUnit, memory_shapes
from .sram import check_collisions, collision_free_memory
from .store import StoreUnit

__all__ = ["Accelerator"]

QUEUE_DEPTHS = (4, 4, 8)     # instructions queued for the load, compute and store units (deepest: STOREs wait for results)
TOKEN_BITS = 8
FETCH_ID, LOAD_ID = 0, 1
# The store unit's copy of the accumulator. Every memory but the accumulator is collision free (``hdl.sram``):
# a unit reads scratchpad and channel rows only after the LOAD that writes them has pushed its token, the
# load unit reads scales only for a COMBINE LOAD (which writes neither), and the store unit reads the
# accumulator rows the compute unit has retired. The accumulator's read-modify-writes read rows still
# being written: the compute unit forwards those, and a COMBINE row of several beats relies on the old row's
# other lanes.
STORED_ACCUMULATORS = "accumulators_for_store"


class Accelerator(wiring.Component):
    """The complete accelerator for ``config``.

    ``collision_checks`` (simulation only) asserts that no read of a collision-free memory (every memory but
    the accumulator) meets a write of the same row (``hdl.sram.check_collisions``).

    Members
    -------
    m_axi : Out(axi4_signature(config.bus_bits))    DRAM
    s_axil : In(axi_lite_signature(8))               control/status registers (``hdl.csr.REGISTERS``)
    irq : Out(1)                                     DONE or ERROR while CONTROL.IRQ_ENABLE
    """

    @refusable
    def __init__(self, config: AcceleratorConfig, *, collision_checks: bool = False):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"Accelerator config must be an AcceleratorConfig, not {config!r}")
        self.config = config
        self.collision_checks = collision_checks
        super().__init__({
            "m_axi": Out(axi4_signature(config.bus_bits)),
            "s_axil": In(axi_lite_signature(8)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self.config
        axi = self.m_axi
        soft_reset = Signal()

        csr = m.submodules.csr = CsrBlock()
        wiring.connect(m, wiring.flipped(self.s_axil), csr.bus)
        fetch = m.submodules.fetch = ResetInserter(soft_reset)(FetchUnit(config))
        load = m.submodules.load = ResetInserter(soft_reset)(LoadUnit(config))
        compute = m.submodules.compute = ResetInserter(soft_reset)(ComputeUnit(config))
        store = m.submodules.store = ResetInserter(soft_reset)(StoreUnit(config))
        queues = {}
        for name, unit, source, depth in zip(("load", "compute", "store"), (load, compute, store),
                                             (fetch.to_load, fetch.to_compute, fetch.to_store), QUEUE_DEPTHS):
            queue = queues[name] = fifo.SyncFIFOBuffered(width=INSTRUCTION_BITS, depth=depth)
            m.submodules[f"{name}_queue"] = ResetInserter(soft_reset)(queue)
            m.d.comb += [queue.w_data.eq(source.payload), queue.w_en.eq(source.valid), source.ready.eq(queue.w_rdy),
                         unit.instructions.payload.eq(queue.r_data), unit.instructions.valid.eq(queue.r_rdy),
                         queue.r_en.eq(unit.instructions.ready)]

        # Memories. FPGA block RAM has one read port beside its write port, so synthesis keeps a copy of a
        # memory per read port anyway; the store unit's copy of the accumulator (``STORED_ACCUMULATORS``) is
        # made here, so that it can be collision free.
        shapes = memory_shapes(config)
        memories = {}
        collision_free = {}     # by name, for the checks
        for target, (depth, lanes, element) in shapes.items():
            name, shape = f"{target.name.lower()}_memory", lanes * element * 8
            if target == Target.ACCUMULATORS:
                memories[target] = m.submodules[name] = memory.Memory(shape=shape, depth=depth, init=[])
            else:
                memories[target] = collision_free[name] = collision_free_memory(m, name, shape=shape, depth=depth)
                wiring.connect(m, getattr(load, f"write_{target.name.lower()}"),
                               memories[target].write_port(granularity=8))
        stored_accumulators = collision_free[STORED_ACCUMULATORS] = collision_free_memory(
            m, STORED_ACCUMULATORS, shape=memories[Target.ACCUMULATORS].shape, depth=memories[Target.ACCUMULATORS].depth)
        wiring.connect(m, compute.act_read, memories[Target.ACTIVATIONS].read_port())
        if config.array.paired:
            wiring.connect(m, compute.act_read_secondary, memories[Target.ACTIVATIONS].read_port())
        wiring.connect(m, compute.weight_read, memories[Target.WEIGHTS].read_port())
        wiring.connect(m, store.acc_read, stored_accumulators.read_port())
        wiring.connect(m, load.weight_read, memories[Target.WEIGHTS].read_port())
        # The accumulator has one write port and one read port besides the store's, so it maps onto
        # FPGA block RAM: the compute unit's read-modify-write has them whenever it needs them
        # (acc_busy), and accumulator and COMBINE loads hold their beats meanwhile.
        acc_read = memories[Target.ACCUMULATORS].read_port()
        acc_write = memories[Target.ACCUMULATORS].write_port(granularity=8)
        stored_write = stored_accumulators.write_port(granularity=8)
        load_write = load.write_accumulators
        m.d.comb += [
            load.acc_busy.eq(compute.acc_busy),
            acc_read.addr.eq(Mux(load.acc_read.en, load.acc_read.addr, compute.acc_read.addr)),
            acc_read.en.eq(load.acc_read.en | compute.acc_read.en),
            compute.acc_read.data.eq(acc_read.data), load.acc_read.data.eq(acc_read.data),
            acc_write.addr.eq(Mux(compute.acc_write.en, compute.acc_write.addr, load_write.addr)),
            acc_write.data.eq(Mux(compute.acc_write.en, compute.acc_write.data, load_write.data)),
            acc_write.en.eq(Mux(compute.acc_write.en, (1 << len(acc_write.en)) - 1, load_write.en)),
        ]
        # The store unit's copy is written a cycle later, from registers: the select between the compute and
        # load units' writes into its block RAM was the 4x4 SoC's critical path (10.9 ns, 9.2 of it routing,
        # 2026-12-07). The store reads a row only after the token its COMPUTE or LOAD pushes on retiring,
        # cycles after the write; the collision checks flag a read of the row as the accumulator or the copy
        # writes it.
        m.d.sync += [stored_write.addr.eq(acc_write.addr), stored_write.data.eq(acc_write.data),
                     stored_write.en.eq(acc_write.en)]
        channel_read = memories[Target.CHANNELS].read_port()
        wiring.connect(m, store.channel_read, channel_read)
        if self.collision_checks:
            for name, storage in collision_free.items():
                leading = {"the accumulator's write port": acc_write} if storage is stored_accumulators else {}
                check_collisions(m, storage, name, {channel_read: store.channel_read_kept}, leading)

        # Tokens: up/down counters between neighbouring units.
        def token_counter(name, push, pop):
            count = Signal(TOKEN_BITS, name=f"tokens_{name}")
            # The pulses select a count +1 or -1 already computed, so no carry chain waits for them (from the
            # store unit's queue head through its pop to the count's adder was the 4x4 SoC's worst path,
            # 11.2 and 11.7 ns, 2026-12-06 #14).
            with m.If(soft_reset):
                m.d.sync += count.eq(0)
            with m.Elif(push & ~pop):
                m.d.sync += count.eq(count + 1)
            with m.Elif(pop & ~push):
                m.d.sync += count.eq(count - 1)
            return count != 0
        m.d.comb += [
            compute.prev_token_available.eq(token_counter("load_to_compute", load.push_token, compute.pop_prev)),
            load.token_available.eq(token_counter("compute_to_load", compute.push_prev, load.pop_token)),
            store.token_available.eq(token_counter("compute_to_store", compute.push_next, store.pop_token)),
            compute.next_token_available.eq(token_counter("store_to_compute", store.push_token, compute.pop_next)),
        ]

        # AXI reads: fetch and load share AR; R is routed by ID and always accepted. The load unit has
        # priority (fetch prefetches into its buffer, and the data it waits for is the load unit's), and
        # keeps the grant after a handshake, so its bursts that are not merged rows (strided single-beat
        # rows, multi-beat rows) go out one per cycle; fetch takes a kept grant the load unit does not use.
        grant_load = Signal()
        granted = Signal()
        kept = Signal()
        with m.If(~granted | (kept & ~load.arvalid)):
            m.d.sync += [granted.eq(0), kept.eq(0)]
            with m.If(load.ar_request):
                m.d.sync += [granted.eq(1), grant_load.eq(1)]
            with m.Elif(fetch.arvalid):
                m.d.sync += [granted.eq(1), grant_load.eq(0)]
        with m.Elif(axi.arvalid & axi.arready):
            m.d.sync += [granted.eq(grant_load), kept.eq(grant_load)]
        with m.If(grant_load):
            m.d.comb += [axi.arid.eq(LOAD_ID), axi.araddr.eq(load.araddr), axi.arlen.eq(load.arlen),
                         axi.arvalid.eq(granted & load.arvalid), load.arready.eq(granted & axi.arready)]
        with m.Else():
            m.d.comb += [axi.arid.eq(FETCH_ID), axi.araddr.eq(fetch.araddr), axi.arlen.eq(fetch.arlen),
                         axi.arvalid.eq(granted & fetch.arvalid), fetch.arready.eq(granted & axi.arready)]
        bus_size = (config.bus_bytes - 1).bit_length()
        # The load unit sets rready for its beats, and is told of them whether or not it takes them. Fetch
        # takes each of its beats at once (its buffer has room for every burst it asks for), so no decision
        # of the load unit's reaches the fetch buffer: from the load unit's state through its rready and the
        # fetch buffer's write to that buffer's level was the 4x4 SoC's critical path (12.4 ns, 2026-12-07).
        fetch_beat = axi.rid == FETCH_ID
        m.d.comb += [axi.arsize.eq(bus_size), axi.arburst.eq(BURST_INCR), axi.rready.eq(load.rready | fetch_beat),
                     axi.awsize.eq(bus_size), axi.awburst.eq(BURST_INCR), axi.awid.eq(0), axi.bready.eq(1)]
        m.d.comb += [fetch.rvalid.eq(axi.rvalid & fetch_beat), load.rvalid.eq(axi.rvalid & (axi.rid == LOAD_ID))]
        for unit in (fetch, load):
            m.d.comb += [unit.rdata.eq(axi.rdata), unit.rresp.eq(axi.rresp), unit.rlast.eq(axi.rlast)]
        m.d.comb += [axi.awvalid.eq(store.awvalid), axi.awaddr.eq(store.awaddr), axi.awlen.eq(store.awlen),
                     store.awready.eq(axi.awready), axi.wvalid.eq(store.wvalid), axi.wdata.eq(store.wdata),
                     axi.wstrb.eq(store.wstrb), axi.wlast.eq(store.wlast), store.wready.eq(axi.wready),
                     store.bvalid.eq(axi.bvalid), store.bresp.eq(axi.bresp)]

        # Run control, errors and status.
        running = Signal()
        done = Signal()
        error = Signal()
        error_code = Signal(ErrorCode)
        # The first error resets the units and queues one cycle later: a combinational path from every
        # unit's error logic into the synchronous reset of every register would bound the clock.
        failed = Signal()
        m.d.sync += failed.eq(0)
        # START (taking effect the cycle after the CSR block's pulse) first clears the units, queues and
        # tokens, then (next cycle) starts fetching. The clear is a register, ``start | failed`` loaded a
        # cycle ahead: from the START pulse through that OR and the OR with the board's reset to every
        # unit register's reset was the 4x4 SoC's worst path (12.1 ns, 2026-12-06).
        start = Signal()
        fetch_start = Signal()
        m.d.sync += [start.eq(csr.start), fetch_start.eq(start)]
        m.d.comb += [fetch.start.eq(fetch_start), fetch.program_addr.eq(csr.program_addr),
                     fetch.program_length.eq(csr.program_length)]
        causes = [(fetch.error_opcode, ErrorCode.ILLEGAL_OPCODE), (fetch.error_read | load.error_read,
                                                                    ErrorCode.READ_RESPONSE),
                  (store.error_write, ErrorCode.WRITE_RESPONSE),
                  (load.error_range | compute.error_range | store.error_range, ErrorCode.SRAM_RANGE),
                  (fetch.error_overrun, ErrorCode.PROGRAM_OVERRUN), (compute.error_field | load.error_field, ErrorCode.ILLEGAL_FIELD)]
        # The units' error pulses are registered first, so that no unit's checks reach the error
        # register in the same cycle; START drops any pulse still in the register.
        pulses = Signal(len(causes))
        m.d.sync += pulses.eq(Mux(start, 0, Cat(cause for cause, _ in causes)))
        causes = [(pulses[index], code) for index, (_, code) in enumerate(causes)]
        failing = Signal()
        m.d.comb += failing.eq(running & pulses.any())
        m.d.sync += soft_reset.eq(csr.start | (failing & ~start))     # start | failed, a cycle early
        idle = (fetch.finished & ~load.busy & ~compute.busy & ~store.busy &
                (queues["load"].level == 0) & (queues["compute"].level == 0) & (queues["store"].level == 0))
        with m.If(start):
            m.d.sync += [running.eq(1), done.eq(0), error.eq(0), error_code.eq(ErrorCode.NONE)]
        with m.Elif(failing):
            m.d.sync += [running.eq(0), error.eq(1), failed.eq(1)]
            for cause, code in reversed(causes):
                with m.If(cause):
                    m.d.sync += error_code.eq(code)
        with m.Elif(running & idle):
            m.d.sync += [running.eq(0), done.eq(1)]
        m.d.comb += [csr.busy.eq(running), csr.done.eq(done), csr.error.eq(error), csr.error_code.eq(error_code),
                     self.irq.eq(csr.irq_enable & (done | error))]

        # Performance counters, cleared on start, counting while running; each counts the sum of its terms.
        increments = {
            "CYCLES": [1],
            "ARRAY_BUSY": [compute.array_busy],
            "LOAD_STALL": [compute.waiting_load],
            "STORE_STALL": [compute.waiting_store],
            "BYTES_READ": [(axi.rvalid & axi.rready) * config.bus_bytes],
            "BYTES_WRITTEN": [store.bytes_written],
            "INSTRUCTIONS": [load.retired, compute.retired, store.retired, fetch.retired_end],
            "COMPUTE_STARVED": [~compute.busy & ~compute.instructions.valid & ~fetch.finished],
        }
        for name in COUNTERS:
            # Each term is registered so that no unit's handshake logic reaches an adder in the same cycle
            # (the units' retirements through their sum into INSTRUCTIONS' increment was the 4x4 SoC's
            # critical path, 11.1 ns, 2026-12-07); the last increment lands a cycle after `done` rises,
            # before any register read can return.
            pending = []
            for index, term in enumerate(map(Value.cast, increments[name])):
                pending.append(Signal(len(term), name=f"pending_{name.lower()}_{index}"))
                m.d.sync += pending[-1].eq(Mux(running, term, 0))
            counter = Signal(32, name=f"counter_{name.lower()}")
            with m.If(start):
                m.d.sync += counter.eq(0)
            with m.Else():
                m.d.sync += counter.eq(counter + sum(pending))
            m.d.comb += getattr(csr, f"counter_{name.lower()}").eq(counter)
        return m
