"""Lowering of depthwise convolution onto the array's depthwise mode (``ArrayConfig.depthwise``).

A depthwise COMPUTE correlates every column's channel with the taps of its
weight lane (``hdl.isa.COMPUTE``), so COMPUTEs do one window row ``dy`` of a
channel block for several output rows at once (WS: one COMPUTE streams them
all past R stationary taps; OS: R-beat COMPUTEs of T taps each produce the
next R - T + 1 of them, below):

* Phases: with horizontal stride s, output ``ox`` reads input columns
  ``s * ox + dx``; tap ``dx = p + s * k`` belongs to phase ``p`` and reads
  ``s * (ox + k) + p``. Read every s-th activation row from ``p`` on
  (COMPUTE ``act_stride_log2``), a phase's columns make its taps consecutive
  beats: stationary row ``k`` holds ``w[dy, p + s * k]`` (the other rows 0,
  which multiply whatever the tail of the stream holds by 0). Window rows
  split the same way: ``dy = q + sy * j`` of vertical phase ``q`` reads input
  rows ``sy * (oy + j) + q``.
* A load group (tile, q) LOADs, for the tile's T output rows and the j > 0
  below them, the input rows of phase q, each as ``s * Wp`` consecutive pixels
  (``Wp = out_w + ceil(kw / s) - 1``; borders are padding), so the beat ``r *
  Wp + ox`` of a COMPUTE from row ``j * s * Wp + p`` is pixel ``s * ox + p`` of
  row ``r + j``. Each (j, p) of the group is a COMPUTE of ``(T - 1) * Wp +
  out_w - 1 + R`` beats that accumulates into accumulator row ``r * Wp + ox``
  (a tile's first COMPUTE overwrites). Rows ``ox >= out_w`` straddle two image
  rows. At stride 1 a 3x3 window is one load and three COMPUTEs per tile, at
  stride 2 two loads and six COMPUTEs. On OS each of those is a chain of
  R-beat runs with ``taps`` T = ceil(kw / s), the one from beat ``c``
  writing accumulator rows ``c .. c + R - T`` (chunks of R - T + 1; the last
  chunk's rows past the tile are never stored): one COMPUTE that repeats
  (``hdl.isa.COMPUTE`` ``repeat``; a chain of more than 256 runs is several).
* Paired (arrays with ``ArrayConfig.paired``, 3-wide windows at
  horizontal stride 2): a window row is one chain (OS) or COMPUTE (WS), not
  one per phase. A paired COMPUTE (``hdl.isa.COMPUTE``) multiplies tap 0 by a
  secondary stream read ``PAIRED_SECONDARY_OFFSET`` rows after the primary
  one, so with the primary stream from two rows before the window row's first
  pixel, output ``ox``'s pixels ``2 ox + 1`` (secondary), ``2 ox`` and ``2 ox
  + 2`` (primary) are taps 0, 1 and 2: weight rows ``w[dy, 1], w[dy, 0], w[dy,
  2]`` (OS: chunks of R - 2 outputs), each beat bringing a column an even and
  an odd pixel (a 3x3 window: three COMPUTEs or chains per tile instead of
  six; WS: no stacks, as only stationary row 0 meets the secondary stream). A load group's rows
  start two rows into its slot, so that the primary stream's first row (read,
  never used) is the slot's own, not the other slot's, which a LOAD may be
  writing meanwhile.
* Stacks (WS): window row j of a load group is ``j * Wp`` beats further down
  the same stream, so one COMPUTE takes a stack of window rows when stationary
  row ``j' * Wp + k`` holds the stack's j'-th row's tap k, while ``(stack - 1)
  * Wp + T <= R``. Narrower rows stack more: the output rows are split into
  segments of ``w`` pixels (``Wp = w + T - 1``, each segment loading its own
  columns), the width chosen by an estimate of each (tile, segment)'s compute
  beats against the bus beats of its loads and instructions. On a 16x16 array
  a 3x3 stride-1 window takes 4-pixel segments and one COMPUTE of all three
  rows (6 beats per 4 outputs instead of 3 x (out_w + 2) per out_w), stride 2
  7-pixel ones and stacks of the vertical phase's two rows (four COMPUTEs
  instead of six). OS keeps whole rows and one window row per COMPUTE: a
  stack there takes Wp more taps from each chunk's R - T + 1 results.
* STOREs: without segments, two per tile: the first T - 1 output rows as Wp
  pixels each (a row's straddling pixels land on the next row's first pixels,
  which that row then overwrites in the same STORE), then the last row's
  ``out_w``. With segments, one per tile and segment whose straddling pixels
  land on the next segment's first pixels of the same rows (which that
  segment's STORE then overwrites), and the last segment's rows one STORE each.

* Folds (``Fold``): a channel block of at most half its lanes, made by a pool, is read from a copy the
  pool writes with the lower half of the output rows' inputs in the lower lanes and the upper half's in
  the upper lanes, so the block takes one pass over half the rows; its upper lanes' STOREs land a pixel
  row early at a byte offset.

Load groups take turns in up to ``MAX_SLOTS`` slots of the activation and
weight scratchpads (a group's stationary tiles and input rows load while the
groups before it compute), tiles in as many of the accumulator (a tile's
stores overlap the next tiles' computes), with tokens as in ``quant.gemm``. A
LOAD into a slot whose last LOAD had the same layout writes its data rows only:
the padding rows' zeros stay, and padding rows cost the load unit most (each
waits for the reads in flight).
"""
from dataclasses import dataclass, replace

import numpy as np

from hdl.config import AcceleratorConfig, Dataflow
from hdl.isa import (COMPUTE, INSTRUCTION_BITS, MAX_COMPUTE_BEATS, MAX_COMPUTE_REPEAT, MAX_SRAM_GAP,
                     PAIRED_SECONDARY_OFFSET, STORE_BYTE_OFFSET_BITS, Instruction, Opcode, Target, os_depthwise_results,
                     target_element_bytes)
from hdl.numerics import ArithMode

from .memory import FeatureMap, MemoryImage
from .program import records_row
from .window import window_fields

__all__ = ["DepthwisePlan", "plan_depthwise", "lower_depthwise_array", "Fold", "fold_block"]


class DepthwisePlan:
    """How a depthwise layer maps onto the array: phases, segments, Wp, stacks and output rows per tile.

    Raises ``ValueError`` (saying why) where the layer does not fit the array's depthwise mode.
    """

    def __init__(self, config: AcceleratorConfig, kernel: tuple[int, int], stride: tuple[int, int],
                 out_height: int, out_width: int):
        self.rows = rows = config.array.rows
        self.os = config.array.dataflow == Dataflow.OS
        self.kernel, self.stride, self.out_width = kernel, stride, out_width
        self.stride_log2 = stride[1].bit_length() - 1
        if 1 << self.stride_log2 != stride[1] or self.stride_log2 >= 1 << COMPUTE.members["act_stride_log2"]:
            raise ValueError(f"The depthwise mode reads every s-th activation row for s = 1, 2, 4 or 8, "
                             f"not a horizontal stride of {stride[1]}")
        taps_per_phase = -(-kernel[1] // stride[1])
        if taps_per_phase > rows:
            raise ValueError(f"A {kernel[1]}-wide window at stride {stride[1]} needs {taps_per_phase} taps per "
                             f"column; the array has {rows} rows")
        # A 3-wide window at stride 2 takes paired COMPUTEs where the array has them and rows for their 3 taps:
        # both phases in one chain.
        self.paired = config.array.paired and kernel[1] == 3 and stride[1] == 2 and kernel[1] <= rows
        # A COMPUTE's taps (OS: weight rows that count); an output row's window reaches halo pixels per
        # phase past its last output (Wp = segment width + halo).
        self.taps = kernel[1] if self.paired else taps_per_phase
        self.halo = taps_per_phase - 1
        # OS: a COMPUTE's results; a tile's last chunk runs past its outputs by up to chunk - 1 rows.
        self.chunk = os_depthwise_results(rows, self.taps)
        self.phases = 1 if self.paired else min(stride[1], kernel[1])
        # Rows a COMPUTE reads before its window row's first pixel (a load group's rows start this far into
        # their slot), and the last first row of its streams (its reads end R - 1 strides after it).
        starts = [start for phase in range(self.phases) for start in self.stream_starts(phase)]
        self.lead, self.last_start = max(0, -min(starts)), max(starts)
        # Window rows of each vertical phase: one load group each.
        self.groups = [list(range(q, kernel[0], stride[0])) for q in range(min(stride[0], kernel[0]))]
        self.extra_rows = max(map(len, self.groups)) - 1
        self.out_height = out_height
        self.act_half, self.acc_half = config.act_rows // 2, config.acc_rows // 2
        self.weight_half = config.weight_rows // 2
        self.pixel_beats = -(-min(rows, config.array.cols) // config.bus_bytes)
        self.instruction_beats = INSTRUCTION_BITS // 8 // config.bus_bytes
        # WS: narrower segments of the output rows let a COMPUTE stack more window rows (below); OS keeps
        # whole rows (a stack there takes Wp more taps of each R-beat COMPUTE's R - taps + 1 results).
        widths = sorted({-(-out_width // count) for count in range(1, out_width + 1)}, reverse=True)
        best, cost = None, None
        for width in widths[:1] if self.os else widths:
            # A segment's straddling rows must land on the next segment's pixels of the same row (_tile_stores).
            if width < out_width and out_width - (-(-out_width // width) - 1) * width < taps_per_phase - 1:
                continue
            layout = self._layout(width)
            if isinstance(layout, str):
                if width == out_width:
                    error = layout
                continue
            if cost is None or layout[-1] < cost:
                best, cost = layout[:-1], layout[-1]
        if best is None:
            raise ValueError(error)
        self.segment_width, self.width, self.stack, self.tile_rows, self.read_slack = best
        self.segments = [(first, min(self.segment_width, out_width - first))
                         for first in range(0, out_width, self.segment_width)]
        self.stacks = [[dys[j:j + self.stack] for j in range(0, len(dys), self.stack)] for dys in self.groups]

    def _layout(self, segment_width: int) -> tuple | str:
        """(segment width, Wp, stack, tile rows, read slack, estimated cycles per channel block), or why it
        does not fit. The read slack is the cycles a channel block's COMPUTEs outlast its bus beats.

        A WS COMPUTE stacks ``stack`` window rows of a load group: window row ``j`` of the
        stack is ``j * Wp`` beats down the stream from the first, so stationary row ``j * Wp + k``
        holds its tap k, while ``(stack - 1) * Wp + taps <= R``.
        """
        rows, stride = self.rows, self.stride
        width = segment_width + self.halo
        # (A paired WS COMPUTE's secondary stream meets stationary row 0 only: no stacks.)
        stack = 1 if self.os or self.paired else min(self.extra_rows + 1, (rows - self.taps) // width + 1)
        tile_rows = min(self.out_height, ((self.act_half - self.lead) // stride[1] - rows) // width - self.extra_rows,
                        (self.acc_half - segment_width - self.chunk + 1) // width + 1 if self.os
                        else self.acc_half // width,
                        (MAX_COMPUTE_BEATS - segment_width + 1 - rows) // width + 1)
        if tile_rows < 1:
            return (f"An output row of {segment_width} pixels ({width} per phase) does not fit half the "
                    f"scratchpad ({self.act_half} rows) or half the accumulator ({self.acc_half} rows)")
        stacks = [-(-len(dys) // stack) for dys in self.groups]
        if max(stacks) * self.phases * rows > self.weight_half:
            return (f"A {self.kernel[0]}x{self.kernel[1]} window at stride {stride[1]} needs "
                    f"{max(stacks) * self.phases * rows} stationary weight rows per load group, more "
                    f"than half the {2 * self.weight_half}-row weight scratchpad")
        # Each (tile, segment) costs the longer of its COMPUTEs' beats and the bus beats that read its
        # LOADs' rows and its instructions (fetch shares the read channel with loads).
        computes = sum(stacks) * self.phases
        cost = slack = 0
        for first in range(0, self.out_height, tile_rows):
            tile = min(tile_rows, self.out_height - first)
            loaded = sum(tile + len(dys) - 1 for dys in self.groups) * stride[1] * width * self.pixel_beats
            for segment in range(0, self.out_width, segment_width):
                positions = (tile - 1) * width + min(segment_width, self.out_width - segment)
                stores = 2 if segment_width == self.out_width else \
                    1 if segment + segment_width < self.out_width else tile
                reads = loaded + (2 * len(self.groups) + computes + stores) * self.instruction_beats
                cost += max(computes * (positions - 1 + rows), reads)
                slack += max(computes * (positions - 1 + rows) - reads, 0)
        return segment_width, width, stack, tile_rows, slack, cost

    def stream_starts(self, phase: int) -> tuple[int, ...]:
        """The first activation row of each stream of a COMPUTE of ``phase`` (its primary stream first) for
        output 0, relative to its window row's first pixel. Paired: pixel 1 (tap 0) on the secondary stream,
        so the primary one starts ``PAIRED_SECONDARY_OFFSET - 1`` rows before pixel 0 (its beat 0 is read,
        never used; its beats 1 and 2 are pixels 0 and 2, taps 1 and 2)."""
        if self.paired:
            return 1 - PAIRED_SECONDARY_OFFSET, 1
        return (phase,)

    def tap_columns(self, phase: int) -> list[int]:
        """The window columns ``dx`` of a COMPUTE of ``phase``'s taps, in weight row order (paired: tap 0
        multiplies the secondary stream's odd pixel)."""
        return [1, 0, 2] if self.paired else list(range(phase, self.kernel[1], self.stride[1]))

    def stationary_rows(self, stacks: list[list[int]]) -> int:
        """Rows of a stationary tile of a load group's ``stacks`` up to the last that holds a tap."""
        return (max(map(len, stacks)) - 1) * self.width + self.taps

    def positions(self, tile_rows: int, segment_width: int | None = None) -> int:
        """Accumulator rows a tile's outputs take (rows ``ox >= out_w`` straddle two image rows)."""
        return (tile_rows - 1) * self.width + (segment_width or self.segment_width)

    def beats(self, tile_rows: int, segment_width: int | None = None) -> int:
        """A WS COMPUTE's beats: its last output's correlation needs R beats from that output's on."""
        return self.positions(tile_rows, segment_width) - 1 + self.rows

    def chunks(self, tile_rows: int) -> range:
        """The first output of each COMPUTE of a (window row, phase): one for WS, every R - T + 1 for OS."""
        return range(0, self.positions(tile_rows), self.chunk) if self.os else range(1)


@dataclass(frozen=True)
class Fold:
    """A channel block of at most half its lanes read folded: the output rows from ``split`` on ride in the
    upper half of the lanes, beside the first ``split``, so the block takes half the rows and beats.

    The block's producer also writes ``copy`` (one block of ``half + channels`` lanes, explicit
    border rows): its row ``f`` holds the block's input row ``f - pad_top`` in lanes ``0 ..`` and row
    ``f - pad_top + shift`` in lanes ``half ..`` (``producer_stores``), so the layer reads ``copy`` unpadded
    above and below and computes output rows ``k`` and ``split + k`` in one pass. Its upper lanes are STOREd
    a pixel row early at a byte offset (``upper_view``): their bytes land on the right pixels, the lower
    lanes' on the unused lanes of the pixel before (the producer of a per-channel layer's output allocates
    it alone, and readers load a block's live lanes only).
    """
    block_address: int      # the block of the input tensor, as its producer writes it
    copy: FeatureMap
    channels: int
    half: int
    split: int
    shift: int
    pad_top: int

    def producer_stores(self, first_row: int, rows: int, acc_base: int, channel_row: int) -> list[Instruction]:
        """STOREs of the input rows ``first_row .. + rows`` (at accumulator rows ``acc_base ..``, a row of
        pixels each) into ``copy``: each row to the copy's rows that hold it, lower or upper lanes."""
        stores = []
        for lanes, lag in ((0, self.pad_top), (self.half, self.pad_top - self.shift)):
            begin, end = max(first_row, -lag), min(first_row + rows, self.copy.height - lag)
            if begin < end:
                stores.append(Instruction(Opcode.STORE, {
                    "acc_addr": acc_base + (begin - first_row) * self.copy.width, "channel_row": channel_row,
                    **self.copy.store_fields(0, begin + lag, end - begin, 0, self.copy.width),
                    "channels": self.channels, "byte_offset": lanes}))
        return stores

    def lanes(self, values: np.ndarray) -> np.ndarray:
        """Per-lane ``values`` of the block (its channels along the last axis) as the folded layer's lanes: the
        channels, zeros up to ``half``, the channels again (its weights and channel records)."""
        gap = np.zeros(values.shape[:-1] + (self.half - self.channels,), dtype=values.dtype)
        return np.concatenate([values[..., :self.channels], gap, values[..., :self.channels]], axis=-1)

    def upper_view(self, y: FeatureMap, block: int) -> FeatureMap:
        """``y`` as the folded block's upper lanes are stored: block ``block``'s rows from ``split`` on, each
        a pixel row early, ``row_stride - half`` bytes into it, lanes ``0 .. half + channels``."""
        count = y.channel_blocks
        addresses = [y.block_address(b) for b in range(count)]
        counts = [y.block_channels(b) for b in range(count)]
        offsets = [y.byte_offset(b) for b in range(count)]
        addresses[block] = y.pixel_address(block, self.split, 0) - y.row_stride
        counts[block], offsets[block] = self.half + self.channels, y.row_stride - self.half
        return replace(y, height=y.height - self.split, block_addresses=tuple(addresses),
                       block_counts=tuple(counts), byte_offsets=tuple(offsets))


def fold_block(image: MemoryImage, name: str, x: FeatureMap, y: FeatureMap, block: int, kernel: tuple[int, int],
               stride: tuple[int, int], pad_top: int) -> Fold | None:
    """The fold of ``x``'s channel block ``block`` for a depthwise layer into ``y`` (``Fold``), its copy
    allocated in ``image``, or None where it does not apply: more than half the lanes live, one output row,
    or upper lanes out of a STORE's byte offset's reach."""
    half = x.lanes // 2
    channels = x.block_channels(block)
    if not (x.byte_offset(block) == y.byte_offset(block) == 0 and 0 < channels <= half and y.height > 1
            and y.block_channels(block) == channels and y.row_stride - half < 1 << STORE_BYTE_OFFSET_BITS):
        return None
    split = -(-y.height // 2)
    shift = stride[0] * split
    copy = image.allocate_feature_map(f"{name}.fold.c{block}", stride[0] * (split - 1) + kernel[0], x.width,
                                      half + channels, x.lanes)
    return Fold(x.block_address(block), copy, channels, half, split, shift, pad_top)


def plan_depthwise(config: AcceleratorConfig, kernel: tuple[int, int], stride: tuple[int, int],
                   out_height: int, out_width: int) -> DepthwisePlan | None:
    """The array mapping of a depthwise layer, or None where the array has no depthwise mode or it does not fit."""
    if not config.array.depthwise:
        return None
    try:
        return DepthwisePlan(config, kernel, stride, out_height, out_width)
    except ValueError:
        return None


def _stationary_tiles(weights: np.ndarray, plan: DepthwisePlan, stacks: list[list[int]]) -> np.ndarray:
    """The R x lanes stationary tile of each (stack of window rows, horizontal phase), stacked: tap k of the
    stack's window row j in row j * Wp + k."""
    tiles = np.zeros((len(stacks), plan.phases, plan.rows, weights.shape[2]), dtype=np.int64)
    for index, dys in enumerate(stacks):
        for j, dy in enumerate(dys):
            for phase in range(plan.phases):
                taps = weights[dy, plan.tap_columns(phase)]
                tiles[index, phase, j * plan.width:j * plan.width + len(taps)] = taps
    return tiles.reshape(-1, weights.shape[2])


def lower_depthwise_array(config: AcceleratorConfig, image: MemoryImage, name: str, x: FeatureMap, y: FeatureMap,
                          weights: np.ndarray, stride: tuple[int, int], offset: tuple[int, int],
                          blocks: range | None = None, plan: DepthwisePlan | None = None,
                          records: Instruction | None = None, folds: dict[int, Fold] | None = None
                          ) -> list[Instruction]:
    """Depthwise convolution of ``x`` with (kh, kw, lanes) int8 ``weights`` into ``y`` on the array.

    ``offset`` is minus the top/left padding; channel row ``b - blocks.start``
    holds block ``b``'s records (a folded block's, ``folds``: also in lanes ``half ..``). ``records``, the LOAD of all of them, comes
    first, or split into a LOAD of each block's row ahead of the block's first
    load group where a block's COMPUTEs outlast its reads by that row's beats
    (None: the caller loads them). The instructions carry their own tokens
    (fence them; do not serialize them).
    """
    rows = config.array.rows
    plan = plan or DepthwisePlan(config, weights.shape[:2], stride, y.height, y.width)
    blocks = blocks or range(x.channel_blocks)
    loaded_width = stride[1] * plan.width
    act_slot, weight_slot, acc_slot = _slots(config, plan)
    act_slots, weight_slots = config.act_rows // act_slot, config.weight_rows // weight_slot
    slots, acc_slots = min(act_slots, weight_slots, MAX_SLOTS), min(config.acc_rows // acc_slot, MAX_SLOTS)
    # Per slot, the layout of its last LOADs: a LOAD of the same layout leaves the padding rows the first
    # one wrote (zeros nothing else writes) and writes its data rows only.
    act_layouts, weight_layouts = [None] * slots, [None] * slots
    # A block's records read with its first load group, not all before the first COMPUTE, where the read
    # channel has the time: with few MACs per channel they took a twentieth of the cycles of MobileNetV2's
    # 7x7 stride-2 layer (2026-12-06 #13); where it has not, each LOAD more costs its overhead.
    if records is not None:
        row_bytes = records.fields["row_elems"] * target_element_bytes(Target.CHANNELS)
        spread = plan.read_slack >= -(-row_bytes // config.bus_bytes) + plan.instruction_beats
    else:
        spread = False
    # Per load group: its LOADs, its COMPUTEs, and (after a tile's last group) the tile's STOREs.
    groups: list[tuple[list[Instruction], list[Instruction]]] = []
    steps_per_tile = sum(map(len, plan.stacks)) * plan.phases
    group_index = tile = 0
    folds = folds or {}
    # Folded blocks first: their STOREs (twice the rows, the upper ones two beats each) then overlap the other
    # blocks' COMPUTEs instead of trailing the last one.
    for block in sorted(blocks, key=lambda block: block not in folds):
        fold = folds.get(block)
        block_weights = weights[..., block * x.lanes:block * x.lanes + x.block_channels(block)]
        if fold:        # the copy's rows, unpadded above and below; the weights in both halves of the lanes
            source, source_block, top, out_height = fold.copy, 0, 0, fold.split
            block_weights = fold.lanes(block_weights)
        else:
            source, source_block, top, out_height = x, block, offset[0], y.height
        channels = source.block_channels(source_block)
        regions = [image.place_rows(f"{name}.dw.c{block}.q{q}",
                                    _stationary_tiles(block_weights, plan, stacks))
                   for q, stacks in enumerate(plan.stacks)]
        for first in range(0, out_height, plan.tile_rows):
            tile_rows = min(plan.tile_rows, out_height - first)
            for first_col, width in plan.segments:
                acc_base = (tile % acc_slots) * acc_slot
                # OS: a (window row, phase)'s chunks as repeating COMPUTEs.
                chunks = plan.chunks(tile_rows)
                runs = [chunks[first_run:first_run + MAX_COMPUTE_REPEAT + 1]
                        for first_run in range(0, len(chunks), MAX_COMPUTE_REPEAT + 1)]
                computes = steps_per_tile * len(runs)
                done = 0
                for q, (region, dys, stacks) in enumerate(zip(regions, plan.groups, plan.stacks)):
                    slot = group_index % slots
                    act_base, weight_base = slot * act_slot, slot * weight_slot
                    loads, body = [], []
                    groups.append((loads, body))
                    # Loads retire in order, so a block's records are in before its first STORE.
                    if spread and first == 0 and first_col == 0 and q == 0:
                        loads.append(Instruction(Opcode.LOAD, records_row(records, block - blocks.start)))
                    # The slots this group overwrites were last read by the group ``slots`` before. A stationary
                    # tile's rows past its stack's last tap are zeros: padding rows, not read from DRAM.
                    weight_fields = {
                        "target": Target.WEIGHTS, "sram_addr": weight_base, "dram_addr": region.address,
                        "row_elems": channels, "rows": rows, "row_stride": region.row_stride,
                        "blocks": len(stacks) * plan.phases, "block_stride": rows * region.row_stride,
                        "pad_after": rows - plan.stationary_rows(stacks)}
                    weight_fields, weight_layouts[slot] = _data_rows(weight_fields, weight_layouts[slot])
                    loads.append(Instruction(Opcode.LOAD, weight_fields, pop_next=group_index >= slots))
                    fields = window_fields(source, block=source_block, first_row=first,
                                           out_rows=tile_rows + len(dys) - 1, first_col=stride[1] * first_col,
                                           out_cols=loaded_width, stride=(stride[0], 1), offset=(top + q, offset[1]))
                    act_fields, act_layouts[slot] = _data_rows(
                        {"target": Target.ACTIVATIONS, "sram_addr": act_base + plan.lead, "row_elems": channels,
                         "pad_value": 0, **fields}, act_layouts[slot])
                    loads.append(Instruction(Opcode.LOAD, act_fields, push_next=True))
                    # A stack starts at its first window row: j rows of the load group down.
                    starts = [sum(map(len, stacks[:index])) for index in range(len(stacks))]
                    steps = [(index, j, phase, run) for index, (j, phase) in enumerate(
                        (j, phase) for j in starts for phase in range(plan.phases)) for run in runs]
                    for number, (index, j, phase, run) in enumerate(steps):
                        body.append(Instruction(Opcode.COMPUTE, {
                            "act_addr": act_base + plan.lead + j * loaded_width + plan.stream_starts(phase)[0]
                            + stride[1] * run[0],
                            "act_stride_log2": plan.stride_log2,
                            "weight_addr": weight_base + index * rows, "acc_addr": acc_base + run[0],
                            "beats": rows if plan.os else plan.beats(tile_rows, width),
                            "taps": plan.taps if plan.os else 0, "paired": int(plan.paired), "repeat": len(run) - 1,
                            "accumulate": int(done >= len(runs)), "mode": ArithMode.INT8, "depthwise": 1},
                            pop_prev=number == 0, push_prev=number == len(steps) - 1,
                            pop_next=done == 0 and tile >= acc_slots, push_next=done == computes - 1))
                        done += 1
                    group_index += 1
                outputs = [(y, tile_rows)]
                if fold and first < y.height - fold.split:
                    outputs.append((fold.upper_view(y, block), min(tile_rows, y.height - fold.split - first)))
                body += _tile_stores(plan, outputs, block, blocks.start, acc_base, first, first_col, width)
                tile += 1
    # Each group's LOADs go ahead of the previous group's COMPUTEs: fetch is in order, and a long
    # run of COMPUTEs would otherwise keep the next group's LOADs out of the load queue until
    # the compute queue had taken nearly all of them.
    program = ([records] if records is not None and not spread else []) + (list(groups[0][0]) if groups else [])
    for (_, body), (next_loads, _) in zip(groups, groups[1:] + [([], [])]):
        program += next_loads + body
    return program


# At most this many load groups (activation and weight slots) and accumulator tiles in flight.
MAX_SLOTS = 4


def _slots(config: AcceleratorConfig, plan: DepthwisePlan) -> tuple[int, int, int]:
    """Rows of an activation, weight and accumulator slot: what a group's LOADs write and its COMPUTEs read
    (a COMPUTE's tail reads past its rows, a paired one's primary stream before them), what a tile's
    COMPUTEs write; at least half the memory's rows when a slot would not leave room for two."""
    rows, stride = plan.rows, plan.stride[1]
    act = weight = acc = 0
    for first in range(0, plan.out_height, plan.tile_rows):
        tile = min(plan.tile_rows, plan.out_height - first)
        for dys, stacks in zip(plan.groups, plan.stacks):
            last_stack = sum(map(len, stacks[:-1]))
            chunk = plan.chunks(tile)[-1]
            beats = rows if plan.os else plan.beats(tile)
            act = max(act, plan.lead + max((tile + len(dys) - 1) * stride * plan.width,
                                           last_stack * stride * plan.width + plan.last_start
                                           + stride * (chunk + beats - 1) + 1))
            weight = max(weight, len(stacks) * plan.phases * rows)
        # (a STORE of a segment's rows reads Wp accumulator rows per output row)
        acc = max(acc, plan.positions(tile) + (plan.chunk - 1 if plan.os else 0), tile * plan.width)
    halves = config.act_rows // 2, config.weight_rows // 2, config.acc_rows // 2
    return tuple(need if need * 3 <= 2 * half else half for need, half in zip((act, weight, acc), halves))


def _data_rows(fields: dict, layout: tuple | None) -> tuple[dict, tuple]:
    """A LOAD's ``fields``, and its layout (where it writes padding rows): after a LOAD of the same layout
    into the same rows, one walk group per block of data rows (no padding rows), ``sram_gap`` skipping the
    padding rows the first one wrote."""
    f = {name: 0 for name in ("pad_before", "pad_after", "pad_blocks_before", "pad_blocks_after")} | \
        {"groups": 1, "pad_value": 0} | fields
    mine = tuple(f[name] for name in ("target", "sram_addr", "rows", "blocks", "groups", "pad_before", "pad_after",
                                       "pad_blocks_before", "pad_blocks_after", "pad_value"))
    skip = f["pad_before"] + f["pad_after"]
    data_blocks = f["blocks"] - f["pad_blocks_before"] - f["pad_blocks_after"]
    if (layout != mine or f["groups"] != 1 or not (skip or f["pad_blocks_before"] or f["pad_blocks_after"])
            or data_blocks <= 0 or skip >= f["rows"] or skip > MAX_SRAM_GAP):
        return fields, mine
    data = {name: value for name, value in fields.items() if not name.startswith("pad_") or name == "pad_value"}
    return data | {"sram_addr": f["sram_addr"] + f["pad_blocks_before"] * f["rows"] + f["pad_before"],
                   "rows": f["rows"] - skip, "blocks": 1, "block_stride": 0, "groups": data_blocks,
                   "group_stride": f["block_stride"], "sram_gap": skip}, mine


def _tile_stores(plan: DepthwisePlan, outputs: list[tuple[FeatureMap, int]], block: int, first_block: int,
                 acc_base: int, first_row: int, first_col: int, width: int) -> list[Instruction]:
    """The STOREs of a tile's outputs (row r's at accumulator rows ``r * Wp`` on), with its tokens, into each
    (map, its rows of the tile) of ``outputs`` (a fold's upper lanes: a second map): straddling rows land on
    pixels a later write overwrites (module docstring)."""
    stores = []
    for y, tile_rows in outputs:
        if len(plan.segments) == 1:
            rows = [(0, tile_rows - 1, plan.width), (tile_rows - 1, 1, width)] if tile_rows > 1 else [(0, 1, width)]
        elif first_col + width < plan.out_width:
            rows = [(0, tile_rows, plan.width)]
        else:
            rows = [(row, 1, width) for row in range(tile_rows)]
        stores += [{"acc_addr": acc_base + row * plan.width, "channel_row": block - first_block,
                    **y.store_fields(block, first_row + row, count, first_col, row_width)}
                   for row, count, row_width in rows]
    return [Instruction(Opcode.STORE, fields, pop_prev=index == 0, push_prev=index == len(stores) - 1)
            for index, fields in enumerate(stores)]
