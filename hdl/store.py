"""The store unit: executes CONFIG and STORE, post-processing accumulator rows into DRAM."""
from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import ADDR_WIDTH, planned_burst_rows, response_failed, rows_merge
from .config import AcceleratorConfig
from .isa import CHANNEL_RECORD_KEPT_BYTES, CHANNEL_RECORD_KEPT_FIELDS, INSTRUCTION, STORE_BYTE_OFFSET_BITS, Opcode
from .numerics import ACC_BITS, BINARY_VALUES_PER_LANE, ArithMode
from .postprocess import BANKS, PostProcessor, output_params_layout
from .sram import RowReader, address_width
from .walker import DESCRIPTOR_FIELDS, DESCRIPTOR_LATENCY, RowWalker, descriptor_rows

__all__ = ["StoreUnit"]

OUTPUT_ROWS = 16      # rows in the post-processor and post-processed rows buffered ahead of the writer
BURSTS_AHEAD = 4      # AW bursts issued ahead of their W beats
STORE_JOBS = 2        # checked STOREs waiting for the address stage


class StoreUnit(wiring.Component):
    """Runs CONFIG and STORE; one AXI write burst per output row, or per run of single-beat rows
    that follow each other in DRAM (up to ``MAX_BURST_ROWS``, within a 4 KiB page).

    Members
    -------
    instructions : In(stream.Signature(INSTRUCTION))
    token_available : In(1)      a compute->store token exists (for pop_prev)
    pop_token, push_token : Out(1)
    acc_read, channel_read : read ports of the accumulator and the channel memory
    awvalid .. bresp : the AXI write channels it uses (bready is always 1)
    bytes_written : Out(8)       bytes strobed by the W beat accepted the cycle before
    error_write, error_range : Out(1);  retired : Out(1);  busy : Out(1)
    channel_read_kept : Out(1)   the channel read of this cycle is the one kept (a STORE is accepted); the
                                 others are dropped (for the simulation's collision checks)
    """

    def __init__(self, config: AcceleratorConfig):
        self.config = config
        cols = config.array.cols
        super().__init__({
            "instructions": In(stream.Signature(INSTRUCTION)),
            "token_available": In(1), "pop_token": Out(1), "push_token": Out(1),
            "acc_read": In(memory.ReadPort.Signature(addr_width=address_width(config.acc_rows),
                                                     shape=cols * ACC_BITS)),
            "channel_read": In(memory.ReadPort.Signature(addr_width=address_width(config.channel_rows),
                                                         shape=cols * len(CHANNEL_RECORD_KEPT_BYTES) * 8)),
            "awvalid": Out(1), "awaddr": Out(ADDR_WIDTH), "awlen": Out(8), "awready": In(1),
            "wvalid": Out(1), "wdata": Out(config.bus_bits), "wstrb": Out(config.bus_bytes), "wlast": Out(1),
            "wready": In(1), "bvalid": In(1), "bresp": In(2),
            "bytes_written": Out(8), "error_write": Out(1), "error_range": Out(1), "retired": Out(1),
            "busy": Out(1), "channel_read_kept": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config, cols, bus_bytes = self.config, self.config.array.cols, self.config.bus_bytes
        beat_shift = (bus_bytes - 1).bit_length()
        # Each row carries its STORE's parameter bank, so a STORE's reads may start while the previous
        # STORE's last rows still wait in the reader.
        reader = m.submodules.reader = RowReader(addr_width=len(self.acc_read.addr), row_shape=cols * ACC_BITS,
                                                 tag_bits=1)
        wiring.connect(m, reader.port, wiring.flipped(self.acc_read))
        post = m.submodules.post = PostProcessor(cols, config.array.dsp_primitive)
        # Output rows wait here for the writer, so the next STORE's rows can enter the post-processor
        # while this one's are still being written. The post-processor never stalls, so a row enters it
        # only while the queue has room for it and for every row ahead of it in the pipeline.
        out_rows = m.submodules.out_rows = fifo.SyncFIFOBuffered(width=cols * 8, depth=OUTPUT_ROWS)
        reserved = Signal(range(OUTPUT_ROWS + 1))        # rows in the post-processor or the queue
        admit = Signal()
        m.d.comb += admit.eq(reserved != OUTPUT_ROWS)
        m.d.sync += reserved.eq(reserved + post.rows_in.valid - out_rows.r_en)

        # Front end: CONFIG, and each STORE's check and rows through the post-processor.
        instruction = self.instructions.payload
        fields = Signal.like(instruction.fields.store)
        header = Signal.like(instruction.header)
        output = Signal(output_params_layout(), init={"clamp_min": -128, "clamp_max": 127})
        # Consecutive STOREs alternate between the post-processor's parameter banks, so one's rows
        # follow the other's through its pipeline.
        bank = Signal()                        # the bank of the last STORE started
        channel_params = Signal.like(post.channel_params)
        kept_channels = Signal.like(post.channels)
        m.d.comb += [post.rows_in.valid.eq(reader.rows.valid & admit), post.rows_in.payload.data.eq(reader.rows.payload),
                     post.rows_in.payload.bank.eq(reader.row_tag), reader.rows.ready.eq(admit),
                     post.channel_params.eq(channel_params), post.params.eq(output), post.channels.eq(kept_channels),
                     out_rows.w_en.eq(post.rows_out.valid), out_rows.w_data.eq(post.rows_out.payload.data)]

        # Channel records as the channel memory keeps them.
        record_bits = len(CHANNEL_RECORD_KEPT_BYTES) * 8
        records = self.channel_read.data
        decoded = Signal.like(channel_params[0])
        for lane in range(cols):
            record = records[lane * record_bits:(lane + 1) * record_bits]
            m.d.comb += [getattr(decoded[lane], name).eq(record[offset:offset + shape.width])
                         for name, (offset, shape) in CHANNEL_RECORD_KEPT_FIELDS.items()]

        def row_beats(end):
            return (end + bus_bytes - 1) >> beat_shift

        # What the writer needs of a STORE, queued by the front end: the data stage its row format and
        # whether it hands a token on, the address stage also the descriptor.
        sending_fields = {"byte_offset": STORE_BYTE_OFFSET_BITS, "end": 8, "last_beat": 8, "push_prev": 1}
        sending_layout = data.StructLayout(sending_fields)
        job_layout = data.StructLayout({**DESCRIPTOR_FIELDS, **sending_fields})
        jobs = m.submodules.jobs = fifo.SyncFIFO(width=job_layout.size, depth=STORE_JOBS)
        queued = job_layout(jobs.w_data)
        # A row's bytes, its end and its last beat are registered in turn while the STORE is checked
        # (through all three, from the fields to the job queue was the 4x4 SoC's worst path, 11.2 ns,
        # 2026-12-06).
        stored, end, last_beat = Signal(8), Signal(8), Signal(8)
        m.d.sync += [stored.eq(Mux(output.mode == ArithMode.BINARY,
                                   (fields.channels + BINARY_VALUES_PER_LANE - 1) >> 3, fields.channels)),
                     end.eq(fields.byte_offset + stored), last_beat.eq(row_beats(end) - 1)]
        m.d.comb += [queued.end.eq(end), queued.last_beat.eq(last_beat),
                     queued.byte_offset.eq(fields.byte_offset),
                     queued.push_prev.eq(header.push_prev)]
        m.d.comb += [getattr(queued, name).eq(getattr(fields, name)) for name in DESCRIPTOR_FIELDS]

        writer_idle = Signal()
        unit_idle = Signal()                   # no row in the post-processor and the writer idle
        front_retire = Signal()
        writer_retire = Signal()
        total_rows, total_over = descriptor_rows(m, fields, config.array.dsp_primitive)
        # The accumulator rows from acc_addr on, registered while total_rows is computed (as in the load unit).
        acc_room = Signal(signed(max(config.acc_rows.bit_length(), len(fields.acc_addr)) + 1))
        m.d.sync += acc_room.eq(config.acc_rows - fields.acc_addr)
        # Per bank: rows still to leave the post-processor, and whether none do (kept in a register,
        # so the front end's start does not wait on a compare).
        rows_left = Array(Signal.like(total_rows, name=f"rows_left_{b}") for b in range(BANKS))
        drained = Array(Signal(name=f"drained_{b}", init=1) for b in range(BANKS))
        with m.If(out_rows.w_en):
            leaving = post.rows_out.payload.bank
            m.d.sync += [rows_left[leaving].eq(rows_left[leaving] - 1), drained[leaving].eq(rows_left[leaving] == 1)]
        m.d.comb += unit_idle.eq(writer_idle & ~reader.busy & Cat(*drained).all())
        # What the front end waits for, a cycle late: while it waits nothing enters the unit, so the unit only
        # empties meanwhile, and a STORE it starts clears the flag at once (from the write responses through
        # the writer's idle flag to the CONFIG registers' enables was the 4x4 SoC's worst path, 11.4 ns,
        # 2026-12-06 #13).
        emptied = Signal()
        m.d.sync += emptied.eq(unit_idle & ~jobs.w_en)
        front_busy = Signal()
        out_of_range, empty = Signal(), Signal()      # the STORE's checks, registered before Check
        sizing = Signal(range(DESCRIPTOR_LATENCY))
        # A STORE's channel records are read as it is accepted and must hold while it waits to start:
        # the port reads the head instruction's row in every Idle cycle (so its enable depends on the
        # state alone, not on whether the unit may accept), and holds from the acceptance on.
        m.d.comb += self.channel_read.en.eq(0)
        with m.FSM():
            with m.State("Idle"):
                m.d.comb += [self.channel_read.addr.eq(instruction.fields.store.channel_row),
                             self.channel_read.en.eq(1)]
                is_store = instruction.header.opcode == Opcode.STORE
                # CONFIG changes the post-processing of rows in flight, so it waits for the unit to empty.
                free = Mux(is_store, jobs.w_rdy, emptied)
                with m.If(self.instructions.valid & free & (~instruction.header.pop_prev | self.token_available)):
                    m.d.comb += [self.instructions.ready.eq(1), self.pop_token.eq(instruction.header.pop_prev),
                                 self.channel_read_kept.eq(is_store)]
                    m.d.sync += [fields.eq(instruction.fields.store), header.eq(instruction.header)]
                    with m.If(is_store):
                        m.next = "Size"
                    with m.Else():
                        m.d.sync += output.eq(instruction.fields.config)
                        m.next = "Retire"
            # DESCRIPTOR_LATENCY cycles for the registered rows x blocks x groups product, and one to compare it.
            with m.State("Size"):
                m.d.comb += front_busy.eq(1)
                m.d.sync += sizing.eq(sizing + 1)
                with m.If(sizing == DESCRIPTOR_LATENCY - 1):
                    m.d.sync += sizing.eq(0)
                    m.next = "Compare"
            with m.State("Compare"):
                m.d.comb += front_busy.eq(1)
                m.d.sync += [out_of_range.eq(total_over | (total_rows > acc_room) |
                                             (fields.channel_row >= config.channel_rows) |
                                             (fields.channels == 0) | (fields.channels > cols)),
                             empty.eq(total_rows == 0)]
                m.next = "Check"
            with m.State("Check"):
                m.d.comb += front_busy.eq(1)
                with m.If(out_of_range):
                    # Reported once the stores before it are written, as if it ran alone.
                    with m.If(emptied):
                        m.d.comb += self.error_range.eq(1)
                        m.next = "Idle"
                with m.Elif(empty):
                    with m.If(emptied):          # retires in order, after the stores before it
                        m.next = "Retire"
                # Starts once the previous STORE's rows have all been read and the other bank's (two
                # STOREs back) have left the post-processor.
                with m.Elif(~reader.reading & drained[~bank]):
                    m.d.comb += [reader.first.eq(fields.acc_addr), reader.count.eq(total_rows), reader.start.eq(1),
                                 reader.tag.eq(~bank), jobs.w_en.eq(1)]
                    m.d.sync += [bank.eq(~bank), channel_params[~bank].eq(decoded),
                                 kept_channels[~bank].eq(fields.channels), rows_left[~bank].eq(total_rows),
                                 drained[~bank].eq(0)]
                    m.next = "Idle"
            with m.State("Retire"):
                m.d.comb += [front_busy.eq(1), front_retire.eq(1)]
                m.next = "Idle"

        # Writer, in two stages: the address stage walks a STORE's descriptor into AW bursts (up to
        # BURSTS_AHEAD ahead of their data) and then takes the next STORE while the data stage still
        # sends this one's W beats, each row's beats from the output queue.
        job = Signal(job_layout)               # the address stage's STORE
        walker = m.submodules.walker = RowWalker(padding=False)
        taking = Signal()                      # the address stage takes the next STORE (and starts its walk)
        next_job = job_layout(jobs.r_data)
        m.d.comb += [getattr(walker, name).eq(Mux(taking, getattr(next_job, name), getattr(job, name)))
                     for name in DESCRIPTOR_FIELDS]
        # Whether the job's rows share bursts (as loads do), registered as it is taken.
        mergeable = Signal()
        # A merged burst's rows are planned from the walker's position a cycle ahead, as in the load unit
        # (1 for rows that do not merge: no select of the flag sits in front of the walker's step; from the
        # flag through it and the end-of-block compare to the burst queue's data was the 4x4 SoC's worst
        # path, 11.0 ns, 2026-12-06 #14).
        burst_rows, planned = planned_burst_rows(m, walker=walker, mergeable=mergeable, bus_bytes=bus_bytes)
        burst_layout = data.StructLayout({"last_row": len(burst_rows), "last": 1})   # its rows - 1; the STORE's last
        bursts = m.submodules.bursts = fifo.SyncFIFO(width=burst_layout.size, depth=BURSTS_AHEAD)
        sendings = m.submodules.sendings = fifo.SyncFIFO(width=sending_layout.size, depth=2)
        issued_burst = burst_layout(bursts.w_data)
        taken = sending_layout(sendings.w_data)
        outstanding = Signal(8)
        aw_fire = Signal()
        b_fire = Signal()
        addressing = Signal()                  # AW bursts of the address stage's STORE remain
        m.d.comb += [self.awaddr.eq(walker.address), self.awlen.eq(Mux(mergeable, burst_rows - 1, job.last_beat)),
                     self.awvalid.eq(addressing & bursts.w_rdy & (planned | ~mergeable)),
                     aw_fire.eq(self.awvalid & self.awready),
                     bursts.w_en.eq(aw_fire), issued_burst.last_row.eq(burst_rows - 1), issued_burst.last.eq(walker.last),
                     walker.advance.eq(aw_fire), walker.step.eq(burst_rows),
                     walker.step_bytes.eq(Mux(mergeable, burst_rows << beat_shift, job.row_stride)),
                     b_fire.eq(self.bvalid)]
        m.d.sync += outstanding.eq(outstanding + aw_fire - b_fire)
        with m.If(b_fire & (response_failed(self.bresp))):
            m.d.comb += self.error_write.eq(1)
        with m.If(aw_fire & walker.last):
            m.d.sync += addressing.eq(0)
        # A STORE that pushes a token waits for all write responses outstanding, so no later STORE's
        # bursts (whose data would wait behind it) may be issued until it is answered.
        barrier = Signal()
        m.d.comb += taking.eq(~addressing & ~barrier & jobs.r_rdy & sendings.w_rdy)
        with m.If(taking):
            m.d.comb += [walker.start.eq(1), jobs.r_en.eq(1), sendings.w_en.eq(1)]
            m.d.comb += [getattr(taken, name).eq(getattr(next_job, name)) for name in sending_fields]
            m.d.sync += [job.eq(jobs.r_data), addressing.eq(1), barrier.eq(next_job.push_prev),
                         mergeable.eq(rows_merge(next_job.last_beat, next_job.row_stride, bus_bytes))]

        # Data stage: the oldest STORE with bursts issued.
        sending = sending_layout(sendings.r_data)
        burst = burst_layout(bursts.r_data)
        beat = Signal(8)
        row_in_burst = Signal.like(burst_rows)
        span = -(-(cols + (1 << STORE_BYTE_OFFSET_BITS) - 1) // bus_bytes) * bus_bytes    # bytes, whole beats
        row_bytes = Signal(span * 8)
        m.d.comb += row_bytes.eq(out_rows.r_data << (sending.byte_offset * 8))
        beat_words = Array(row_bytes[j * bus_bytes * 8:(j + 1) * bus_bytes * 8] for j in range(span // bus_bytes))
        position = [(beat << beat_shift) + byte for byte in range(bus_bytes)]
        strobes = Cat((at >= sending.byte_offset) & (at < sending.end) for at in position)
        # The count of bytes written is registered as strobes first: from the queued STORE's byte range
        # through the strobes and the W handshake to the counter's increment was the 4x4 SoC's worst
        # path (13.2 ns, 2026-12-06).
        accepted_strobes = Signal(bus_bytes)
        m.d.sync += accepted_strobes.eq(Mux(self.wvalid & self.wready, strobes, 0))
        m.d.comb += [self.wdata.eq(beat_words[beat]), self.wstrb.eq(strobes),
                     self.bytes_written.eq(sum(accepted_strobes))]
        # A STORE that hands a token on retires once its writes are answered: what it releases (an
        # accumulator half, or the end of a fenced pass) must be in DRAM. Later STOREs wait for it.
        responding = Signal()
        row_end = beat == sending.last_beat
        burst_end = row_end & (row_in_burst == burst.last_row)
        m.d.comb += [self.wvalid.eq(bursts.r_rdy & out_rows.r_rdy & ~responding), self.wlast.eq(burst_end)]
        sent = Signal()              # the last W beat of the oldest STORE is accepted this cycle
        with m.If(self.wvalid & self.wready):
            m.d.sync += beat.eq(Mux(row_end, 0, beat + 1))
            with m.If(row_end):
                m.d.comb += out_rows.r_en.eq(1)
                m.d.sync += row_in_burst.eq(Mux(burst_end, 0, row_in_burst + 1))
            m.d.comb += [bursts.r_en.eq(burst_end), sent.eq(burst_end & burst.last)]
        with m.If(sent & sending.push_prev):
            m.d.sync += responding.eq(1)
        answered = responding & (outstanding == 0)
        with m.If(answered):
            m.d.sync += [responding.eq(0), barrier.eq(0)]
        m.d.comb += [writer_retire.eq(sent & ~sending.push_prev | answered), sendings.r_en.eq(writer_retire),
                     writer_idle.eq((jobs.level == 0) & ~addressing & ~barrier & (sendings.level == 0) &
                                    (outstanding == 0))]

        m.d.comb += [self.retired.eq(front_retire | writer_retire),
                     self.push_token.eq(front_retire & header.push_prev | answered),
                     self.busy.eq(front_busy | ~unit_idle)]
        return m
