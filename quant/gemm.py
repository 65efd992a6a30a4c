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
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape

from hdl.config import AcceleratorConfig, Dataflow
from hdl.isa import COMPUTE, Instruction, Opcode, Target
from hdl.numerics import ArithMode, golden_gemm, neutral_padding, store_rows, stored_bytes

from .memory import MemoryImage, Region, pack_channel_records

__all__ = ["GemmLayer", "CompiledGemm", "compile_gemm", "PingPongScheduler"]

_MAX_BEATS = (1 << Shape.cast(COMPUTE.members["beats"]).width) - 1


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
    """Emits steps (loads + one compute) with ping-pong buffers and VTA-style tokens."""

    def __init__(self):
        self.program: list[Instruction] = []
        self.steps = 0
        self.tiles = 0
        self.pending_compute = None

    def step(self, loads: list[tuple[Opcode, dict]], compute: dict, *, starts_tile: bool, ends_tile: bool,
             store: list[dict]):
        """Loads for step s are emitted before the compute of step s-1 (software pipelining)."""
        for index, (opcode, fields) in enumerate(loads):
            self.program.append(Instruction(opcode, fields, pop_next=index == 0 and self.steps >= 2,
                                            push_next=index == len(loads) - 1))
        self._flush()
        self.pending_compute = (compute, starts_tile and self.tiles >= 2, ends_tile, store)
        self.steps += 1
        self.tiles += ends_tile

    def _flush(self):
        if self.pending_compute is None:
            return
        compute, wait_for_store, ends_tile, stores = self.pending_compute
        self.program.append(Instruction(Opcode.COMPUTE, compute, pop_prev=True, pop_next=wait_for_store,
                                        push_prev=True, push_next=ends_tile))
        for index, fields in enumerate(stores):
            self.program.append(Instruction(Opcode.STORE, fields, pop_prev=index == 0,
                                            push_prev=index == len(stores) - 1))
        self.pending_compute = None

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

    records = np.zeros((len(n_blocks) * cols, 16), dtype=np.uint8)
    records[:n] = pack_channel_records(layer.bias, layer.multiplier, layer.shift, layer.flip)
    channels = image.place_rows("channels", records.reshape(len(n_blocks), -1), dtype="u1")
    weights = [image.place_rows(f"w.n{b}", layer.w[:, block]) for b, block in enumerate(n_blocks)]
    outputs = [image.allocate_rows(f"y.n{b}", m, cols) for b in range(len(n_blocks))]
    scheduler = PingPongScheduler()
    scheduler.program.append(Instruction(Opcode.LOAD, {
        "target": Target.CHANNELS, "sram_addr": 0, "dram_addr": channels.address, "row_elems": cols,
        "rows": len(n_blocks), "row_stride": channels.row_stride, "blocks": 1, "block_stride": 0,
        "pad_before": 0, "pad_after": 0, "pad_value": 0}))
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
        chunk_blocks = min(len(k_blocks), min(act_half, weight_half, _MAX_BEATS) // rows)
        # When all of K fits one chunk, a block of weights stays loaded for every row block
        # (in the weight half of its channel block's parity): only activations stream.
        keep_weights = chunk_blocks == len(k_blocks)
        for b, n_block in enumerate(n_blocks):
            for m_block in _blocks(m, rows):
                acc_addr = (scheduler.tiles % 2) * acc_half
                chunks = _blocks(len(k_blocks), chunk_blocks)
                for c, chunk in enumerate(chunks):
                    half = scheduler.steps % 2
                    weight_addr = (b % 2 if keep_weights else half) * weight_half
                    beats = (chunk.stop - chunk.start) * rows
                    first_k = chunk.start * rows
                    real_k = min(k, first_k + beats) - first_k
                    pixels = m_block.stop - m_block.start
                    loads = [(Opcode.LOAD, {
                        "target": Target.ACTIVATIONS, "sram_addr": half * act_half,
                        "dram_addr": a_blocks.address + chunk.start * a_block_stride + m_block.start * a_blocks.row_stride,
                        "row_elems": rows, "rows": rows, "row_stride": a_blocks.row_stride,
                        "blocks": chunk.stop - chunk.start, "block_stride": a_block_stride, "pad_before": 0,
                        "pad_after": rows - pixels, "pad_value": act_pad})]
                    if not keep_weights or m_block.start == 0:
                        loads.append(_load(Target.WEIGHTS, weight_addr,
                                           weights[b].address + first_k * weights[b].row_stride, beats,
                                           weights[b].row_stride, n_block.stop - n_block.start, weight_pad,
                                           pad_after=beats - real_k))
                    compute = {"act_addr": half * act_half, "weight_addr": weight_addr, "acc_addr": acc_addr,
                               "beats": beats, "accumulate": int(c > 0), "mode": layer.mode}
                    last = c == len(chunks) - 1
                    scheduler.step(loads, compute, starts_tile=c == 0, ends_tile=last,
                                   store=[store(b, acc_addr, m_block.start, pixels)] if last else [])
    else:
        chunk = min(m, act_half, acc_half, _MAX_BEATS)
        for b, n_block in enumerate(n_blocks):
            for m_chunk in _blocks(m, chunk):
                acc_addr = (scheduler.tiles % 2) * acc_half
                beats = m_chunk.stop - m_chunk.start
                for j, k_block in enumerate(k_blocks):
                    half = scheduler.steps % 2
                    depth = k_block.stop - k_block.start
                    loads = [_load(Target.WEIGHTS, half * weight_half,
                                   weights[b].address + k_block.start * weights[b].row_stride, rows,
                                   weights[b].row_stride, n_block.stop - n_block.start, weight_pad,
                                   pad_after=rows - depth),
                             _load(Target.ACTIVATIONS, half * act_half,
                                   a_blocks.address + j * a_block_stride + m_chunk.start * a_blocks.row_stride,
                                   beats, a_blocks.row_stride, rows, act_pad)]
                    compute = {"act_addr": half * act_half, "weight_addr": half * weight_half, "acc_addr": acc_addr,
                               "beats": beats, "accumulate": int(j > 0), "mode": layer.mode}
                    last = j == len(k_blocks) - 1
                    scheduler.step(loads, compute, starts_tile=j == 0, ends_tile=last,
                                   store=[store(b, acc_addr, m_chunk.start, beats)] if last else [])
    program = scheduler.finish()
    program_region = image.place_program("program", program)
    return CompiledGemm(config, layer, image, program, program_region, outputs)
