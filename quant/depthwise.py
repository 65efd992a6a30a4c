"""Lowering of depthwise convolution onto the array's depthwise mode (WS arrays, ``ArrayConfig.depthwise``).

A depthwise COMPUTE correlates every column's channel with R stationary taps
(``hdl.isa.COMPUTE``), so one COMPUTE does one window row ``dy`` of a channel
block for several output rows at once:

* Phases: with horizontal stride s, output ``ox`` reads input columns
  ``s * ox + dx``; tap ``dx = p + s * k`` belongs to phase ``p`` and reads
  ``s * (ox + k) + p``. A phase's input columns, loaded in order, make the
  taps consecutive rows: stationary row ``k`` holds ``w[dy, p + s * k]`` (the
  other rows 0, which multiply whatever the tail of the stream holds by 0).
* A step (tile, dy, phase) LOADs the T output rows' input rows, each as
  ``Wp = out_w + (kw - 1) // s`` pixels of its phase (borders are padding),
  so activation row ``r * Wp + ox`` starts output ``(r, ox)``'s correlation;
  its COMPUTE streams ``(T - 1) * Wp + out_w - 1 + R`` beats and accumulates
  into accumulator row ``r * Wp + ox`` (the first step overwrites). Rows
  ``ox >= out_w`` straddle two image rows and are never stored.
* One STORE per output row writes its ``out_w`` accumulator rows.

Steps double-buffer the activation scratchpad (a load runs while the previous
step computes), tiles the accumulator (a tile's stores overlap the next tile's
computes), and channel blocks the weight scratchpad (each block's kh x phases
stationary tiles load once), with tokens as in ``quant.gemm``.
"""
import numpy as np

from hdl.config import AcceleratorConfig
from hdl.isa import COMPUTE, Instruction, Opcode, Target
from hdl.numerics import ArithMode

from .memory import FeatureMap, MemoryImage
from .window import window_fields

__all__ = ["DepthwisePlan", "plan_depthwise", "lower_depthwise_array"]

_MAX_BEATS = (1 << COMPUTE.members["beats"]) - 1


class DepthwisePlan:
    """How a depthwise layer maps onto the array: phases, loaded row width Wp and output rows per tile.

    Raises ``ValueError`` (saying why) where the layer does not fit the array's depthwise mode.
    """

    def __init__(self, config: AcceleratorConfig, kernel: tuple[int, int], stride: tuple[int, int],
                 out_height: int, out_width: int):
        self.rows = rows = config.array.rows
        self.kernel, self.stride, self.out_width = kernel, stride, out_width
        self.phases = min(stride[1], kernel[1])
        if kernel[0] * self.phases < 2:
            # A block's weight load waits for the block before last only through two steps per block.
            raise ValueError(f"A {kernel[0]}x{kernel[1]} window at stride {stride[1]} is one step per tile; "
                             "the array's depthwise mode needs two")
        taps_per_phase = -(-kernel[1] // stride[1])
        if taps_per_phase > rows:
            raise ValueError(f"A {kernel[1]}-wide window at stride {stride[1]} needs {taps_per_phase} taps per "
                             f"column; the array has {rows} rows")
        self.width = out_width + taps_per_phase - 1
        self.tile_rows = min(out_height, (config.act_rows // 2 - rows) // self.width,
                             config.acc_rows // 2 // self.width,
                             (_MAX_BEATS - out_width + 1 - rows) // self.width + 1)
        if self.tile_rows < 1:
            raise ValueError(f"An output row of {out_width} pixels ({self.width} loaded) does not fit half the "
                             f"scratchpad ({config.act_rows // 2} rows) or half the accumulator "
                             f"({config.acc_rows // 2} rows)")
        self.stationary_rows = kernel[0] * self.phases * rows
        if 2 * self.stationary_rows > config.weight_rows:
            raise ValueError(f"A {kernel[0]}x{kernel[1]} window needs {self.stationary_rows} stationary weight "
                             f"rows per channel block, twice that in the {config.weight_rows}-row weight scratchpad")

    def beats(self, tile_rows: int) -> int:
        """A step's COMPUTE beats: its last output's correlation needs R rows from that output's row on."""
        return (tile_rows - 1) * self.width + self.out_width - 1 + self.rows


def plan_depthwise(config: AcceleratorConfig, kernel: tuple[int, int], stride: tuple[int, int],
                   out_height: int, out_width: int) -> DepthwisePlan | None:
    """The array mapping of a depthwise layer, or None where the array has no depthwise mode or it does not fit."""
    if not config.array.depthwise:
        return None
    try:
        return DepthwisePlan(config, kernel, stride, out_height, out_width)
    except ValueError:
        return None


def _stationary_tiles(weights: np.ndarray, plan: DepthwisePlan, rows: int, lanes: slice) -> np.ndarray:
    """Each (dy, phase) R x C stationary tile of one channel block, stacked: tap k of phase p in row k."""
    kh, kw = plan.kernel
    tiles = np.zeros((kh, plan.phases, rows, weights.shape[2]), dtype=np.int64)
    for dy in range(kh):
        for phase in range(plan.phases):
            taps = weights[dy, phase::plan.stride[1]]
            tiles[dy, phase, :len(taps)] = taps
    return tiles.reshape(-1, weights.shape[2])[:, lanes]


def lower_depthwise_array(config: AcceleratorConfig, image: MemoryImage, name: str, x: FeatureMap, y: FeatureMap,
                          weights: np.ndarray, stride: tuple[int, int], offset: tuple[int, int],
                          blocks: range | None = None, plan: DepthwisePlan | None = None) -> list[Instruction]:
    """Depthwise convolution of ``x`` with (kh, kw, lanes) int8 ``weights`` into ``y`` on the array.

    ``offset`` is minus the top/left padding; channel row ``b - blocks.start``
    holds block ``b``'s records. The instructions carry their own tokens
    (fence them; do not serialize them).
    """
    rows = config.array.rows
    plan = plan or DepthwisePlan(config, weights.shape[:2], stride, y.height, y.width)
    blocks = blocks or range(x.channel_blocks)
    act_half, acc_half, weight_half = config.act_rows // 2, config.acc_rows // 2, config.weight_rows // 2
    kh = plan.kernel[0]
    body: list[Instruction] = []
    step = tile = 0
    for block_index, block in enumerate(blocks):
        lanes = slice(block * x.lanes, block * x.lanes + x.block_channels(block))
        region = image.place_rows(f"{name}.dw.c{block}", _stationary_tiles(weights, plan, rows, lanes))
        weight_base = (block_index % 2) * weight_half
        body.append(Instruction(Opcode.LOAD, {
            "target": Target.WEIGHTS, "sram_addr": weight_base, "dram_addr": region.address,
            "row_elems": x.block_channels(block), "rows": plan.stationary_rows, "row_stride": region.row_stride}))
        for first in range(0, y.height, plan.tile_rows):
            tile_rows = min(plan.tile_rows, y.height - first)
            acc_base = (tile % 2) * acc_half
            steps = [(dy, phase) for dy in range(kh) for phase in range(plan.phases)]
            for index, (dy, phase) in enumerate(steps):
                act_base = (step % 2) * act_half
                fields = window_fields(x, block=block, first_row=first, out_rows=tile_rows, first_col=0,
                                       out_cols=plan.width, stride=stride,
                                       offset=(offset[0] + dy, offset[1] + phase))
                body.append(Instruction(Opcode.LOAD, {
                    "target": Target.ACTIVATIONS, "sram_addr": act_base, "row_elems": x.block_channels(block),
                    "pad_value": 0, **fields}, pop_next=step >= 2, push_next=True))
                body.append(Instruction(Opcode.COMPUTE, {
                    "act_addr": act_base, "weight_addr": weight_base + (dy * plan.phases + phase) * rows,
                    "acc_addr": acc_base, "beats": plan.beats(tile_rows), "accumulate": int(index > 0),
                    "mode": ArithMode.INT8, "depthwise": 1},
                    pop_prev=True, push_prev=True, pop_next=index == 0 and tile >= 2,
                    push_next=index == len(steps) - 1))
                step += 1
            for row in range(tile_rows):
                body.append(Instruction(Opcode.STORE, {
                    "acc_addr": acc_base + row * plan.width, "channel_row": block - blocks.start,
                    "dram_addr": y.pixel_address(block, first + row, 0), "channels": y.block_channels(block),
                    "rows": y.width, "row_stride": y.row_stride}, pop_prev=row == 0, push_prev=row == tile_rows - 1))
            tile += 1
    return body
