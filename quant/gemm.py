"""Lower one quantized GEMM layer to a memory image and a double-buffered program.

``y = post(a @ w)``, with ``post`` the store path of ``numerics.store_rows``.
DRAM layouts are blocked so that every scratchpad row is one aligned DRAM
row (``quant.memory``), the same for both dataflows: ``a`` in blocks of R
reduction columns (``a.k``: block j is M rows of R lanes, K padded to a
multiple of R with neutral values), ``w`` in blocks of C output columns, the
output in blocks of C channels (``y.n<b>``, one row per output row, the first
``ceil(C/8)`` bytes in binary mode).

Schedule: the scratchpads and the accumulator are split in halves used
alternately (ping-pong); loads run one step ahead of compute, and stores of
one output tile overlap the computation of the next. Dependency tokens
(``hdl.isa``) enforce it, VTA style.
"""
from dataclasses import dataclass, replace

import numpy as np

from hdl.config import AcceleratorConfig, Dataflow
from hdl.isa import MAX_COMPUTE_BEATS, Instruction, Opcode, Target
from hdl.numerics import ArithMode, golden_gemm, neutral_padding, store_rows, stored_bytes

from .memory import MemoryImage, Region
from .program import IDLE_LOAD, load_channel_records

__all__ = ["GemmLayer", "CompiledGemm", "compile_gemm", "PingPongScheduler"]


@dataclass
class GemmLayer:
    """A quantized GEMM: int8 (or packed binary) operands and per-output-channel parameters."""
    a: np.ndarray             # (M, K)
    w: np.ndarray             # (K, N)
    bias: np.ndarray          # (N,)
    multiplier: np.ndarray    # (N,)
    shift: np.ndarray         # (N,)
    flip: np.ndarray          # (N,)
    mode: ArithMode = ArithMode.INT8
    zero_point: int = 0
    clamp_min: int = -128
    clamp_max: int = 127


@dataclass
class CompiledGemm:
    config: AcceleratorConfig
    layer: GemmLayer
    image: MemoryImage
    program: list[Instruction]
    program_region: Region
    outputs: list[Region]          # one per block of C output channels

    def _row_elems(self, block: int) -> int:
        """Bytes per output row of channel block ``block`` (binary packs 8 channels a byte)."""
        return stored_bytes(_block_channels(self.layer, self.config.array.cols, block), self.layer.mode)

    def read_outputs(self, dram: bytes) -> list[np.ndarray]:
        """The output blocks as stored in ``dram``."""
        image = MemoryImage(self.image.alignment, bytearray(dram), self.image.regions)
        return [image.read_rows(region, self._row_elems(block)) for block, region in enumerate(self.outputs)]

    def expected_outputs(self) -> list[np.ndarray]:
        """The output blocks the golden model says ``read_outputs`` must return."""
        layer, cols = self.layer, self.config.array.cols
        product = golden_gemm(layer.a, layer.w, layer.mode)
        blocks = []
        for block in range(len(self.outputs)):
            channels = slice(block * cols, block * cols + _block_channels(layer, cols, block))
            stored = store_rows(product[:, channels], layer.bias[channels], layer.multiplier[channels],
                                layer.shift[channels], layer.flip[channels], layer.mode, layer.zero_point,
                                layer.clamp_min, layer.clamp_max)
            blocks.append(stored[:, :self._row_elems(block)].astype(np.int64))
        return blocks


def _block_channels(layer: GemmLayer, cols: int, block: int) -> int:
    return min(cols, layer.w.shape[1] - block * cols)


def _blocks(extent: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, extent)) for start in range(0, extent, size)]


class PingPongScheduler:
    """Emits steps (loads, then the computes that use them) with ping-pong buffers and VTA-style tokens.

    A step's loads fill one scratchpad half; its computes (one or more output
    tiles reading that half) run while the next step's loads fill the other.
    Output tiles take turns in ``acc_buffers`` accumulator regions (``acc_region``;
    default the two halves), so that many tiles may be computed before the first is
    stored. With ``buffers`` > 2 the scratchpad is split in that many regions
    (``region``) and loads may run ``buffers - 1`` steps ahead of the computes.
    """

    def __init__(self, buffers: int = 2, acc_buffers: int = 2):
        if buffers < 2 or acc_buffers < 2:
            raise ValueError(f"A step pipeline needs at least 2 buffers of each kind, not {buffers} and {acc_buffers}")
        self.buffers, self.acc_buffers = buffers, acc_buffers
        self.program: list[Instruction] = []
        self.steps = 0
        self.tiles = 0
        self.released = 0          # steps whose compute->load token a load has taken
        self.pending: list[tuple] = []      # the last step's computes, emitted after the next step's loads
        self.emitted: list[int] = []        # program indices of the last emitted step's computes

    def step(self, loads: list[tuple[Opcode, dict]], compute: dict, *, starts_tile: bool, ends_tile: bool,
             store: list[dict]):
        """A step with one compute."""
        self.step_many(loads, [(compute, starts_tile, ends_tile, store)])

    def step_many(self, loads: list[tuple[Opcode, dict]], computes: list[tuple[dict, bool, bool, list[dict]]],
                  stages: list[list[tuple[Opcode, dict]]] = (), reuse: bool = False,
                  stage_computes: list[int] | None = None):
        """Loads for step s are emitted before the computes of step s-1 (software pipelining).

        ``computes`` are (fields, starts_tile, ends_tile, stores); a tile's accumulator
        region is ``acc_region(i)`` for the i-th of them that starts a tile. An entry may add
        (waits, releases): whether the compute waits for a store token (default: it starts
        a tile after the first ``acc_buffers``) and whether its last store gives one back (default yes),
        for callers that hand accumulator regions over a round of tiles at a time.
        ``stages`` are loads after ``loads`` that the computes after them (``stage_computes[j]`` after
        stage j, default one, the rest after the last) need up to their stage, so that they start as
        soon as it is in: each stage gives its own token, and its computes follow it in program order
        (fetched in order, they need not wait until the later stages are in the load unit's queue).
        With ``reuse``, stage j overwrites what the previous step's compute j (and, for the last
        stage, all of them) and every earlier step read: the previous step's computes each give a
        token back, stage j waits for its compute's (the weights of one output block replaced as
        soon as the last tile that used them has left the array).
        """
        counts = stage_computes or [1] * len(stages)
        if reuse and (not stages or any(count != 1 for count in counts)):
            raise ValueError("reuse needs the stages that overwrite the previous step's operands, "
                             "a compute each")
        firsts = [sum(counts[:index]) for index in range(len(stages))]     # each stage's first compute
        # A step's region was last used ``buffers`` steps back: its first load takes that step's token,
        # unless an earlier reuse has taken it.
        recycles = bool(loads) and self.steps - self.buffers == self.released
        self.released += recycles
        self.program += [Instruction(opcode, fields, pop_next=index == 0 and recycles)
                         for index, (opcode, fields) in enumerate(loads)]
        entries = []
        for index, (compute, starts_tile, ends_tile, stores, *handover) in enumerate(computes):
            waits, releases = handover or (starts_tile and self.tiles >= self.acc_buffers, True)
            takes_load_token = index in firsts if stages else index == 0
            entries.append((compute, takes_load_token, waits, ends_tile, stores, releases))
            self.tiles += ends_tile
        self.steps += 1
        if not stages:
            if loads:       # the computes wait for all of them
                self.program[-1] = replace(self.program[-1], push_next=True)
            self._flush()
            self.pending = entries
            return
        if reuse:
            # The previous step's computes go first in program order, since the stages wait for them, and
            # each gives a token; zero-row loads take the tokens of the steps before it that no load has taken.
            self._flush()
            for index in self.emitted:
                self.program[index] = replace(self.program[index], push_prev=True)
            self.program += [Instruction(Opcode.LOAD, IDLE_LOAD, pop_next=True)
                             for _ in range(self.steps - 2 - self.released)]
            self.released = self.steps - 1
        previous, taken = len(self.emitted), 0
        for index, stage in enumerate(stages):
            # Tokens of the previous step taken once this stage is done: its own compute's, all for the last.
            if reuse:
                wanted = previous if index == len(stages) - 1 else min(index + 1, previous)
                self.program += [Instruction(Opcode.LOAD, IDLE_LOAD, pop_next=True)
                                 for _ in range(wanted - taken - 1)]
            first = len(self.program)
            self.program += [Instruction(opcode, fields) for opcode, fields in stage]
            if reuse and wanted > taken:
                self.program[first] = replace(self.program[first], pop_next=True)
                taken = wanted
            self.program[-1] = replace(self.program[-1], push_next=True)
            if index == 0:
                self._flush()       # the previous step's computes, if they are still to come
                self.emitted = []
            last = index == len(stages) - 1
            for number in range(firsts[index], len(entries) if last else
                                min(firsts[index] + counts[index], len(entries))):
                self._emit(entries[number], gives=number == len(entries) - 1)

    def _flush(self):
        """Emit the pending computes (the previous step's): the last frees the scratchpad region."""
        if self.pending:
            self.emitted = []
            for index, entry in enumerate(self.pending):
                self._emit(entry, gives=index == len(self.pending) - 1)
            self.pending = []

    def _emit(self, entry: tuple, gives: bool):
        """A compute (it takes its loads' token; ``gives`` a compute->load token) and its stores, which
        take the compute->store token it gives (computes retire in order: a STORE after the last of
        several tiles' computes may write them all)."""
        compute, takes_load_token, wait_for_store, _, stores, releases = entry
        self.emitted.append(len(self.program))
        self.program.append(Instruction(Opcode.COMPUTE, compute, pop_prev=takes_load_token,
                                        pop_next=wait_for_store, push_prev=gives, push_next=bool(stores)))
        for store_index, fields in enumerate(stores):
            self.program.append(Instruction(Opcode.STORE, fields, pop_prev=store_index == 0,
                                            push_prev=releases and store_index == len(stores) - 1))

    @property
    def region(self) -> int:
        """The scratchpad region (of ``buffers``) the next step's loads fill."""
        return self.steps % self.buffers

    def acc_region(self, offset: int = 0) -> int:
        """The accumulator region (of ``acc_buffers``) of the tile ``offset`` tiles after the next one."""
        return (self.tiles + offset) % self.acc_buffers

    def finish(self, end: bool = True) -> list[Instruction]:
        """The program, ending with END unless ``end`` is false (a layer of a longer program)."""
        self._flush()
        if end:
            self.program.append(Instruction(Opcode.END, {}))
        return self.program


def _load(target, sram_addr, region_address, rows, row_stride, row_elems, pad_value=0, pad_after=0):
    return (Opcode.LOAD, {"target": target, "sram_addr": sram_addr, "dram_addr": region_address,
                          "row_elems": row_elems, "rows": rows, "row_stride": row_stride, "blocks": 1,
                          "block_stride": 0, "pad_before": 0, "pad_after": pad_after, "pad_value": pad_value})


def compile_gemm(config: AcceleratorConfig, layer: GemmLayer) -> CompiledGemm:
    """Lay out ``layer`` in a memory image and build its program; raises ``ValueError`` if it cannot fit."""
    array = config.array
    rows, cols = array.rows, array.cols
    (m, k), n = layer.a.shape, layer.w.shape[1]
    if layer.w.shape[0] != k:
        raise ValueError(f"GEMM operands must be (M, K) and (K, N), not {layer.a.shape} and {layer.w.shape}")
    if layer.mode not in array.modes:
        raise ValueError(f"Mode {layer.mode.name} is not generated (arith {array.arith.value})")
    n_blocks = _blocks(n, cols)
    if len(n_blocks) > config.channel_rows:
        raise ValueError(f"{n} output channels need {len(n_blocks)} channel rows; the accelerator has "
                         f"{config.channel_rows} (of {cols} channels each)")
    act_half, weight_half, acc_half = config.act_rows // 2, config.weight_rows // 2, config.acc_rows // 2
    if min(act_half, weight_half, acc_half) < rows:
        raise ValueError("Ping-pong buffering needs at least 2R rows in every scratchpad and the accumulator")
    act_pad, weight_pad = neutral_padding(layer.mode)
    image = MemoryImage(config.bus_bytes)

    channels = load_channel_records(image, "channels", cols, layer.bias, layer.multiplier, layer.shift, layer.flip)
    weights = [image.place_rows(f"w.n{b}", layer.w[:, block]) for b, block in enumerate(n_blocks)]
    outputs = [image.allocate_rows(f"y.n{b}", m, cols) for b in range(len(n_blocks))]
    scheduler = PingPongScheduler()
    scheduler.program.append(channels)
    scheduler.program.append(Instruction(Opcode.CONFIG, {
        "mode": layer.mode, "zero_point": layer.zero_point, "clamp_min": layer.clamp_min,
        "clamp_max": layer.clamp_max}))

    def store(b, acc_addr, first_row, count):
        return {"acc_addr": acc_addr, "channel_row": b, "dram_addr": outputs[b].address + first_row * outputs[b].row_stride,
                "channels": _block_channels(layer, cols, b),
                "rows": count, "row_stride": outputs[b].row_stride, "blocks": 1, "block_stride": 0}

    k_blocks = _blocks(k, rows)
    a_padded = np.full((m, len(k_blocks) * rows), act_pad, dtype=np.int64)
    a_padded[:, :k] = layer.a
    a_blocks = image.place_rows("a.k", a_padded.reshape(m, -1, rows).transpose(1, 0, 2).reshape(-1, rows))
    a_block_stride = m * a_blocks.row_stride

    if array.dataflow == Dataflow.OS:
        # A COMPUTE takes R rows (pixels) of each of its reduction blocks; beats cover whole blocks.
        chunk_blocks = min(len(k_blocks), min(act_half, weight_half, MAX_COMPUTE_BEATS) // rows)
        chunks = _blocks(len(k_blocks), chunk_blocks)
        # When all of K fits one chunk, the weights of a group of channel blocks stay loaded (in the
        # weight half of the group's parity) for every row block, and each activation tile loaded
        # serves every block of the group: one DRAM read per group instead of per channel block.
        keep_weights = len(chunks) == 1
        k_rows = chunk_blocks * rows
        group = max(1, min(len(n_blocks), weight_half // k_rows)) if keep_weights else 1
        for g, first_block in enumerate(range(0, len(n_blocks), group)):
            blocks = range(first_block, min(first_block + group, len(n_blocks)))
            for m_block in _blocks(m, rows):
                pixels = m_block.stop - m_block.start
                tiles = [scheduler.acc_region(j) * acc_half for j in range(len(blocks))]
                for c, chunk in enumerate(chunks):
                    half = scheduler.steps % 2
                    beats = (chunk.stop - chunk.start) * rows
                    first_k = chunk.start * rows
                    real_k = min(k, first_k + beats) - first_k
                    loads = [(Opcode.LOAD, {
                        "target": Target.ACTIVATIONS, "sram_addr": half * act_half,
                        "dram_addr": a_blocks.address + chunk.start * a_block_stride + m_block.start * a_blocks.row_stride,
                        "row_elems": rows, "rows": rows, "row_stride": a_blocks.row_stride,
                        "blocks": chunk.stop - chunk.start, "block_stride": a_block_stride, "pad_before": 0,
                        "pad_after": rows - pixels, "pad_value": act_pad})]
                    computes = []
                    for j, b in enumerate(blocks):
                        weight_addr = ((g % 2) * weight_half + j * k_rows) if keep_weights else half * weight_half
                        if not keep_weights or m_block.start == 0:
                            loads.append(_load(Target.WEIGHTS, weight_addr,
                                               weights[b].address + first_k * weights[b].row_stride, beats,
                                               weights[b].row_stride, n_blocks[b].stop - n_blocks[b].start,
                                               weight_pad, pad_after=beats - real_k))
                        last = c == len(chunks) - 1
                        computes.append(({"act_addr": half * act_half, "weight_addr": weight_addr,
                                          "acc_addr": tiles[j], "beats": beats, "accumulate": int(c > 0),
                                          "mode": layer.mode}, c == 0, last,
                                         [store(b, tiles[j], m_block.start, pixels)] if last else []))
                    scheduler.step_many(loads, computes)
    else:
        chunk = min(m, act_half, acc_half, MAX_COMPUTE_BEATS)
        # Two channel blocks per group (one per accumulator half): each activation block loaded
        # serves both, halving the activation traffic.
        group = min(2, len(n_blocks), weight_half // rows)
        for first_block in range(0, len(n_blocks), group):
            blocks = range(first_block, min(first_block + group, len(n_blocks)))
            for m_chunk in _blocks(m, chunk):
                beats = m_chunk.stop - m_chunk.start
                tiles = [scheduler.acc_region(j) * acc_half for j in range(len(blocks))]
                for j, k_block in enumerate(k_blocks):
                    half = scheduler.steps % 2
                    depth = k_block.stop - k_block.start
                    loads = [_load(Target.WEIGHTS, half * weight_half + index * rows,
                                   weights[b].address + k_block.start * weights[b].row_stride, rows,
                                   weights[b].row_stride, n_blocks[b].stop - n_blocks[b].start, weight_pad,
                                   pad_after=rows - depth) for index, b in enumerate(blocks)]
                    loads.append(_load(Target.ACTIVATIONS, half * act_half,
                                       a_blocks.address + j * a_block_stride + m_chunk.start * a_blocks.row_stride,
                                       beats, a_blocks.row_stride, rows, act_pad))
                    last = j == len(k_blocks) - 1
                    scheduler.step_many(loads, [
                        ({"act_addr": half * act_half, "weight_addr": half * weight_half + index * rows,
                          "acc_addr": tiles[index], "beats": beats, "accumulate": int(j > 0), "mode": layer.mode},
                         j == 0, last, [store(b, tiles[index], m_chunk.start, beats)] if last else [])
                        for index, b in enumerate(blocks)])
    program = scheduler.finish()
    program_region = image.place_program("program", program)
    return CompiledGemm(config, layer, image, program, program_region, outputs)
