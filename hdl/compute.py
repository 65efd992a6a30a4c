"""The compute unit: executes COMPUTE (and SYNC), streaming scratchpad rows through the systolic array."""
from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import AcceleratorConfig, ArithSupport, ArrayConfig, Dataflow
from .fetch import head_waited
from .isa import COMPUTE, INSTRUCTION, PAIRED_SECONDARY_OFFSET, Opcode, os_depthwise_results
from .numerics import ACC_BITS, ArithMode
from .sram import RowReader, address_width
from .systolic_array import SystolicArray
from .transposer import Transposer

__all__ = ["ComputeUnit", "RESULT_LATENCY", "CHECK_CYCLES", "max_in_flight"]

RESULT_LATENCY = 5     # a result row leaving the array to its accumulator write (read, capture, fetch, add, write)
CHECK_CYCLES = 2       # a COMPUTE or SYNC waits this long at its queue's head: its checks' first two stages


def max_in_flight(array: ArrayConfig) -> int:
    """COMPUTEs in the array at once (issued, results not all written). An OS COMPUTE passes the
    transposer's R rows before its beats and drains for about 2R + C cycles after them, so OS keeps
    twice as many as WS, whose COMPUTEs stream past R stationary weight rows."""
    return 8 if array.dataflow == Dataflow.OS else 4


class ComputeUnit(wiring.Component):
    """Runs COMPUTE and SYNC instructions; results go to the accumulator (overwrite or accumulate).

    Members
    -------
    instructions : In(stream.Signature(INSTRUCTION))
    prev_token_available / next_token_available : In(1)  load->compute / store->compute tokens
    pop_prev, pop_next, push_prev, push_next : Out(1)     token pulses
    act_read, weight_read : scratchpad read ports;  acc_read, acc_write : accumulator ports
    act_read_secondary : (``config.array.paired``) a second activation read port: paired COMPUTEs'
                         secondary rows
    array_busy : Out(1)   an activation beat enters the array this cycle
    acc_busy : Out(1)     the accumulator ports are used this cycle (a result row read or written)
    waiting_load, waiting_store : Out(1)   stalled on a missing token
    error_range : Out(1)   rows outside a memory
    error_field : Out(1)   an OS COMPUTE whose beats are not a multiple of R, or a depthwise one
                           on an array without the depthwise mode, with fewer than R beats (WS),
                           or with taps outside 1..R or binary (OS); a paired one that is not
                           int8 depthwise with act_stride_log2 1 or on an array without paired COMPUTEs;
                           a repeating one that is not OS depthwise
    retired : Out(1)  an instruction retired (a repeating COMPUTE with its last run);  busy : Out(1)

    OS reads activations as NHWC rows (a pixel's R channels) in blocks of R
    pixels and transposes each block into R beats (one channel, R pixels), so
    both dataflows share one scratchpad layout. A depthwise COMPUTE streams its
    rows untransposed (a beat is a pixel, lane j channel j) and writes only the
    result rows that do not mix in later beats (``hdl.isa.COMPUTE``): on WS the
    first B - R + 1 of its B, on OS the first R - taps + 1 of its R, with weight
    0 streamed from beat ``taps`` on. A COMPUTE whose depthwise flag differs
    from the previous one's waits (OS) until that one's beats are all in the
    array, so the transposer is empty whenever rows bypass it. A paired COMPUTE
    also streams its secondary rows (``PAIRED_SECONDARY_OFFSET`` on, the same
    stride) from a second reader in lockstep, and flags its first beat (OS) or
    every beat (WS) ``secondary``. A repeating COMPUTE (OS depthwise) starts its runs one after
    another, each with its own in-flight record; the last one's pushes the tokens.
    """

    def __init__(self, config: AcceleratorConfig):
        self.config = config
        rows, cols = config.array.rows, config.array.cols
        acc_width = address_width(config.acc_rows)
        super().__init__({
            "instructions": In(stream.Signature(INSTRUCTION)),
            "prev_token_available": In(1), "next_token_available": In(1),
            "pop_prev": Out(1), "pop_next": Out(1), "push_prev": Out(1), "push_next": Out(1),
            "act_read": In(memory.ReadPort.Signature(addr_width=address_width(config.act_rows), shape=rows * 8)),
            **({"act_read_secondary": In(memory.ReadPort.Signature(addr_width=address_width(config.act_rows),
                                                                   shape=rows * 8))}
               if config.array.paired else {}),
            "weight_read": In(memory.ReadPort.Signature(addr_width=address_width(config.weight_rows), shape=cols * 8)),
            "acc_read": In(memory.ReadPort.Signature(addr_width=acc_width, shape=cols * ACC_BITS)),
            "acc_write": In(memory.WritePort.Signature(addr_width=acc_width, shape=cols * ACC_BITS)),
            "array_busy": Out(1), "waiting_load": Out(1), "waiting_store": Out(1), "acc_busy": Out(1),
            "error_range": Out(1), "error_field": Out(1), "retired": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config, rows, cols = self.config, self.config.array.rows, self.config.array.cols
        depth = max_in_flight(config.array)
        array = m.submodules.array = SystolicArray(config.array)
        act_reader = m.submodules.act_reader = RowReader(addr_width=len(self.act_read.addr), row_shape=rows * 8)
        weight_reader = m.submodules.weight_reader = RowReader(addr_width=len(self.weight_read.addr),
                                                               row_shape=cols * 8)
        wiring.connect(m, act_reader.port, wiring.flipped(self.act_read))
        paired = config.array.paired
        if paired:
            secondary_reader = m.submodules.secondary_reader = RowReader(addr_width=len(self.act_read.addr),
                                                                         row_shape=rows * 8)
            wiring.connect(m, secondary_reader.port, wiring.flipped(self.act_read_secondary))
        wiring.connect(m, weight_reader.port, wiring.flipped(self.weight_read))

        instruction = self.instructions.payload
        fields = Signal.like(instruction.fields.compute)
        header = Signal.like(instruction.header)
        os = config.array.dataflow == Dataflow.OS

        # Jobs: the issue stage queues each COMPUTE's weight rows and activation rows separately,
        # and each reader starts its next job once it has issued the previous one's reads. Weights
        # so run one instruction ahead on WS (a preload fills the shadow registers while the
        # previous tile streams), and on OS the next activation block fills the transposer while
        # the previous block's weights still stream. `deliveries` frames each job's beats (last, mode).
        weight_job = data.StructLayout({"weight_addr": len(self.weight_read.addr), "count": len(weight_reader.count)})
        weight_jobs = m.submodules.weight_jobs = fifo.SyncFIFO(width=weight_job.size, depth=depth)
        queued_weights, started_weights = weight_job(weight_jobs.r_data), weight_job(weight_jobs.w_data)
        with m.If(weight_jobs.r_rdy & ~weight_reader.reading):
            m.d.comb += [weight_reader.first.eq(queued_weights.weight_addr), weight_reader.count.eq(queued_weights.count),
                         weight_reader.start.eq(1), weight_jobs.r_en.eq(1)]
        beat_flags = {name: COMPUTE.members[name] for name in ("mode", "depthwise", "taps", "paired")}
        act_job = data.StructLayout({"act_addr": len(self.act_read.addr), "beats": COMPUTE.members["beats"],
                                     **beat_flags, "act_stride_log2": COMPUTE.members["act_stride_log2"]})
        # A delivery carries its last beat's index and whether that is its first (a subtraction in front of
        # the compare that frames a beat was on the 4x4 SoC's worst path, 2026-12-06).
        delivery = data.StructLayout({"last_beat": COMPUTE.members["beats"], "single": 1, **beat_flags})
        act_jobs = m.submodules.act_jobs = fifo.SyncFIFOBuffered(width=act_job.size, depth=depth)
        deliveries = m.submodules.deliveries = fifo.SyncFIFOBuffered(width=delivery.size, depth=depth)
        queued_job, started_job = act_job(act_jobs.r_data), act_job(act_jobs.w_data)
        started_delivery, delivering = delivery(deliveries.w_data), delivery(deliveries.r_data)
        # Activation beats: rows from the scratchpad (transposed in blocks for OS), framed and tagged with the mode.
        activation_rows = act_reader.rows

        def stream_untransposed(rows):
            """Drive ``rows`` from the activation reader; a paired delivery's beats need both readers' rows."""
            secondary_ready = (~delivering.paired | secondary_reader.rows.valid) if paired else 1
            m.d.comb += [rows.valid.eq(act_reader.rows.valid & secondary_ready), rows.payload.eq(act_reader.rows.payload),
                         act_reader.rows.ready.eq(rows.ready & secondary_ready)]
            if paired:
                m.d.comb += secondary_reader.rows.ready.eq(rows.ready & act_reader.rows.valid & delivering.paired)

        # OS depthwise rows bypass the transposer; every job in the reader or the transposer
        # has the flag of the last one started (a job with the other flag waits, below).
        bypassing = os and config.array.depthwise
        streaming_depthwise = Signal()
        if os:
            transposer = m.submodules.transposer = Transposer(rows)
            m.d.comb += transposer.rows_in.payload.eq(act_reader.rows.payload)
            if bypassing:
                activation_rows = stream.Signature(act_reader.rows.payload.shape()).create()
                with m.If(streaming_depthwise):
                    stream_untransposed(activation_rows)
                with m.Else():
                    m.d.comb += [transposer.rows_in.valid.eq(act_reader.rows.valid),
                                 act_reader.rows.ready.eq(transposer.rows_in.ready),
                                 activation_rows.valid.eq(transposer.columns.valid),
                                 activation_rows.payload.eq(transposer.columns.payload),
                                 transposer.columns.ready.eq(activation_rows.ready)]
            else:
                m.d.comb += [transposer.rows_in.valid.eq(act_reader.rows.valid),
                             act_reader.rows.ready.eq(transposer.rows_in.ready)]
                activation_rows = transposer.columns
        elif paired:
            activation_rows = stream.Signature(act_reader.rows.payload.shape()).create()
            stream_untransposed(activation_rows)
        same_routing = (queued_job.depthwise == streaming_depthwise) | (deliveries.level == 0) if bypassing else 1
        # A paired job starts both readers in one cycle, so their rows stay in lockstep.
        secondary_free = (~queued_job.paired | ~secondary_reader.reading) if paired else 1
        with m.If(act_jobs.r_rdy & ~act_reader.reading & secondary_free & deliveries.w_rdy & same_routing):
            m.d.comb += [act_reader.first.eq(queued_job.act_addr), act_reader.count.eq(queued_job.beats),
                         act_reader.step_shift.eq(queued_job.act_stride_log2),
                         act_reader.start.eq(1), act_jobs.r_en.eq(1), deliveries.w_en.eq(1)]
            if bypassing:
                m.d.sync += streaming_depthwise.eq(queued_job.depthwise)
            if paired:
                m.d.comb += [secondary_reader.first.eq(queued_job.act_addr + PAIRED_SECONDARY_OFFSET),
                             secondary_reader.count.eq(queued_job.beats),
                             secondary_reader.step_shift.eq(queued_job.act_stride_log2),
                             secondary_reader.start.eq(queued_job.paired)]
        m.d.comb += [started_delivery.last_beat.eq(queued_job.beats - 1),
                     started_delivery.single.eq(queued_job.beats == 1), started_delivery.mode.eq(queued_job.mode),
                     started_delivery.depthwise.eq(queued_job.depthwise), started_delivery.taps.eq(queued_job.taps),
                     started_delivery.paired.eq(queued_job.paired)]

        # The beat closing a delivery is known from registers: its first beat closes it if it is single,
        # a later one if the compare registered at the beat before found it last (through a compare of
        # ``sent``, from the counter to the readers' and the transposer's enables was the 4x4 SoC's worst
        # path, 13.4 ns, 2026-12-06).
        sent = Signal.like(delivering.last_beat)
        first, later_last = Signal(init=1), Signal()
        last_beat = Mux(first, delivering.single, later_last)
        beat = array.activations.valid & array.activations.ready
        m.d.comb += [array.activations.valid.eq(activation_rows.valid & deliveries.r_rdy),
                     array.activations.payload.data.eq(activation_rows.payload),
                     array.activations.payload.last.eq(last_beat),
                     activation_rows.ready.eq(array.activations.ready & deliveries.r_rdy),
                     array.weights.valid.eq(weight_reader.rows.valid),
                     array.weights.payload.data.eq(weight_reader.rows.payload),
                     weight_reader.rows.ready.eq(array.weights.ready),
                     self.array_busy.eq(beat)]
        if config.array.arith == ArithSupport.BOTH:
            m.d.comb += array.activations.payload.mode.eq(delivering.mode)
        if paired:
            m.d.comb += [array.activations.payload.secondary.eq(delivering.paired & (first if os else 1)),
                         array.activations.payload.secondary_data.eq(secondary_reader.rows.payload)]
        if config.array.depthwise:
            m.d.comb += array.activations.payload.depthwise.eq(delivering.depthwise)
            if os:
                # Weights and activations beat in lockstep, so `sent` also counts weight beats.
                with m.If(delivering.depthwise & (sent >= delivering.taps)):
                    m.d.comb += array.weights.payload.data.eq(0)
        with m.If(beat):
            m.d.sync += [sent.eq(Mux(last_beat, 0, sent + 1)), first.eq(last_beat),
                         later_last.eq(sent + 1 == delivering.last_beat)]
            m.d.comb += deliveries.r_en.eq(last_beat)

        # In flight: instructions whose inputs have entered the array, oldest first. Each
        # retires (pushing its tokens) once its result rows are in the accumulator, so the
        # next COMPUTE streams in while the previous one drains.
        # rows: result rows the array delivers; kept: how many of them are written (depthwise drops R - 1).
        # final: the instruction's last record (a repeating COMPUTE has one per run), which retires it.
        record_layout = data.StructLayout({"acc_addr": len(self.acc_write.addr), "rows": 13, "kept": 13,
                                           "accumulate": 1, "push_prev": 1, "push_next": 1, "final": 1})
        in_flight = m.submodules.in_flight = fifo.SyncFIFOBuffered(width=record_layout.size, depth=depth)
        head = record_layout(in_flight.r_data)
        record = Signal(record_layout)
        m.d.comb += in_flight.w_data.eq(record)

        # Results: read-modify-write into the accumulator in five stages after a row is taken from the
        # array, one row per cycle: read (from registers), capture (the block RAM's output in a register of
        # its own: its clock-to-out, 5.8 ns on the ECP5, through the forwarding selects was the 4x4 SoC's
        # worst path, 2026-12-06 #12), fetch (the old row, forwarded), add, and write (from registers). The
        # array's output, the block RAM's ports, its clock-to-out and the 32-bit add so sit in different
        # cycles. The old row misses the writes of the four cycles from its read on; fetch takes those from
        # the add stage and the three registered stages after it.
        acc_row = data.ArrayLayout(signed(ACC_BITS), cols)
        received = Signal(13)
        keep = Signal()

        def stage(name):
            return (Signal(name=name), Signal(acc_row, name=f"{name}_row"),
                    Signal.like(self.acc_write.addr, name=f"{name}_address"), Signal(name=f"{name}_accumulate"))

        reading, reading_row, reading_address, reading_accumulate = stage("reading")
        capturing, capturing_row, capturing_address, capturing_accumulate = stage("capturing")
        fetching, fetching_row, fetching_address, fetching_accumulate = stage("fetching")
        adding, adding_row, adding_address, adding_accumulate = stage("adding")
        captured_old, old_row = Signal(acc_row), Signal(acc_row)
        # The write stage and the rows it wrote the last two cycles, youngest first.
        writes = [(Signal(name=f"written_{age}"), Signal(acc_row, name=f"written_{age}_row"),
                   Signal.like(self.acc_write.addr, name=f"written_{age}_address")) for age in range(3)]
        written, written_row, written_address = writes[0]
        m.d.comb += [keep.eq(array.results.valid & (received < head.kept)),
                     self.acc_read.addr.eq(reading_address),
                     self.acc_read.en.eq(reading)]
        # acc_busy: the read port while the read stage holds a row, the write port while the write stage does;
        # a register of its own, loaded as those stages are (the load unit's walk waits on it: through an OR
        # of them, from this unit's read stage to the walker's enables was the 4x4 SoC's worst path, 12.9 ns,
        # 2026-12-06).
        m.d.sync += self.acc_busy.eq(keep | adding)
        head_done = Signal()
        with m.If(array.results.valid):
            m.d.sync += [reading_row.eq(array.results.payload.data), reading_address.eq(head.acc_addr + received),
                         reading_accumulate.eq(head.accumulate), received.eq(received + 1)]
            with m.If(received + 1 == head.rows):
                m.d.comb += head_done.eq(1)
                m.d.sync += received.eq(0)
        new_row = Signal(acc_row)
        for lane in range(cols):
            m.d.comb += new_row[lane].eq(Mux(adding_accumulate, old_row[lane] + adding_row[lane], adding_row[lane]))
        m.d.sync += [reading.eq(keep), captured_old.eq(self.acc_read.data),
                     capturing.eq(reading), capturing_row.eq(reading_row),
                     capturing_address.eq(reading_address), capturing_accumulate.eq(reading_accumulate),
                     fetching.eq(capturing), fetching_row.eq(capturing_row),
                     fetching_address.eq(capturing_address), fetching_accumulate.eq(capturing_accumulate),
                     adding.eq(fetching), adding_row.eq(fetching_row),
                     adding_address.eq(fetching_address), adding_accumulate.eq(fetching_accumulate),
                     written.eq(adding), written_row.eq(new_row), written_address.eq(adding_address)]
        for (valid, row, address), (older_valid, older_row, older_address) in zip(writes, writes[1:]):
            m.d.sync += [older_valid.eq(valid), older_row.eq(row), older_address.eq(address)]
        # Which of them the fetched row takes is compared a stage ahead, as the row is captured, against
        # the rows then one stage younger (from the fetch stage's address through those compares to the
        # selects of 128 bits was the 4x4 SoC's worst path, 11.7 ns, 2026-12-06 #14).
        younger = [(fetching, fetching_address), (adding, adding_address),
                   *((valid, address) for valid, _, address in writes[:-1])]
        forwards = [Signal(name=f"forward_{source}") for source in ("added", *(f"written_{age}" for age in range(3)))]
        m.d.sync += [forward.eq(valid & (address == capturing_address))
                     for forward, (valid, address) in zip(forwards, younger)]
        with m.If(forwards[0]):
            m.d.sync += old_row.eq(new_row)
        for forward, (_, row, _) in zip(forwards[1:], writes):
            with m.Elif(forward):
                m.d.sync += old_row.eq(row)
        with m.Else():
            m.d.sync += old_row.eq(captured_old)
        m.d.comb += [self.acc_write.addr.eq(written_address), self.acc_write.data.eq(written_row),
                     self.acc_write.en.eq(written)]

        # Retirement: as the last result row is written, or at once for a record without
        # results (SYNC, no beats) unless another retirement takes that cycle.
        # The last row's done (and its record's token and final flags) travel with it, RESULT_LATENCY stages.
        retire = Signal()
        flags = Signal(3)
        done = [Signal(name=f"done_{stage}") for stage in range(RESULT_LATENCY)]
        done_flags = [Signal(3, name=f"done_flags_{stage}") for stage in range(RESULT_LATENCY)]
        m.d.sync += [done[0].eq(head_done), done_flags[0].eq(Cat(head.push_prev, head.push_next, head.final)),
                     *(done[stage].eq(done[stage - 1]) for stage in range(1, RESULT_LATENCY)),
                     *(done_flags[stage].eq(done_flags[stage - 1]) for stage in range(1, RESULT_LATENCY))]
        retiring, earlier_done = done[-1], Cat(*done[:-1]).any()
        with m.If(retiring):
            m.d.comb += [retire.eq(1), flags.eq(done_flags[-1])]
        with m.Elif(in_flight.r_rdy & (head.rows == 0) & ~earlier_done):
            m.d.comb += [retire.eq(1), flags.eq(Cat(head.push_prev, head.push_next, head.final)), in_flight.r_en.eq(1)]
        with m.If(head_done):
            m.d.comb += in_flight.r_en.eq(1)
        m.d.comb += [self.retired.eq(retire & flags[2]), self.push_prev.eq(retire & flags[0]),
                     self.push_next.eq(retire & flags[1])]

        def result_rows(f):
            return rows if os else f.beats

        def kept_rows(f):
            return Mux(f.depthwise, os_depthwise_results(rows, f.taps) if os else f.beats - (rows - 1), result_rows(f))

        def weight_rows(f):
            return f.beats if os else rows

        # The checks are registered from the queue's head while it waits, in stages of one add or compare
        # each: the spans, the last rows, and the compares, read in Check. A head is taken once it has waited
        # CHECK_CYCLES cycles, so the last stage registers as it is taken (from the head through an add of a
        # shifted count and a compare to the registered results was the 4x4 SoC's worst path, 12.0 ns,
        # 2026-12-06 #13; before, from `fields` through them to the job queues' write enables, 13.0 ns).
        head_fields = instruction.fields.compute
        act_span = Signal(len(head_fields.beats) + (1 << len(head_fields.act_stride_log2)) - 1)
        weight_span = Signal(len(head_fields.beats))
        kept_span = Signal(signed(len(head_fields.beats) + 2))
        # A legal repeating COMPUTE's later runs' result rows (their activation rows: shifted); the product
        # of its legal runs' R - taps + 1 (at most R) and the legality registered apart, gated as added.
        repeat_rows, repeat_legal = Signal(len(head_fields.repeat) + rows.bit_length()), Signal()
        repeat_span = Mux(repeat_legal, repeat_rows, 0)
        last_act_row = Signal(max(len(act_span), len(repeat_span) + (1 << len(head_fields.act_stride_log2)) - 1) + 2)
        weight_end = Signal(len(weight_span) + 1)
        acc_end = Signal(len(head_fields.acc_addr) + len(repeat_span) + 1)
        m.d.sync += [act_span.eq((head_fields.beats - 1) << head_fields.act_stride_log2),
                     weight_span.eq(weight_rows(head_fields)), kept_span.eq(kept_rows(head_fields)),
                     last_act_row.eq(head_fields.act_addr + act_span + (repeat_span << head_fields.act_stride_log2)),
                     weight_end.eq(head_fields.weight_addr + weight_span),
                     acc_end.eq(head_fields.acc_addr + kept_span + repeat_span)]
        if os:
            unsupported_fields = head_fields.beats % rows != 0
            if config.array.depthwise:
                unsupported_fields |= head_fields.depthwise & ((head_fields.taps == 0) | (head_fields.taps > rows) |
                                                               (head_fields.mode != ArithMode.INT8))
            else:
                unsupported_fields |= head_fields.depthwise
        elif config.array.depthwise:
            unsupported_fields = head_fields.depthwise & (head_fields.beats < rows)
        else:
            unsupported_fields = head_fields.depthwise
        if paired:
            unsupported_fields |= head_fields.paired & (~head_fields.depthwise | (head_fields.act_stride_log2 != 1))
            if not os:      # (OS depthwise COMPUTEs are int8 only in any case)
                unsupported_fields |= head_fields.paired & (head_fields.mode != ArithMode.INT8)
        else:
            unsupported_fields |= head_fields.paired
        if os and config.array.depthwise:
            unsupported_fields |= (head_fields.repeat != 0) & ~head_fields.depthwise
            # (an illegal one is checked as its first run alone, as the ISA simulator checks it)
            m.d.sync += [repeat_rows.eq(head_fields.repeat * kept_rows(head_fields)[:rows.bit_length()]),
                         repeat_legal.eq(~unsupported_fields)]
        else:
            unsupported_fields |= head_fields.repeat != 0
        # A paired COMPUTE's last secondary row is PAIRED_SECONDARY_OFFSET rows after its last row.
        secondary_past_end = (head_fields.paired & (last_act_row >= config.act_rows - PAIRED_SECONDARY_OFFSET)
                              if paired else 0)
        is_compute = instruction.header.opcode == Opcode.COMPUTE
        unsupported, out_of_range, no_beats = Signal(), Signal(), Signal()
        # kept_rows wraps for a depthwise COMPUTE shorter than R, which is refused as unsupported.
        m.d.sync += [unsupported.eq(is_compute & unsupported_fields),
                     out_of_range.eq(is_compute & (((head_fields.beats != 0) &
                                                    ((last_act_row >= config.act_rows) | secondary_past_end)) |
                                                   (weight_end > config.weight_rows) |
                                                   ((acc_end > config.acc_rows) & ~unsupported_fields))),
                     no_beats.eq(~is_compute | (head_fields.beats == 0))]
        checked = head_waited(m, self.instructions, CHECK_CYCLES)
        final_run = Signal()        # the COMPUTE's last run (of 1 + repeat) starts: its record pushes the tokens
        m.d.comb += [record.acc_addr.eq(fields.acc_addr), record.rows.eq(result_rows(fields)),
                     record.kept.eq(kept_rows(fields)),
                     record.accumulate.eq(fields.accumulate), record.push_prev.eq(header.push_prev & final_run),
                     record.push_next.eq(header.push_next & final_run), record.final.eq(final_run)]
        feeding = Signal()

        def start_run():
            m.d.comb += [started_weights.weight_addr.eq(fields.weight_addr), started_weights.count.eq(weight_rows(fields)),
                         weight_jobs.w_en.eq(1), started_job.act_addr.eq(fields.act_addr),
                         started_job.beats.eq(fields.beats), started_job.mode.eq(fields.mode),
                         started_job.depthwise.eq(fields.depthwise), started_job.taps.eq(fields.taps),
                         started_job.paired.eq(fields.paired),
                         started_job.act_stride_log2.eq(fields.act_stride_log2),
                         act_jobs.w_en.eq(1), in_flight.w_en.eq(1)]
            # The next run's rows (ISA: repeat): one run's result rows on; repeat counts the runs left.
            m.d.sync += [fields.act_addr.eq(fields.act_addr + (kept_rows(fields) << fields.act_stride_log2)),
                         fields.acc_addr.eq(fields.acc_addr + kept_rows(fields)),
                         fields.repeat.eq(fields.repeat - 1)]

        m.d.comb += self.busy.eq(feeding | in_flight.r_rdy | retiring | earlier_done |
                                 reading | capturing | fetching | adding | written)
        with m.FSM():
            with m.State("Idle"):
                blocked_prev = instruction.header.pop_prev & ~self.prev_token_available
                blocked_next = instruction.header.pop_next & ~self.next_token_available
                m.d.comb += [self.waiting_load.eq(self.instructions.valid & blocked_prev),
                             self.waiting_store.eq(self.instructions.valid & blocked_next)]
                with m.If(self.instructions.valid & checked & ~blocked_prev & ~blocked_next & in_flight.w_rdy):
                    m.d.comb += [self.instructions.ready.eq(1),
                                 self.pop_prev.eq(instruction.header.pop_prev),
                                 self.pop_next.eq(instruction.header.pop_next)]
                    # (A SYNC has no inputs and no results: only tokens.)
                    m.d.sync += [fields.eq(Mux(is_compute, instruction.fields.compute, 0)),
                                 header.eq(instruction.header)]
                    m.next = "Check"
            with m.State("Check"):
                m.d.comb += [feeding.eq(1), final_run.eq(fields.repeat == 0)]
                with m.If(out_of_range | unsupported):
                    m.d.comb += [self.error_range.eq(out_of_range), self.error_field.eq(~out_of_range)]
                    m.next = "Idle"
                with m.Elif(no_beats):      # (checked from the head as it was taken: only in Check)
                    m.d.comb += [record.rows.eq(0), in_flight.w_en.eq(1)]
                    m.next = "Idle"
                with m.Elif(weight_jobs.w_rdy & act_jobs.w_rdy):
                    start_run()
                    m.next = "Idle"
                    with m.If(~final_run):
                        m.next = "Repeat"
            # A repeating COMPUTE's later runs, one a cycle while the queues have room (its in-flight
            # record too: the take reserved only the first's).
            with m.State("Repeat"):
                m.d.comb += [feeding.eq(1), final_run.eq(fields.repeat == 0)]
                with m.If(weight_jobs.w_rdy & act_jobs.w_rdy & in_flight.w_rdy):
                    start_run()
                    with m.If(final_run):
                        m.next = "Idle"
        return m
