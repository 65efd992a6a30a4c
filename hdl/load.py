"""The load unit: executes LOAD, moving DRAM rows into a scratchpad, the accumulator or the channel memory."""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import ADDR_WIDTH, MAX_BURST_ROWS, planned_burst_rows, response_failed, rows_merge
from .config import AcceleratorConfig
from .fetch import head_waited
from .isa import CHANNEL_RECORD_KEPT_BYTES, INSTRUCTION, Target, target_element_bytes
from .numerics import ACC_BITS, OPERAND_BITS, SCALE_BITS, Combine
from .sram import address_width
from .walker import DESCRIPTOR_FIELDS, DESCRIPTOR_LATENCY, PADDING_FIELDS, RowWalker, descriptor_rows

__all__ = ["LoadUnit", "memory_shapes", "MAX_OUTSTANDING_READS", "MAX_BURST_ROWS", "OVERLAPPING_TARGETS",
           "WRITE_FORMAT", "WRITTEN_BEHIND", "HEAD_CHECK_CYCLES"]

MAX_OUTSTANDING_READS = 4
HEAD_CHECK_CYCLES = DESCRIPTOR_LATENCY + 1   # a LOAD waits this long at the queue's head: its checks' registers
# A LOAD into one of these targets whose WRITE_FORMAT fields equal the last LOAD's (also into one of them) may
# start while the last one drains: the writer writes both LOADs' rows alike, each burst's into its own target.
OVERLAPPING_TARGETS = (Target.ACTIVATIONS, Target.WEIGHTS)
WRITE_FORMAT = ("row_elems", "pad_value")
# The rows of a LOAD into one of these memories (which only the load unit writes) are written a cycle
# after their beat, from registers, so the block RAMs' write ports see no logic (from the accumulator
# port's hold through the write enables to the channel memory was the 4x4 SoC's worst path, 12.6 to
# 13.8 ns, 2026-12-06 #13). A unit that reads the rows waits for the LOAD's token, which takes longer.
WRITTEN_BEHIND = (Target.ACTIVATIONS, Target.WEIGHTS, Target.CHANNELS)


def memory_shapes(config: AcceleratorConfig) -> dict:
    """(depth, lanes, bytes per lane) of each memory a LOAD writes directly (COMBINE goes through the
    accumulator). The channel memory keeps ``CHANNEL_RECORD_KEPT_BYTES`` of each record."""
    rows, cols = config.array.rows, config.array.cols
    return {
        Target.ACTIVATIONS: (config.act_rows, rows, target_element_bytes(Target.ACTIVATIONS)),
        Target.WEIGHTS: (config.weight_rows, cols, target_element_bytes(Target.WEIGHTS)),
        Target.ACCUMULATORS: (config.acc_rows, cols, target_element_bytes(Target.ACCUMULATORS)),
        Target.CHANNELS: (config.channel_rows, cols, len(CHANNEL_RECORD_KEPT_BYTES)),
    }


def _kept_bytes(target: Target, lanes: int) -> list[int]:
    """The bytes of a target's row in DRAM that its memory keeps, in the memory's order."""
    if target == Target.CHANNELS:
        return [lane * target_element_bytes(target) + byte
                for lane in range(lanes) for byte in CHANNEL_RECORD_KEPT_BYTES]
    return list(range(lanes * target_element_bytes(target)))


def _write_port_signature(depth, lanes, element_bytes):
    return memory.WritePort.Signature(addr_width=address_width(depth),
                                      shape=lanes * element_bytes * 8, granularity=8)


class LoadUnit(wiring.Component):
    """Runs LOAD instructions from ``instructions`` with AXI read bursts, up to
    ``MAX_OUTSTANDING_READS`` in flight; consecutive single-beat rows share a burst.

    COMBINE rows pass a three-stage read-modify-write into the accumulator
    (``numerics.combine_rows``). Writes close together to one row (the beats of
    a multi-beat row) enable disjoint lanes, so the stages need no forwarding.

    Members
    -------
    instructions : In(stream.Signature(INSTRUCTION))
    token_available : In(1)       a compute->load token exists (for pop_next)
    pop_token, push_token : Out(1) one-cycle pulses (compute->load pop, load->compute push)
    arvalid, araddr, arlen, arready, rvalid, rdata, rresp, rlast, rready : the AXI read channels it uses
                                   (``rvalid``: a beat of its own is offered, whether or not it is ready)
    ar_request : Out(1)            a burst is due: the arbiter may grant AR. ``arvalid`` rises once a merged
                                   burst's length is planned, a cycle after the walker last moved (the grant
                                   takes one); other bursts may follow each other on a kept grant, one per cycle
    acc_busy : In(1)               the compute unit uses the accumulator ports this cycle: an accumulator or
                                   COMBINE load holds its R beats (rready low) and padding rows meanwhile
    write_<target> : one write port per memory of ``memory_shapes`` (byte granularity)
    acc_read, weight_read : read ports for COMBINE (old accumulator rows, per-lane scales)
    error_read, error_range : Out(1) pulses: a bad read response, an out-of-range SRAM row
    error_field : Out(1)           pulse: an undefined target or COMBINE operation
    retired : Out(1)               pulse per finished instruction
    busy : Out(1)
    """

    def __init__(self, config: AcceleratorConfig):
        self.config = config
        cols = config.array.cols
        members = {
            "instructions": In(stream.Signature(INSTRUCTION)),
            "token_available": In(1), "pop_token": Out(1), "push_token": Out(1),
            "ar_request": Out(1), "arvalid": Out(1), "araddr": Out(ADDR_WIDTH), "arlen": Out(8), "arready": In(1),
            "rvalid": In(1), "rdata": In(config.bus_bits), "rresp": In(2), "rlast": In(1), "rready": Out(1),
            "acc_busy": In(1),
            "acc_read": In(memory.ReadPort.Signature(addr_width=address_width(config.acc_rows),
                                                     shape=cols * ACC_BITS)),
            "weight_read": In(memory.ReadPort.Signature(addr_width=address_width(config.weight_rows),
                                                        shape=cols * OPERAND_BITS)),
            "error_read": Out(1), "error_range": Out(1), "error_field": Out(1), "retired": Out(1), "busy": Out(1),
        }
        for target, shape in memory_shapes(config).items():
            members[f"write_{target.name.lower()}"] = In(_write_port_signature(*shape))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        config, cols = self.config, self.config.array.cols
        bus_bytes = config.bus_bytes
        beat_shift = (bus_bytes - 1).bit_length()
        instruction = self.instructions.payload
        fields = Signal.like(instruction.fields.load)
        header = Signal.like(instruction.header)
        walker = m.submodules.walker = RowWalker()
        m.d.comb += [getattr(walker, name).eq(getattr(fields, name)) for name in {**DESCRIPTOR_FIELDS, **PADDING_FIELDS}]

        sram_row = Signal(16)
        beat = Signal(8)
        pad_row = Signal()

        # Per-target row geometry.
        geometry = {target: (depth, lanes * target_element_bytes(target))
                    for target, (depth, lanes, _) in memory_shapes(config).items()}
        geometry[Target.COMBINE] = (config.acc_rows, cols * target_element_bytes(Target.COMBINE))
        # A row's data bytes (compared below, the compares registered), registered from the queue's head as
        # the LOAD is taken (from ``fields`` through the target's multiply to those compares was the 4x4
        # SoC's worst path, 11.6 ns, 2026-12-06 #14), and its last beat's index, registered a cycle after
        # (as its walk starts): no multiply, add or compare of them in front of the writer's selects.
        valid_bytes = Signal(16)
        last_beat = Signal(8)
        # Whether the walk's rows share bursts (``rows_merge``), registered so: from the row stride through
        # its compare and the burst's issue to the walker's enables was the 4x4 SoC's worst path (11.5 ns).
        mergeable = Signal()
        head_depth = Signal(17)         # rows of the target of the queue's head
        for target, (target_depth, _) in geometry.items():
            element = target_element_bytes(target)
            with m.If(fields.target == target):
                row_beats = (fields.row_elems * element + bus_bytes - 1) >> beat_shift
                m.d.sync += [last_beat.eq(row_beats - 1),
                             mergeable.eq(rows_merge(row_beats - 1, fields.row_stride, bus_bytes))]
            with m.If(instruction.fields.load.target == target):
                m.d.comb += head_depth.eq(target_depth)
                with m.If(self.instructions.ready):
                    m.d.sync += valid_bytes.eq(instruction.fields.load.row_elems * element)
        m.d.comb += pad_row.eq(walker.pad | (fields.row_elems == 0))

        # An R beat (for the oldest outstanding burst) has the write port; padding rows take idle cycles.
        # The first SRAM row and the target of each burst in flight (a draining LOAD's bursts go to its own
        # target); rlast ends a burst.
        burst_layout = data.StructLayout({"sram_row": 16, "target": Target})
        outstanding = m.submodules.outstanding = fifo.SyncFIFO(width=burst_layout.size, depth=MAX_OUTSTANDING_READS)
        queued_burst, issued_burst = burst_layout(outstanding.r_data), Signal(burst_layout)
        # The SRAM rows of walked padding rows, written in cycles without an R beat: the walk moves on over
        # padding while the queue has room, a decision from registers (from the R channel's valid through
        # the padding row's write to the walker's enables was the 4x4 SoC's worst path, 11.6 ns, 2026-12-06 #13).
        pad_rows = m.submodules.pad_rows = fifo.SyncFIFO(width=16, depth=2)
        # The SRAM row of a burst's next beat after its first, counted in a register (an add of the row
        # in the burst to the queue's first row was in front of the accumulator's ports: from the queue's
        # read pointer through it to the block RAM's forwarding compare was the 4x4 SoC's worst path,
        # 11.6 ns, 2026-12-06 #14).
        in_burst, burst_row, burst_target = Signal(), Signal(16), Signal(Target)
        data_beat = Signal()
        pad_write = Signal()
        write_address = Signal(16)
        # The accumulator's read and write ports are shared with the compute unit, which has priority.
        hold = Signal()
        accumulating = Signal()       # an accumulator or COMBINE load is walking or draining
        m.d.comb += [hold.eq(accumulating & self.acc_busy), self.rready.eq(~hold)]
        m.d.comb += [data_beat.eq(self.rvalid & self.rready),
                     write_address.eq(Mux(self.rvalid, Mux(in_burst, burst_row, queued_burst.sram_row), pad_rows.r_data))]
        # The target an R beat is written to: its burst's, which differs from ``fields.target`` while a LOAD
        # drains into the other overlapping target; padding rows are the current LOAD's.
        beat_target = Signal(Target)
        m.d.comb += beat_target.eq(Mux(in_burst, burst_target, queued_burst.target))

        def writes_to(target):
            if target not in OVERLAPPING_TARGETS:
                return fields.target == target
            return Mux(self.rvalid, beat_target == target, fields.target == target)

        # Whether byte b of a row is data (b < valid_bytes), from compares of its beat and of its lane
        # shared by every byte and target: a compare per byte took a carry chain each (ECP5, 16x16: over
        # 2,000 CCU2C cells for the 368 bytes of the five row formats).
        longest_row = max(length for _, length in geometry.values())
        data_beats, data_lanes = valid_bytes >> beat_shift, valid_bytes[:beat_shift]
        beat_is_data = [Signal(name=f"beat_{k}_is_data") for k in range(-(-longest_row // bus_bytes))]
        beat_is_partial = [Signal(name=f"beat_{k}_is_partial") for k in range(len(beat_is_data))]
        # (A beat's last lane is data only in a whole data beat.)
        lane_is_data = [Signal(name=f"lane_{j}_is_data") for j in range(bus_bytes - 1)]
        m.d.sync += [*(is_data.eq(data_beats > k) for k, is_data in enumerate(beat_is_data)),
                     *(partial.eq(data_beats == k) for k, partial in enumerate(beat_is_partial)),
                     *(is_data.eq(data_lanes > j) for j, is_data in enumerate(lane_is_data))]

        def is_data_byte(byte):
            k, j = divmod(byte, bus_bytes)
            if j == bus_bytes - 1:
                return beat_is_data[k]
            return beat_is_data[k] | (beat_is_partial[k] & lane_is_data[j])

        # The beat within its row, also one-hot, so no compare of ``beat`` sits in front of the write data
        # (from ``beat`` through a compare and three selects to the accumulator's write data was the 4x4
        # SoC's worst path, 11.6 ns, 2026-12-06).
        beat_at = Signal(len(beat_is_data), init=1)

        def row_bytes(kept_bytes, pad_byte):
            """The bytes ``kept_bytes`` of a row as written this cycle, and their write enables. They depend on
            whether an R beat is offered, not whether it is taken: a hold writes nothing, and a pad row is
            written only while no beat is offered (so the accumulator port's arbitration stays off the data)."""
            data_bytes, enables = [], []
            for byte in kept_bytes:
                in_beat = self.rvalid & beat_at[byte >> beat_shift] & is_data_byte(byte)
                beat_byte = self.rdata[(byte % bus_bytes) * 8:(byte % bus_bytes + 1) * 8]
                data_bytes.append(Mux(in_beat, beat_byte, pad_byte(byte)))
                # The first beat of a row also fills the lanes past row_elems with padding.
                enables.append(in_beat | ~self.rvalid | (beat_at[0] & ~is_data_byte(byte)))
            return Cat(*data_bytes), Cat(*enables)

        # (A COMBINE LOAD's last row is written four cycles after its last beat, in the cycle the next LOAD's
        # walk starts at the earliest: that LOAD's first padding row leaves the queue a cycle later.)
        m.d.comb += [pad_write.eq(pad_rows.r_rdy & ~self.rvalid & ~hold),
                     pad_rows.r_en.eq(pad_write), pad_rows.w_data.eq(sram_row)]
        writing = data_beat | pad_write
        # Where no hold applies (neither an accumulator nor a COMBINE LOAD, nor one draining: it writes
        # alike), every beat offered and every queued padding row is written: the same as ``writing`` without
        # the accumulator port's arbitration in front of the write enables.
        writing_unheld = self.rvalid | pad_rows.r_rdy
        combine_write = Signal(cols * ACC_BITS // 8)
        combine_writing = Signal()         # combine_write.any(), registered with it: a narrow select
        combine_data = Signal(cols * ACC_BITS)
        combine_address = Signal(16)
        writing_behind = Signal()
        for target, (target_depth, lanes, element) in memory_shapes(config).items():
            port = getattr(self, f"write_{target.name.lower()}")
            if target == Target.CHANNELS:
                def pad_byte(byte):
                    return Const(0, 8)
            else:
                def pad_byte(byte, element=element):     # int32 pad lanes are sign-extended
                    return fields.pad_value.as_unsigned() if byte % element == 0 else \
                        Mux(fields.pad_value < 0, 0xFF, 0x00)
            row, enables = row_bytes(_kept_bytes(target, lanes), pad_byte)
            behind = target in WRITTEN_BEHIND
            m.d["sync" if behind else "comb"] += [
                port.addr.eq(write_address), port.data.eq(row),
                port.en.eq(Mux((writing_unheld if behind else writing) & writes_to(target), enables, 0))]
            if target == Target.ACCUMULATORS:
                with m.If(combine_writing):
                    m.d.comb += [port.addr.eq(combine_address), port.data.eq(combine_data),
                                 port.en.eq(combine_write)]

        # COMBINE: a read-modify-write with the compute unit's latency (``RESULT_LATENCY``, so the
        # shared read port, which the compute unit has first, also keeps the write port free):
        # read the old row while staging this cycle's lanes; capture the block RAM's output;
        # fetch: register the old row and the lanes' products; combine: add or max; write, from
        # registers. The per-lane scales are registered from the weight scratchpad while the LOAD
        # is checked.
        lanes_layout = data.ArrayLayout(signed(OPERAND_BITS), cols)
        acc_layout = data.ArrayLayout(signed(ACC_BITS), cols)
        incoming, incoming_enables = row_bytes(_kept_bytes(Target.COMBINE, cols),
                                               lambda byte: fields.pad_value.as_unsigned())
        staged, staged_address = Signal(), Signal(16)
        staged_lanes, staged_enables = Signal(lanes_layout), Signal(cols)
        captured, captured_address = Signal(), Signal(16)
        captured_lanes, captured_enables, captured_old = Signal(lanes_layout), Signal(cols), Signal(acc_layout)
        fetched, fetched_address, fetched_enables = Signal(), Signal(16), Signal(cols)
        fetched_old, fetched_products = Signal(acc_layout), Signal(acc_layout)
        fetched_combine = Signal.like(fields.combine)     # the next LOAD may set fields meanwhile
        scales = Signal(data.ArrayLayout(signed(SCALE_BITS), cols))
        lane_scales = lanes_layout(self.weight_read.data)
        m.d.sync += [staged.eq(writing & (fields.target == Target.COMBINE)), staged_address.eq(write_address),
                     staged_lanes.eq(incoming), staged_enables.eq(incoming_enables),
                     captured.eq(staged), captured_address.eq(staged_address), captured_lanes.eq(staged_lanes),
                     captured_enables.eq(staged_enables), captured_old.eq(self.acc_read.data),
                     fetched.eq(captured), fetched_address.eq(captured_address), fetched_enables.eq(captured_enables),
                     fetched_old.eq(captured_old), fetched_combine.eq(fields.combine)]
        m.d.comb += [self.acc_read.addr.eq(write_address),
                     self.acc_read.en.eq(writing & (fields.target == Target.COMBINE)),
                     self.weight_read.addr.eq(fields.scale_row),
                     self.weight_read.en.eq(fields.target == Target.COMBINE)]
        combined = Signal(acc_layout)
        for lane in range(cols):
            m.d.sync += [scales[lane].eq(Mux(fields.lane_scales, lane_scales[lane], fields.scale)),
                         fetched_products[lane].eq(captured_lanes[lane] * scales[lane])]
            old, product = fetched_old[lane], fetched_products[lane]
            with m.Switch(fetched_combine):
                with m.Case(Combine.OVERWRITE):
                    m.d.comb += combined[lane].eq(product)
                with m.Case(Combine.ADD):
                    m.d.comb += combined[lane].eq(old + product)
                with m.Case(Combine.MAX):
                    m.d.comb += combined[lane].eq(Mux(product > old, product, old))
        m.d.sync += [combine_address.eq(fetched_address), combine_data.eq(combined),
                     combine_write.eq(Mux(fetched, Cat(enable.replicate(ACC_BITS // 8)
                                                       for enable in fetched_enables), 0)),
                     combine_writing.eq(fetched & fetched_enables.any())]

        # Writer: R beats in order of their bursts; a burst may carry several rows.
        with m.If(data_beat):
            row_done = beat == last_beat
            m.d.sync += [beat.eq(Mux(row_done, 0, beat + 1)), beat_at.eq(Mux(row_done, 1, beat_at << 1)),
                         in_burst.eq(~self.rlast), burst_row.eq(write_address + row_done),
                         burst_target.eq(beat_target)]
            m.d.comb += outstanding.r_en.eq(self.rlast)
            with m.If(response_failed(self.rresp)):
                m.d.comb += self.error_read.eq(1)

        # Issuer: walks the rows, up to MAX_OUTSTANDING_READS bursts ahead of the writer; single-beat
        # rows that follow each other in DRAM share one burst.
        # The burst's rows are planned from the walker's position a cycle ahead.
        burst_rows, planned = planned_burst_rows(m, walker=walker, mergeable=mergeable, bus_bytes=bus_bytes)
        step = Signal(range(MAX_BURST_ROWS + 1))
        m.d.comb += [self.araddr.eq(walker.address), self.arlen.eq(Mux(mergeable, burst_rows - 1, last_beat)),
                     issued_burst.sram_row.eq(sram_row), issued_burst.target.eq(fields.target),
                     outstanding.w_data.eq(issued_burst),
                     outstanding.w_en.eq(self.arvalid & self.arready),
                     step.eq(Mux(pad_row, 1, burst_rows)),
                     walker.step.eq(burst_rows),      # (1 too where row_elems is 0: such rows never merge)
                     walker.step_bytes.eq(Mux(mergeable, burst_rows << beat_shift, fields.row_stride))]
        # The range checks are registered from the queue's head while it waits (for the unit, a token, or
        # these stages), so a LOAD that waited starts its walk the cycle after it is taken. A head is taken
        # once it has waited HEAD_CHECK_CYCLES cycles: its rows x blocks x groups product has DESCRIPTOR_LATENCY
        # registered stages, and the compare of that span plus a gap with the room plus a gap one more (from the room
        # through the compare to the walker's start was the 4x4 SoC's worst path, 13.2 ns, 2026-12-06); the
        # verdict registers as the head is taken, read in Check (from the product's block through the compare
        # and the verdict's OR was the 4x4 SoC's worst path, 11.6 ns, 2026-12-06 #13). An empty walk spans
        # nothing, so it is out of range only past the end.
        next_fields = instruction.fields.load
        span_and_gap, span_over = descriptor_rows(m, next_fields, config.array.dsp_primitive, gap=next_fields.sram_gap)
        room_and_gap = Signal(len(head_depth) + len(fields.sram_gap) + 1)      # used only where not past_end
        past_end, empty_walk = Signal(), Signal()
        undefined, span_too_long, out_of_range = Signal(), Signal(), Signal()
        bad_scale_row = ((next_fields.target == Target.COMBINE) & next_fields.lane_scales &
                         (next_fields.scale_row >= config.weight_rows))
        m.d.sync += [room_and_gap.eq(head_depth - next_fields.sram_addr + next_fields.sram_gap),
                     past_end.eq(next_fields.sram_addr > head_depth),
                     empty_walk.eq((next_fields.rows == 0) | (next_fields.blocks == 0) | (next_fields.groups == 0)),
                     undefined.eq((next_fields.target.as_value() > max(t.value for t in Target)) |
                                  ((next_fields.target == Target.COMBINE) &
                                   (next_fields.combine.as_value() > max(c.value for c in Combine)))),
                     span_too_long.eq(span_and_gap > room_and_gap),
                     out_of_range.eq((~empty_walk & (span_over | span_too_long)) | past_end | bad_scale_row)]
        checked = head_waited(m, self.instructions, HEAD_CHECK_CYCLES)
        retire = Signal()
        advance = Signal()
        to_accumulator = (fields.target == Target.ACCUMULATORS) | (fields.target == Target.COMBINE)

        # A LOAD whose rows the writer writes as the last one's (a scratchpad, same row length and padding)
        # may start while the last one's bursts drain: the read channel then idles no cycle between the
        # two. The draining LOAD retires (and pushes its token) as its last burst ends, counted down here.
        # The compare with the queue's head is registered (from the head through it to the queue's read
        # enable was the 4x4 SoC's worst path, 12.8 ns, 2026-12-06): it holds for a head that is
        # ``checked`` (it has waited), since neither the head nor ``fields`` changes until the head is taken.
        writes_alike = Signal()
        m.d.sync += [writes_alike.eq(fields.target.as_value().matches(*OVERLAPPING_TARGETS) &
                                     next_fields.target.as_value().matches(*OVERLAPPING_TARGETS) &
                                     Cat(getattr(next_fields, name) == getattr(fields, name)
                                         for name in WRITE_FORMAT).all())]
        draining_bursts = Signal(range(MAX_OUTSTANDING_READS + 1))
        draining_push = Signal()
        draining_retire = Signal()
        burst_ends = data_beat & self.rlast
        m.d.comb += draining_retire.eq(burst_ends & (draining_bursts == 1))
        with m.If(draining_bursts.any() & burst_ends):
            m.d.sync += draining_bursts.eq(draining_bursts - 1)
        m.d.comb += [self.retired.eq(retire | draining_retire),
                     self.push_token.eq((retire & header.push_next) | (draining_retire & draining_push)),
                     walker.advance.eq(advance)]

        def take(draining=False):
            """Take the next LOAD (``draining``: while the current one's bursts drain)."""
            with m.If(self.instructions.valid & checked & (~instruction.header.pop_next | self.token_available)):
                m.d.comb += [self.instructions.ready.eq(1), self.pop_token.eq(instruction.header.pop_next)]
                m.d.sync += [fields.eq(instruction.fields.load), header.eq(instruction.header),
                             sram_row.eq(instruction.fields.load.sram_addr)]
                if draining:
                    m.d.sync += [draining_bursts.eq(outstanding.r_level - burst_ends),
                                 draining_push.eq(header.push_next)]
                m.next = "Check"

        with m.FSM():
            with m.State("Idle"):
                take()
            with m.State("Check"):
                m.d.comb += self.busy.eq(1)
                with m.If(undefined | out_of_range):
                    m.d.comb += [self.error_field.eq(undefined), self.error_range.eq(~undefined)]
                    m.next = "Idle"
                with m.Elif(empty_walk):
                    m.next = "Retire"
                with m.Else():
                    m.d.comb += walker.start.eq(1)
                    m.next = "Walk"
            # (The checks above now hold the next head's: a state of its own waits here.)
            with m.State("Retire"):
                m.d.comb += self.busy.eq(1)
                with m.If(~draining_bursts.any()):       # retirements in program order
                    m.d.comb += retire.eq(1)
                    m.next = "Idle"
            with m.State("Walk"):
                m.d.comb += [self.busy.eq(1), accumulating.eq(to_accumulator)]
                with m.If(pad_row):
                    m.d.comb += [pad_rows.w_en.eq(pad_rows.w_rdy), advance.eq(pad_rows.w_rdy)]
                with m.Else():
                    # (A row that is its own burst needs no plan: it may follow the last at once.)
                    m.d.comb += [self.ar_request.eq(outstanding.w_rdy),
                                 self.arvalid.eq(outstanding.w_rdy & (planned | ~mergeable))]
                    with m.If(self.arvalid & self.arready):
                        m.d.comb += advance.eq(1)
                with m.If(advance):
                    m.d.sync += sram_row.eq(sram_row + step + Mux(walker.group_end, fields.sram_gap, 0))
                    with m.If(walker.last):
                        m.next = "Drain"
            with m.State("Drain"):
                m.d.comb += [self.busy.eq(1), accumulating.eq(to_accumulator)]
                with m.If(~outstanding.r_rdy & ~draining_bursts.any() & ~pad_rows.r_rdy):
                    m.d.comb += retire.eq(1)
                    m.next = "Idle"
                # While two bursts or more are in flight, so that one stays whether or not one ends now: the
                # registered level alone decides (from the R handshake through a burst's end to the queue's
                # read enable was the 4x4 SoC's worst path, 14.2 ns, 2026-12-06 #11).
                # (Its padding rows written first: they belong to it.)
                with m.Elif(~draining_bursts.any() & (outstanding.r_level > 1) & writes_alike & ~pad_rows.r_rdy):
                    take(draining=True)
        m.d.sync += writing_behind.eq(writing_unheld & fields.target.as_value().matches(*WRITTEN_BEHIND))
        with m.If(staged | captured | fetched | combine_writing | draining_bursts.any() | writing_behind):
            m.d.comb += self.busy.eq(1)
        return m
