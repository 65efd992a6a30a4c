"""Analytic performance model: per-layer cycles, utilization and DRAM traffic of a compiled net, no RTL.

It walks the compiled instruction stream in program order (pass after pass, until the fetch bursts
it times stop changing: ``CONTENTION_PASSES``) and times every instruction
on the unit that executes it, from the hardware's documented behaviour (``hdl/*.py``):

* **fetch** reads the program in AXI bursts of up to ``FETCH_BURST`` instructions, one burst at a
  time and each only once its ``FETCH_BUFFER`` has room for it, and dispatches one instruction per
  cycle into its unit's queue (``QUEUE_DEPTHS`` deep; a full queue stalls dispatch);
* **load**: Idle, Check, then the walk issues one AXI read burst per two cycles (the shared
  AR grant, which the load unit takes first when fetch asks in the same cycle), or one per cycle
  for bursts that are not merged rows while the unit keeps the grant, at most
  ``MAX_OUTSTANDING_READS`` in flight; consecutive single-beat rows share a burst of up to
  ``MAX_BURST_ROWS`` (never across ``BURST_BOUNDARY``); padding rows take a cycle each; the read
  channel returns one beat per cycle after the DRAM latency, in the order of the address
  handshakes, shared with fetch (a fetch's beats wait for the LOAD bursts addressed before it and
  delay those addressed after it); a LOAD that writes rows as the last one does (``_row_format``)
  starts while that one drains, once the one before has retired, and retires after it;
* **compute**: Idle, Check (one COMPUTE issued per two cycles at best, ``max_in_flight`` in
  flight; its weight and activation jobs queue for their row readers); each COMPUTE streams its activation beats (OS: with its weight rows in lockstep;
  WS: after its R weight rows, which enter the array only once the previous COMPUTE's
  activations have); it retires when its last result row is written, the array's drain
  (``stream_cycles``) later; SYNC retires in order. A paired depthwise COMPUTE's secondary rows
  come from a second reader started with the activation reader and read in lockstep with it (one
  more read per beat, on a port of its own), so it times as any OS depthwise COMPUTE of its beats;
* **store**: a front end streams a STORE's accumulator rows through the post-processor (two
  parameter banks, so consecutive STOREs follow each other through it; a STORE's reads start once
  the previous STORE's are issued and the rows of the one before have left it) into an output queue
  (``OUTPUT_ROWS``) while the writer sends earlier STOREs' W beats, one per cycle, its address
  stage issuing their AW bursts ahead; a STORE that pushes a token waits for its write
  responses; CONFIG waits for the unit to empty;
* **tokens** (``pop``/``push`` flags) make an instruction wait for the retirement of the
  instruction that pushed the token it pops, exactly as the up/down counters do.

The traffic (bytes read and written, array-busy beats, instructions) is exact: it is counted
from the instructions as the counters count it. The remaining constants are pipeline
latencies of the RTL (register stages between the FSMs), named below; ``tests/test_perfmodel.py``
checks the whole against the RTL's counters per layer.
"""
import bisect
from collections import deque
from dataclasses import dataclass

from hdl.axi import BURST_BOUNDARY, rows_merge
from hdl.accelerator import QUEUE_DEPTHS
from hdl.compute import CHECK_CYCLES, RESULT_LATENCY, max_in_flight
from hdl.config import AcceleratorConfig, Dataflow
from hdl.fetch import FETCH_BUFFER, FETCH_BURST
from hdl.isa import (
    COMPUTE,
    FIELD_DEFAULTS,
    INSTRUCTION_BITS,
    LOAD,
    STORE,
    Instruction,
    Opcode,
    Target,
    target_element_bytes,
)
from hdl.load import HEAD_CHECK_CYCLES, MAX_BURST_ROWS, MAX_OUTSTANDING_READS, OVERLAPPING_TARGETS, WRITE_FORMAT
from hdl.numerics import ArithMode, stored_bytes
from hdl.postprocess import PostProcessor
from hdl.sram import RowReader
from hdl.store import OUTPUT_ROWS, STORE_JOBS
from hdl.systolic_array import stream_cycles
from hdl.walker import DESCRIPTOR_LATENCY

from .compiler import CompiledNet
from .isasim import TOKEN_QUEUES, IsaError
from .program import unit_of
from .report import LayerFigures

__all__ = ["Timing", "LayerPrediction", "predict_program", "predict_net", "predicted_figures"]

# Fetch and load share the AR and R channels, and a fetch burst may come between the LOAD that let it
# ask and that LOAD's bursts: each pass uses the previous pass's fetch bursts where program order has not
# timed this pass's yet, and passes repeat until the fetch bursts stop changing (at most this many: MobileNetV2
# at 224x224 on 16x16 WS needs up to 39 passes a layer, 2026-12-06; sixteen left 14 of its layers short).
CONTENTION_PASSES = 256


@dataclass(frozen=True)
class Timing:
    """Pipeline latencies (cycles) of the RTL, and the DRAM model's read latency."""
    read_latency: int = 2           # sim/axi_dram.sv: AR handshake to the first R beat
    fetch_request: int = 2          # fetch asking: the AR grant is registered, then the handshake
    fetch_buffer: int = 2           # an instruction's last R beat to its dispatch from the prefetch buffer
    fetch_settle: int = 2           # a burst's last R beat to the next burst asking
    load_issue: int = 2             # load bursts: one AR per two cycles (grant, handshake) without a kept grant
    load_overhead: int = 2          # Idle, Check, Drain/retire of a LOAD
    load_checks: int = 2            # LOAD: its take to the walk's first cycle (Idle, Check)
    compute_issue: int = 2          # COMPUTE Idle + Check
    sync_latency: int = 1           # SYNC: through the in-flight FIFO to its retirement
    job_latency: int = 2            # COMPUTE issue to its activation job starting (job FIFO)
    act_latency: int = 5            # activation job start to its first row leaving the row reader
    result_latency: int = RESULT_LATENCY   # last result beat to retirement (accumulator read-modify-write)
    descriptor_latency: int = DESCRIPTOR_LATENCY   # STORE: the registered rows x blocks x groups product
    store_compare: int = 1          # STORE: its range check registered before Check
    post_latency: int = 6 + PostProcessor.STAGES   # STORE check to its first W beat (reader 2, output queue 4)
    store_read_latency: int = 2     # STORE check to its first row entering the post-processor
    store_job_latency: int = 2      # STORE check to the address stage taking it (job queue)
    store_write_latency: int = 3    # address stage takes a STORE to its first W beat (AW, burst queue)
    store_queue_slack: int = 4      # rows the reader and post-processor hold beyond the output queue
    write_response: int = 1         # last W beat to its B response (sim/axi_dram.sv)
    done_latency: int = 2           # all units idle to DONE
    token_latency: int = 1          # a push is visible to a pop the next cycle


@dataclass(frozen=True)
class LayerPrediction:
    cycles: int
    array_busy: int
    bytes_read: int
    bytes_written: int
    load_stall: int
    store_stall: int
    instructions: int

    def counters(self) -> dict[str, int]:
        """The prediction under ``hdl.csr.COUNTERS`` names (COMPUTE_STARVED is not modelled: 0)."""
        return {"CYCLES": self.cycles, "ARRAY_BUSY": self.array_busy, "LOAD_STALL": self.load_stall,
                "STORE_STALL": self.store_stall, "BYTES_READ": self.bytes_read, "BYTES_WRITTEN": self.bytes_written,
                "INSTRUCTIONS": self.instructions, "COMPUTE_STARVED": 0}


_LAYOUT_FIELDS = {Opcode.LOAD: [name for name, _ in LOAD], Opcode.STORE: [name for name, _ in STORE],
                  Opcode.COMPUTE: [name for name, _ in COMPUTE]}


def _fields(instruction: Instruction) -> dict:
    names = _LAYOUT_FIELDS.get(instruction.opcode, ())
    return {**dict.fromkeys(names, 0), **FIELD_DEFAULTS.get(instruction.opcode, {}), **instruction.fields}


def _row_format(f: dict) -> tuple | None:
    """What the load unit's writer needs of a LOAD; two LOADs of the same format may overlap (None: never)."""
    target = Target(f["target"])
    return tuple(f[name] for name in WRITE_FORMAT) if target in OVERLAPPING_TARGETS else None


def _load_walk(f: dict, bus_bytes: int) -> tuple[list[int], int]:
    """(beats of each read burst in walk order, with 0 for a padding row) and the data beats in all."""
    rows, blocks, groups = f["rows"], f["blocks"], f["groups"]
    if not (rows and blocks and groups):
        return [], 0
    if f["row_elems"] == 0:
        return [0] * (rows * blocks * groups), 0
    return _bursts(f, _row_beats(f, bus_bytes), bus_bytes)


def _row_beats(f: dict, bus_bytes: int) -> int:
    return -(-f["row_elems"] * target_element_bytes(Target(f["target"])) // bus_bytes)


def _mergeable(f: dict, beats: int, bus_bytes: int) -> bool:
    """Whether the walk's rows merge into bursts (``hdl.axi.rows_merge``)."""
    return bool(rows_merge(beats - 1, f["row_stride"], bus_bytes))


def _bursts(f: dict, beats: int, bus_bytes: int) -> tuple[list[int], int]:
    """(beats of each burst of a LOAD or STORE walk, 0 for a padding row) and the data beats in all.

    Bursts follow ``hdl.load`` and ``hdl.store``: a row of ``beats`` beats is one burst, except
    single-beat rows ``bus_bytes`` apart, which merge up to ``MAX_BURST_ROWS`` within a block and
    a 4 KiB page.
    """
    f = {name: 0 for name in ("pad_before", "pad_after", "pad_blocks_before", "pad_blocks_after")} | f
    rows, blocks, groups = f["rows"], f["blocks"], f["groups"]
    mergeable = _mergeable(f, beats, bus_bytes)
    walk: list[int] = []
    data = 0
    inner = rows - f["pad_before"] - f["pad_after"]
    for group in range(groups):
        for block in range(blocks):
            if block < f["pad_blocks_before"] or block >= blocks - f["pad_blocks_after"] or inner <= 0:
                walk += [0] * rows
                continue
            walk += [0] * f["pad_before"]
            if mergeable:
                address = f["dram_addr"] + group * f["group_stride"] + (block - f["pad_blocks_before"]) * \
                    f["block_stride"]
                left = inner
                while left:
                    page_left = (BURST_BOUNDARY - address % BURST_BOUNDARY) // bus_bytes
                    burst = min(left, MAX_BURST_ROWS, page_left)
                    walk.append(burst)
                    address += burst * bus_bytes
                    left -= burst
            else:
                walk += [beats] * inner
            data += inner * beats
            walk += [0] * f["pad_after"]
    return walk, data


class _Machine:
    """Times instructions in program order (every dependency points backwards in it)."""

    def __init__(self, config: AcceleratorConfig, timing: Timing, units: list[int | None], program_address: int = 0,
                 previous: "_Machine | None" = None):
        self.config, self.t = config, timing
        self.decoded = previous.decoded if previous else {}     # id(instruction) -> (fields, walk, data beats)
        # Each instruction's unit (None: END), and its rank among its unit's instructions.
        self.units, self.program_address = units, program_address
        if previous:
            self.ranks, self.of_unit = previous.ranks, previous.of_unit
        else:
            self.ranks, self.of_unit = [], [[], [], []]
            for position, unit in enumerate(units):
                self.ranks.append(len(self.of_unit[unit]) if unit is not None else 0)
                if unit is not None:
                    self.of_unit[unit].append(position)
        # The previous pass's fetch bursts, in AR order (a pass times them one after another).
        self.previous_fetch_bursts = previous.fetch_bursts if previous else []
        self.previous_fetch_ars = previous.fetch_ars if previous else []
        self.previous_fetch_ar_set = frozenset(self.previous_fetch_ars)
        self.bus = config.bus_bytes
        self.instruction_beats = INSTRUCTION_BITS // config.bus_bits
        self.in_flight = max_in_flight(config.array)
        self.reset()

    def reset(self) -> None:
        self.fetch_free = 2                 # START, then fetch runs a cycle later and asks the next
        self.requested = 0                  # instructions asked for
        self.arrivals = deque()             # when each asked-for, undispatched instruction can be dispatched
        self.dispatches: list[int] = []     # dispatch time of each instruction dispatched so far
        self.starts: dict[int, int] = {}    # when each instruction timed so far left its queue
        self.position = -1                  # of the instruction being timed, in the program
        self.read_bus = 0                   # first cycle the R channel is free
        self.unit_free = [0, 0, 0]
        # The last LOAD: when its walk ended (a LOAD that writes alike may start then), its row format,
        # its bursts' last R beats, and the retirements of it and the LOAD before it.
        self.load_walked = 0
        self.load_pads_written = 0           # its padding rows' last write, plus one
        self.load_format = None
        self.load_bursts = deque()
        self.load_retires = deque([0, 0], maxlen=2)
        self.load_taken = -1                # the last LOAD's take: the next one heads the queue a cycle later
        self.compute_taken = -1             # the same for the compute unit's queue
        self.tokens = {queue: deque() for queue in TOKEN_QUEUES}
        self.compute_released = deque(maxlen=self.in_flight)   # when each COMPUTE's in-flight slot frees
        self.last_retire = 0
        self.rows_entered = 0                # the store unit's reader has delivered every row it started
        self.rows_read = 0                   # ... and has read them all (it may start the next STORE's)
        self.rows_posted = (0, 0)            # the last two STOREs' rows have all left the post-processor
        self.address_free = 0                # the store unit's address stage can take the next STORE
        self.store_takes = deque(maxlen=STORE_JOBS)   # when it took each of the last STOREs
        self.writer_free = 0                 # its data stage can send the next W beat
        self.writer_idle = 0                 # ... and every write it issued has its response
        self.weights_free = 0                # weight row reader
        self.act_reading = 0                 # the activation row reader can start its next job
        self.shadow_free = 0                 # WS: the shadow weight registers can take the next tile
        self.array_free = 0                  # the cycle after the last activation beat entered
        self.streaming_depthwise = False     # OS: the last activation job bypassed the transposer
        self.act_jobs = deque(maxlen=self.in_flight)      # start of each queued activation job
        self.weight_jobs = deque(maxlen=self.in_flight)   # ... and of each weight job
        self.fetch_bursts: list[tuple[int, int]] = []   # (AR handshake, R beats) of instruction fetches (this pass)
        self.fetch_ars: list[int] = []        # ... their AR handshakes, in order
        self.fetch_ar_set: set[int] = set()
        self.fetch_horizon = -1               # every fetch burst addressed up to this cycle is timed
        self.load_ars: set[int] = set()       # AR handshakes of LOAD bursts (this pass)
        self.bursts: list[tuple[int, int]] = []           # (AR handshake, cycle after the last R beat) per LOAD burst
        self.last_burst_ar = -1
        self.end = 0
        self.load_stall = self.store_stall = 0
        self.bytes_read = self.bytes_written = self.array_busy = self.instructions = 0

    def _pop(self, queue: str) -> int:
        if not self.tokens[queue]:    # the hardware would wait for ever; the ISA simulator refuses it too
            raise IsaError(f"instruction {self.position} waits for a {queue} token that no earlier "
                           "instruction pushed")
        return self.tokens[queue].popleft()

    def _push(self, queue: str, when: int) -> None:
        self.tokens[queue].append(when + self.t.token_latency)

    def _fetch_wait(self, ar: int) -> int:
        """Cycles an instruction fetch's data waits behind the LOAD bursts whose addresses went out
        before its own (the DRAM answers in order). ``_dispatch`` times a burst before a LOAD's only if it
        addresses before them, so this pass has timed every LOAD burst addressed before it."""
        index = bisect.bisect_right(self.bursts, (ar, float("inf"))) - 1
        return max(0, self.bursts[index][1] - (ar + self.t.read_latency)) if index >= 0 else 0

    def _fetch_ar(self, cycle: int) -> bool:
        """Whether a fetch burst addresses in ``cycle``: as this pass has timed them, or beyond, the previous pass's."""
        return cycle in self.fetch_ar_set or (cycle > self.fetch_horizon and cycle in self.previous_fetch_ar_set)

    def _fetches_between(self, after: int, before: int) -> list[tuple[int, int]]:
        """(AR handshake, R beats) of the fetch bursts addressed in (after, before): this pass's as far as
        it has timed them (in program order, which is not AR order), then the previous pass's."""
        timed = self.fetch_ars
        current = self.fetch_bursts[bisect.bisect_right(timed, after):bisect.bisect_left(timed, before)]
        after = max(after, self.fetch_horizon)
        return current + self.previous_fetch_bursts[bisect.bisect_right(self.previous_fetch_ars, after):
                                                    bisect.bisect_left(self.previous_fetch_ars, before)]

    def _request_burst(self, before: int | None = None) -> bool:
        """Time the next fetch burst: it asks once the last one is in and the buffer has room for it.
        With ``before``, only if its AR comes before that cycle (see ``_dispatch``)."""
        t = self.t
        address = self.program_address + self.requested * INSTRUCTION_BITS // 8
        page_left = (BURST_BOUNDARY - address % BURST_BOUNDARY) // (INSTRUCTION_BITS // 8)
        count = min(FETCH_BURST, len(self.units) - self.requested, page_left)
        room = self.requested - (FETCH_BUFFER - FETCH_BURST)     # this one dispatched, the level is low enough
        # The buffer's level is registered, so a dispatch makes room two cycles later.
        asking = max(self.fetch_free, self.dispatches[room] + 2 if room >= 0 else 0)
        # The load unit has priority on the AR grant and keeps it while it asks: the fetch's grant comes
        # in a cycle neither with nor right after a LOAD burst's handshake.
        ar = asking + t.fetch_request - 1
        while ar in self.load_ars or ar - 1 in self.load_ars:
            ar += 1
        if before is not None and ar >= before:
            self.fetch_horizon = ar - 1         # no fetch burst addresses before this one
            return False
        beats = count * self.instruction_beats
        first = ar + t.read_latency + self._fetch_wait(ar)
        self.fetch_bursts.append((ar, beats))
        self.fetch_ars.append(ar)
        self.fetch_ar_set.add(ar)
        self.fetch_horizon = ar
        self.bytes_read += beats * self.bus
        self.arrivals.extend(first + (index + 1) * self.instruction_beats - 1 + t.fetch_buffer
                             for index in range(count))
        self.requested += count
        self.fetch_free = first + beats - 1 + t.fetch_settle
        return True

    def _next_load_ar(self) -> int:
        """The earliest AR of a LOAD the load unit has not started."""
        start = self.load_walked if self.load_format is not None else self.unit_free[0]
        return start + self.t.load_checks + self.t.load_issue - 1

    def _dispatch(self, before: int | None = None) -> None:
        """Dispatch every instruction whose dispatch is known: its queue has room once the instruction of
        its unit ``QUEUE_DEPTHS`` before it has left the queue, which program order may not have timed yet.
        Called as an instruction leaves its queue, this times, before a LOAD's bursts, the fetch burst
        that its start lets ask (a LOAD taken from a full queue lets the next one in, whose dispatch makes
        room in the buffer): ``before``, that LOAD's first AR; later bursts wait for program order."""
        while True:
            # The next burst asks once the last is in and the buffer has room (so once the instruction
            # it makes room after is dispatched), whether or not the instructions before it can go.
            room = self.requested - (FETCH_BUFFER - FETCH_BURST)
            ahead = self.requested > self.position       # of the instruction being timed: only with ``before``
            if (self.requested < len(self.units) and room < len(self.dispatches) and (before is not None or not ahead)
                    and self._request_burst(before if ahead else None)):
                continue
            position = len(self.dispatches)
            if position == len(self.units) or not self.arrivals:
                return
            unit, rank = self.units[position], self.ranks[position]
            waits = None
            if unit is not None and rank >= QUEUE_DEPTHS[unit]:
                waits = self.starts.get(self.of_unit[unit][rank - QUEUE_DEPTHS[unit]])
                if waits is None:
                    return
            dispatch = max(self.arrivals.popleft(), self.dispatches[-1] + 1 if self.dispatches else 0)
            self.dispatches.append(max(dispatch, waits + 1) if waits is not None else dispatch)

    def run(self, instruction: Instruction) -> None:
        t, config = self.t, self.config
        self.position += 1
        if instruction.opcode == Opcode.END:
            self._dispatch()
            dispatch = self.dispatches[self.position]
            # The fetch unit reports END a cycle later (once no beat of its burst is due).
            self.end = max(dispatch + 1, *self.unit_free, self.last_retire, self.writer_idle) + t.done_latency
            self.instructions += 1
            return
        unit = unit_of(instruction.opcode)
        self._dispatch()
        dispatch = self.dispatches[self.position]
        decoded = self.decoded.get(id(instruction))
        if decoded is None:
            f = _fields(instruction)
            decoded = self.decoded[id(instruction)] = (f, *(_load_walk(f, self.bus) if unit == 0 else ((), 0)))
        f = decoded[0]
        ready = max(dispatch + 1, self.unit_free[unit])
        self.instructions += 1
        if unit == 0:
            token = self._pop("compute->load") if instruction.pop_next else 0
            # Taken once it has headed the queue HEAD_CHECK_CYCLES cycles (its checks registered from it).
            checked = max(dispatch + 1, self.load_taken + 1) + HEAD_CHECK_CYCLES
            start = max(ready, token, checked)
            # Taken while the last LOAD drains (hdl/load.py): while two of its bursts or more are in flight
            # (up to the cycle of the next to last one's last beat), and only once the LOAD before it has retired.
            alike = self.load_format is not None and self.load_format == _row_format(f)
            early = max(checked, token, self.load_walked, self.load_pads_written, self.load_retires[0] + 1)
            overlaps = alike and len(self.load_bursts) >= 2 and early <= self.load_bursts[-2]
            if overlaps:
                start = early
            self.load_taken = start
            issue = start + t.load_checks
            self.starts[self.position] = start
            walk, data_beats = decoded[1], decoded[2]
            leading_padding = next((index for index, beats in enumerate(walk) if beats), len(walk))
            self._dispatch(before=issue + leading_padding + t.load_issue - 1)     # its first AR
            done = issue
            bursts = self.load_bursts if overlaps else deque()
            streaming = deque(maxlen=MAX_OUTSTANDING_READS)     # R beat cycles of the bursts in flight
            merged = _mergeable(f, _row_beats(f, self.bus), self.bus)
            kept = None                   # the cycle a burst may take the AR grant the last one kept
            pads = deque(maxlen=2)        # write cycles of the last two padding rows (hdl/load.py's queue)
            for beats in walk:
                if beats == 0:
                    # A padding row is walked while the queue of two has room and written a cycle later or
                    # after, in a cycle without an R beat.
                    kept = None
                    if len(pads) == 2:
                        issue = max(issue, pads[0] + 1)
                    write = max(issue + 1, pads[-1] + 1 if pads else 0)
                    moved = True
                    while moved:
                        moved = False
                        for first, end in streaming:
                            if first <= write < end:
                                write, moved = end, True
                    pads.append(write)
                    issue += 1
                    continue
                if len(bursts) == MAX_OUTSTANDING_READS:
                    issue = max(issue, bursts.popleft() + 1)
                if kept is not None and issue <= kept:
                    ar = kept
                else:
                    # A fetch granted as this burst asks (or one cycle before) holds the grant for its handshake.
                    while self._fetch_ar(issue) or self._fetch_ar(issue + 1):
                        issue = (issue + 1 if self._fetch_ar(issue + 1) else issue) + 1
                    ar = issue + t.load_issue - 1
                # The load unit keeps the grant after a handshake: a burst that needs no plan (not
                # merged) may then follow in the next cycle.
                kept = ar + 1 if not merged else None
                self.load_ars.add(ar)
                channel = self.read_bus
                for fetch_ar, fetch_beats in self._fetches_between(self.last_burst_ar, ar):   # their beats come first
                    channel = max(channel, fetch_ar + t.read_latency) + fetch_beats
                first = max(ar + t.read_latency, channel)
                self.read_bus = done = first + beats
                self.last_burst_ar = ar
                bursts.append(done - 1)
                streaming.append((first, done))
                # Padding rows still queued are written only in cycles without an R beat: this burst's
                # beats put them off (the walker then waits at the next padding row, the queue full).
                written = -1
                for index, write in enumerate(pads):
                    written = pads[index] = max(done if first <= write < done else write, written + 1)
                self.bursts.append((ar, done))
                issue = ar + 1
            self.bytes_read += data_beats * self.bus
            self.load_pads_written = pads[-1] + 1 if pads else 0
            retire = max(issue, done, self.load_retires[1] + 1, self.load_pads_written) + t.load_overhead - 2
            self.unit_free[0] = retire + 1
            self.load_walked, self.load_format, self.load_bursts = issue, _row_format(f), bursts
            self.load_retires.append(retire)
            # ... and a burst that asks before the next LOAD can address its first.
            self._dispatch(before=self._next_load_ar())
            if instruction.push_next:
                self._push("load->compute", retire)
        elif unit == 1:
            waits = [ready]
            if instruction.pop_prev:
                token = self._pop("load->compute")
                self.load_stall += max(0, token - ready)
                waits.append(token)
            if instruction.pop_next:
                token = self._pop("store->compute")
                self.store_stall += max(0, token - ready)
                waits.append(token)
            if len(self.compute_released) == self.in_flight:
                waits.append(self.compute_released[0])
            # Taken once it has headed the queue CHECK_CYCLES cycles (its checks registered from it).
            waits.append(max(dispatch + 1, self.compute_taken + 1) + CHECK_CYCLES)
            start = self.compute_taken = max(waits)
            self.starts[self.position] = start
            self._dispatch(before=self._next_load_ar())
            beats = f["beats"] if instruction.opcode == Opcode.COMPUTE else 0
            if beats == 0:
                self.unit_free[1] = start + t.compute_issue
                self.last_retire = max(start + t.compute_issue + t.sync_latency, self.last_retire + 1)
                self.compute_released.append(self.last_retire + 1)
            else:
                rows = config.array.rows
                os = config.array.dataflow == Dataflow.OS
                drain = stream_cycles(config.array, 1, beats) - beats - (0 if os else rows)
                check = start + 1
                for run in range(f["repeat"] + 1):
                    if run:
                        # A repeating COMPUTE starts its next run a cycle later at the earliest, once its
                        # queues and a record slot have room (the take reserved the first run's slot).
                        check += 1
                        if len(self.compute_released) == self.in_flight:
                            check = max(check, self.compute_released[0])
                    # The check queues a weight job and an activation job; each reader starts its next
                    # job once it has issued the previous one's reads.
                    if len(self.act_jobs) == self.in_flight:
                        check = max(check, self.act_jobs[0])
                    if len(self.weight_jobs) == self.in_flight:
                        check = max(check, self.weight_jobs[0])
                    self.unit_free[1] = check + 1
                    job = max(check + t.job_latency, self.act_reading)
                    if os and bool(f["depthwise"]) != self.streaming_depthwise:
                        # Rows switch between the transposer and its bypass once the previous job's beats are in.
                        job = max(job, self.array_free)
                        self.streaming_depthwise = bool(f["depthwise"])
                    self.act_jobs.append(job)
                    weights = max(check + 1, self.weights_free)
                    self.weight_jobs.append(weights)
                    if os:
                        # Weights go in lockstep with the activations, transposed ones R rows behind the reader
                        # (a paired COMPUTE's secondary rows too: their reader starts and streams with this one).
                        transposed = 0 if f["depthwise"] else rows
                        enter = max(self.array_free, job + t.act_latency + transposed, weights + t.act_latency)
                        self.array_free = enter + beats
                        self.weights_free = max(weights + beats, self.array_free - RowReader.DEPTH - 1)
                        self.act_reading = max(job + beats, self.array_free - transposed - RowReader.DEPTH - 1)
                    else:
                        # R weight rows fill the shadow registers once the previous tile's first beat has passed.
                        preload = max(weights + t.act_latency, self.shadow_free)
                        self.weights_free = max(weights + rows, preload + rows - RowReader.DEPTH - 1)
                        enter = max(self.array_free, job + t.act_latency, preload + rows)
                        self.shadow_free = enter      # the next preload may start as this tile's first beat enters
                        self.array_free = enter + beats
                        self.act_reading = max(job + beats, self.array_free - RowReader.DEPTH - 1)
                    self.last_retire = max(self.array_free - 1 + drain + t.result_latency, self.last_retire + 1)
                    self.array_busy += beats
                    # A slot frees as the run's last result row leaves the array (RESULT_LATENCY before its
                    # retirement) and shows a cycle later.
                    self.compute_released.append(self.last_retire - t.result_latency + 1)
            if instruction.push_prev:
                self._push("compute->load", self.last_retire)
            if instruction.push_next:
                self._push("compute->store", self.last_retire)
        else:
            start = max(ready, self._pop("compute->store") if instruction.pop_prev else 0)
            if instruction.opcode == Opcode.STORE and len(self.store_takes) == self.store_takes.maxlen:
                start = max(start, self.store_takes[0] + 1)     # the job queue to the address stage is full
            self.starts[self.position] = start
            self._dispatch(before=self._next_load_ar())
            total = f["rows"] * f["blocks"] * f["groups"] if instruction.opcode == Opcode.STORE else 0
            if total == 0:
                # CONFIG, or a STORE without rows: once the post-processor and the writer have emptied (a
                # flag registered once more).
                start = max(start, self.writer_idle + 1, self.rows_entered + t.post_latency - t.store_read_latency + 1)
                retire = start + 1 + (instruction.opcode == Opcode.STORE) * (1 + t.descriptor_latency + t.store_compare)
                self.unit_free[2] = retire + 1
            else:
                stored = stored_bytes(f["channels"], ArithMode.INT8)
                self.bytes_written += total * stored
                row_beats = -(-(f["byte_offset"] + stored) // self.bus)
                bursts, data_beats = _bursts(f, row_beats, self.bus)
                # The front end checks the STORE and starts reading its rows once the previous STORE's
                # have all been read and those of the STORE before (whose parameter bank it takes) have
                # left the post-processor. The address stage issues an AW burst per cycle (merged ones
                # per two, below), a cycle after it takes the STORE; the data stage sends W beats back to
                # back from the first post-processed row on, after the previous STORE's (and its write
                # responses, if it pushed a token).
                check = max(start + 1 + t.descriptor_latency + t.store_compare, self.rows_read, self.rows_posted[0])
                take = max(check + t.store_job_latency, self.address_free)
                self.store_takes.append(take)
                # Merged bursts are planned a cycle ahead: the first a cycle after the walk starts, the
                # others a cycle after each AW handshake.
                planning = int(_mergeable(f, row_beats, self.bus))
                self.address_free = take + len(bursts) * (1 + planning) + 1
                first_beat = max(take + t.store_write_latency + planning, check + t.post_latency, self.writer_free)
                last_beat = first_beat + data_beats - 1
                responded = last_beat + t.write_response
                if instruction.push_prev:        # answered first; no later STORE's bursts until then
                    retire = responded + 1
                    self.address_free = max(self.address_free, retire)
                else:
                    retire = last_beat + 1
                self.writer_free = retire
                self.writer_idle = max(self.writer_idle, responded + 1)
                # Rows enter the post-processor one per cycle, but no more than the output queue and the
                # pipeline hold ahead of the data stage.
                unhindered = check + t.store_read_latency + total
                self.rows_entered = max(unhindered,
                                        first_beat + (total - OUTPUT_ROWS) * row_beats - t.store_queue_slack)
                # The reader reads a row once it has room for it: the last a cycle before it enters, or, while
                # the output queue holds rows back, as far ahead as its buffer reaches.
                self.rows_read = self.rows_entered - (1 if self.rows_entered == unhindered
                                                      else min(total, RowReader.DEPTH) - 1)
                self.rows_posted = (self.rows_posted[1], self.rows_entered + PostProcessor.STAGES)
                self.unit_free[2] = check + 1
            if instruction.push_prev:
                self._push("store->compute", retire)

    def prediction(self) -> LayerPrediction:
        return LayerPrediction(self.end, self.array_busy, self.bytes_read, self.bytes_written, self.load_stall,
                               self.store_stall, self.instructions)


def predict_program(config: AcceleratorConfig, program: list[Instruction], timing: Timing = Timing(),
                    program_address: int = 0) -> LayerPrediction:
    """The counters of one program run from START (it must end with END), fetched from ``program_address``."""
    machine = None
    units = [None if instruction.opcode == Opcode.END else unit_of(instruction.opcode) for instruction in program]
    for _ in range(CONTENTION_PASSES):
        previous, machine = machine, _Machine(config, timing, units, program_address, machine)
        for instruction in program:
            machine.run(instruction)
        if previous is not None and machine.fetch_bursts == previous.fetch_bursts:
            break
    return machine.prediction()


def predict_net(net: CompiledNet, timing: Timing = Timing()) -> list[LayerPrediction]:
    """Each layer of ``net`` as run by ``sim.net_runner.run_layers`` (its own program, ending with END)."""
    return [predict_program(net.config, program, timing, address) for address, program in net.layer_programs()[1]]


def predicted_figures(net: CompiledNet, timing: Timing = Timing()) -> list[LayerFigures]:
    """``quant.report`` rows from the model (as ``layer_figures`` gives them from the RTL's counters)."""
    from .report import layer_figures
    return layer_figures(net, [p.counters() for p in predict_net(net, timing)])
