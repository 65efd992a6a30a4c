"""Lowering of the accumulator-path operations: pooling, residual add and depthwise convolution.

All three are LOADs with ``Target.COMBINE`` (``numerics.Combine``) into the
accumulator followed by a STORE through the usual requantization:

* max pooling: OVERWRITE the first window tap, MAX the others (scale 1,
  borders padded with ``INT8_MIN``), store with an identity multiplier;
* average pooling: ADD every tap (scale 1, borders 0, so the divisor counts
  padding, like ``count_include_pad``), the divisor folded into the multiplier;
* residual add: OVERWRITE ``a * ka``, ADD ``b * kb``, then requantize;
* depthwise convolution: per tap, ADD the shifted input times that tap's
  per-channel weights (``lane_scales``: a weight scratchpad row per tap), then
  requantize with per-channel bias and multipliers — the depthwise path, C
  multiply-accumulates per cycle. Arrays with the depthwise mode run it on the
  array instead (``quant.depthwise``) where it fits.

Feature maps are ``quant.memory.FeatureMap`` with C lanes per channel block.
A window tap over output rows ``oy0..oy1`` is one 3-D descriptor: blocks are
output rows, rows are output columns, and the image borders are padding
blocks and rows (``hdl.walker``). Tiles of output rows take turns in the
two halves of the accumulator (``_tiles``): a tile's LOADs combine into its
half while the tile before is stored from the other. The programs carry their
own tokens (``_tokened``): fence them, do not serialize them.
"""
from dataclasses import dataclass, replace

import numpy as np

from hdl.config import AcceleratorConfig
from hdl.isa import Instruction, Opcode, Target
from hdl.numerics import INT8_MIN, SCALE_BITS, ArithMode, Combine, quantize_multiplier

from .depthwise import DepthwisePlan, Fold, lower_depthwise_array, plan_depthwise
from .memory import FeatureMap, MemoryImage
from .program import load_channel_records
from .window import window_fields

__all__ = ["Window", "output_size", "lower_pool", "lower_add", "lower_depthwise", "VectorProgram",
           "compile_pool", "compile_add", "compile_depthwise", "IDENTITY"]

IDENTITY = quantize_multiplier(1.0)     # (multiplier, shift) that requantizes x to x exactly


@dataclass(frozen=True)
class Window:
    """A square pooling/convolution window."""
    kernel: int
    stride: int = 1
    padding: int = 0

    def __post_init__(self):
        if self.kernel < 1 or self.stride < 1 or not 0 <= self.padding < self.kernel:
            raise ValueError(f"Window needs kernel >= 1, stride >= 1 and 0 <= padding < kernel, not {self}")


def output_size(size: int, window: Window) -> int:
    return (size + 2 * window.padding - window.kernel) // window.stride + 1


def _tap_load(x: FeatureMap, y: FeatureMap, block: int, first_row: int, out_rows: int, acc_base: int, stride,
              offset, **combine) -> Instruction:
    """COMBINE LOAD of one window tap for output rows first_row .. + out_rows of channel block ``block`` into
    accumulator rows acc_base ..."""
    fields = window_fields(x, block=block, first_row=first_row, out_rows=out_rows, first_col=0, out_cols=y.width,
                           stride=stride, offset=offset)
    return Instruction(Opcode.LOAD, {"target": Target.COMBINE, "sram_addr": acc_base,
                                     "row_elems": x.block_channels(block), **fields, **combine})


def _tiles(config: AcceleratorConfig, y: FeatureMap, blocks: range) -> tuple[int, list[tuple[int, int, int, int]]]:
    """How many tiles take turns in the accumulator (its two halves where an output row fits half of it),
    and every tile of output rows of channel ``blocks``, in turn: (block, first row, rows, first accumulator row)."""
    if y.width > config.acc_rows:
        raise ValueError(f"An output row of {y.width} pixels exceeds the {config.acc_rows} accumulator rows")
    halves = 2 if 2 * y.width <= config.acc_rows else 1
    rows = min(y.height, config.acc_rows // halves // y.width)
    tiles = [(block, first, min(rows, y.height - first)) for block in blocks for first in range(0, y.height, rows)]
    return halves, [(*tile, index % halves * (config.acc_rows // halves)) for index, tile in enumerate(tiles)]


def _tokened(tiles: list[tuple[list[Instruction], list[Instruction]]], halves: int) -> list[Instruction]:
    """Each tile's (LOADs, STOREs), with tokens: its STOREs wait for its LOADs, and its LOADs for the STOREs
    of the tile ``halves`` before (which read the same accumulator rows); SYNCs pass them through the
    compute unit."""
    program = []
    for index, (loads, stores) in enumerate(tiles):
        loads, stores = list(loads), list(stores)
        loads[0] = replace(loads[0], pop_next=index >= halves)
        loads[-1] = replace(loads[-1], push_next=True)
        stores[0] = replace(stores[0], pop_prev=True)
        stores[-1] = replace(stores[-1], push_prev=True)
        program += [*loads, Instruction(Opcode.SYNC, {}, pop_prev=True, push_next=True), *stores,
                    Instruction(Opcode.SYNC, {}, pop_next=True, push_prev=True)]
    return program


def _store(y: FeatureMap, block: int, first_row: int, out_rows: int, acc_base: int, first_block: int) -> Instruction:
    """STORE of accumulator rows acc_base .. as output rows first_row .. + out_rows, with channel row
    ``block - first_block``."""
    return Instruction(Opcode.STORE, {"acc_addr": acc_base, "channel_row": block - first_block,
                                      **y.store_fields(block, first_row, out_rows, 0, y.width)})


def _taps(kernel: tuple[int, int], offset: tuple[int, int]):
    """(tap index, tap offset) of every window position."""
    return [(dy * kernel[1] + dx, (dy + offset[0], dx + offset[1])) for dy in range(kernel[0])
            for dx in range(kernel[1])]


def lower_pool(config: AcceleratorConfig, x: FeatureMap, y: FeatureMap, kind: str, kernel: tuple[int, int],
               stride: tuple[int, int], offset: tuple[int, int], blocks: range | None = None,
               folds: tuple[Fold, ...] = ()) -> list[Instruction]:
    """Max or average pooling of channel ``blocks`` (default all) of ``x`` into ``y`` (``offset`` = minus the
    top/left padding); channel row ``b - blocks.start`` holds block ``b``'s records. ``folds``: depthwise
    layers reading blocks of ``y`` folded, whose copies (``Fold.copy``) the tiles of those blocks also write."""
    if kind not in ("max", "avg"):
        raise ValueError(f"Pooling kind must be 'max' or 'avg', not {kind!r}")
    pad_value = INT8_MIN if kind == "max" else 0
    later = Combine.MAX if kind == "max" else Combine.ADD
    halves, tiles = _tiles(config, y, blocks or range(x.channel_blocks))
    first_block = tiles[0][0]
    return _tokened([([_tap_load(x, y, block, first, rows, acc_base, stride, tap_offset, pad_value=pad_value,
                                 combine=Combine.OVERWRITE if tap == 0 else later, scale=1)
                       for tap, tap_offset in _taps(kernel, offset)],
                      [_store(y, block, first, rows, acc_base, first_block)]
                      + [store for fold in folds if fold.block_address == y.block_address(block)
                         for store in fold.producer_stores(first, rows, acc_base, block - first_block)])
                     for block, first, rows, acc_base in tiles], halves)


def lower_add(config: AcceleratorConfig, a: FeatureMap, b: FeatureMap, y: FeatureMap, ka: int,
              kb: int, blocks: range | None = None) -> list[Instruction]:
    """``y`` accumulates ``a * ka + b * kb`` before its requantization (channel ``blocks``, default all)."""
    limit = 1 << (SCALE_BITS - 1)
    if not (-limit <= ka < limit and -limit <= kb < limit):
        raise ValueError(f"Add scales must be from {-limit} to {limit - 1}, not {ka} and {kb}")
    halves, tiles = _tiles(config, y, blocks or range(a.channel_blocks))
    first_block = tiles[0][0]
    return _tokened([([_tap_load(a, y, block, first, rows, acc_base, (1, 1), (0, 0), combine=Combine.OVERWRITE,
                                 scale=ka),
                       _tap_load(b, y, block, first, rows, acc_base, (1, 1), (0, 0), combine=Combine.ADD, scale=kb)],
                      [_store(y, block, first, rows, acc_base, first_block)])
                     for block, first, rows, acc_base in tiles], halves)


def lower_depthwise(config: AcceleratorConfig, image: MemoryImage, name: str, x: FeatureMap, y: FeatureMap,
                    weights: np.ndarray, stride: tuple[int, int], offset: tuple[int, int],
                    blocks: range | None = None) -> list[Instruction]:
    """Depthwise convolution of ``x`` with (kh, kw, C) int8 ``weights`` into ``y`` (channel ``blocks``)."""
    kernel = weights.shape[:2]
    taps = kernel[0] * kernel[1]
    if taps > config.weight_rows:
        raise ValueError(f"A {kernel[0]}x{kernel[1]} window needs {taps} weight rows; the scratchpad has "
                         f"{config.weight_rows}")
    tap_rows = weights.reshape(taps, -1)
    halves, tiles = _tiles(config, y, blocks or range(x.channel_blocks))
    first_block = tiles[0][0]
    program = []
    for block, first, rows, acc_base in tiles:
        loads = []
        if first == 0:      # the block's taps (the load unit runs LOADs in order: after the last block's)
            region = image.place_rows(f"{name}.w.c{block}", tap_rows[:, block * x.lanes:][:, :x.block_channels(block)])
            loads.append(Instruction(Opcode.LOAD, {
                "target": Target.WEIGHTS, "dram_addr": region.address, "row_elems": x.block_channels(block),
                "rows": taps, "row_stride": region.row_stride}))
        loads += [_tap_load(x, y, block, first, rows, acc_base, stride, tap_offset,
                            combine=Combine.OVERWRITE if tap == 0 else Combine.ADD, lane_scales=1, scale_row=tap)
                  for tap, tap_offset in _taps(kernel, offset)]
        program.append((loads, [_store(y, block, first, rows, acc_base, first_block)]))
    return _tokened(program, halves)


@dataclass
class VectorProgram:
    """A compiled accumulator-path operation: image, program and where its output lives."""
    config: AcceleratorConfig
    image: MemoryImage
    program: list[Instruction]
    program_address: int
    output: FeatureMap

    def read_output(self, dram: bytes) -> np.ndarray:
        return MemoryImage(self.image.alignment, bytearray(dram), self.image.regions).read_feature_map(self.output)


def _standalone(config: AcceleratorConfig, image: MemoryImage, y: FeatureMap, body: list[Instruction],
                bias, multiplier, shift) -> VectorProgram:
    """One operation as a whole program: CONFIG, its channel records, ``body`` (which orders its own units;
    the head needs no tokens: each unit runs in order)."""
    if y.channel_blocks > config.channel_rows:
        raise ValueError(f"{y.channels} channels need {y.channel_blocks} channel rows; the accelerator has "
                         f"{config.channel_rows}")
    per_channel = [np.broadcast_to(np.asarray(v), y.channels) for v in (bias, multiplier, shift)]
    head = [Instruction(Opcode.CONFIG, {"mode": ArithMode.INT8, "zero_point": 0, "clamp_min": -128,
                                        "clamp_max": 127}),
            load_channel_records(image, "channels", y.lanes, *per_channel)]
    program = head + body + [Instruction(Opcode.END, {})]
    return VectorProgram(config, image, program, image.place_program("program", program).address, y)


def _check_image(values: np.ndarray, name: str) -> None:
    if np.ndim(values) != 3:
        raise ValueError(f"{name} must be an (H, W, C) int8 array, not shape {np.shape(values)}")


def _window_maps(config: AcceleratorConfig, x: np.ndarray, window: Window, lanes: int | None = None):
    """Input and output feature maps in blocks of ``lanes`` channels (default C: the accumulator path's)."""
    _check_image(x, "input")
    image = MemoryImage(config.bus_bytes)
    height, width, channels = x.shape
    lanes = lanes or config.array.cols
    fx = image.place_feature_map("x", x, lanes)
    y = image.allocate_feature_map("y", output_size(height, window), output_size(width, window), channels, lanes)
    return image, fx, y, (window.stride, window.stride), (-window.padding, -window.padding)


def compile_pool(config: AcceleratorConfig, x: np.ndarray, window: Window, kind: str,
                 multiplier: int | None = None, shift: int | None = None) -> VectorProgram:
    """Max or average pooling of (H, W, C) int8 ``x``; average pooling requantizes with (multiplier, shift)."""
    if kind not in ("max", "avg"):
        raise ValueError(f"Pooling kind must be 'max' or 'avg', not {kind!r}")
    image, fx, y, stride, offset = _window_maps(config, x, window)
    if kind == "max":
        multiplier, shift = IDENTITY
    elif multiplier is None or shift is None:
        multiplier, shift = quantize_multiplier(1.0 / window.kernel ** 2)
    body = lower_pool(config, fx, y, kind, (window.kernel, window.kernel), stride, offset)
    return _standalone(config, image, y, body, 0, multiplier, shift)


def compile_add(config: AcceleratorConfig, a: np.ndarray, b: np.ndarray, ka: int, kb: int, multiplier: int,
                shift: int) -> VectorProgram:
    """Residual add: ``requantize(a * ka + b * kb, 0, multiplier, shift)`` elementwise."""
    _check_image(a, "add input a")
    if np.shape(a) != np.shape(b):
        raise ValueError(f"Add inputs must have one shape, not {np.shape(a)} and {np.shape(b)}")
    image = MemoryImage(config.bus_bytes)
    fa = image.place_feature_map("a", a, config.array.cols)
    fb = image.place_feature_map("b", b, config.array.cols)
    y = image.allocate_feature_map("y", *a.shape, config.array.cols)
    return _standalone(config, image, y, lower_add(config, fa, fb, y, ka, kb), 0, multiplier, shift)


def compile_depthwise(config: AcceleratorConfig, x: np.ndarray, weights: np.ndarray, window: Window, bias,
                      multiplier, shift, on_array: bool | None = None) -> VectorProgram:
    """Depthwise convolution of (H, W, C) int8 ``x`` with (k, k, C) int8 ``weights``, per-channel requantization.

    ``on_array``: True runs it in the array's depthwise mode (``ValueError`` where that cannot), False on
    the accumulator path, None (default) on the array where it can, as the compiler does.
    """
    _check_image(x, "input")
    if np.shape(weights) != (window.kernel, window.kernel, x.shape[2]):
        raise ValueError(f"Depthwise weights must have shape {(window.kernel, window.kernel, x.shape[2])}, "
                         f"not {np.shape(weights)}")
    kernel, stride = (window.kernel, window.kernel), (window.stride, window.stride)
    out_size = (output_size(x.shape[0], window), output_size(x.shape[1], window))
    plan = None
    if on_array:
        if not config.array.depthwise:
            raise ValueError(f"The {config.array.name} array has no depthwise mode (arrays have it unless "
                             "generated with depthwise=False)")
        plan = DepthwisePlan(config, kernel, stride, *out_size)
    elif on_array is None:
        plan = plan_depthwise(config, kernel, stride, *out_size)
    # The array's depthwise mode takes a block's channels in the first min(R, C) lanes of a scratchpad row.
    lanes = min(config.array.rows, config.array.cols) if plan else None
    image, fx, y, stride, offset = _window_maps(config, x, window, lanes)
    if plan:
        body = lower_depthwise_array(config, image, "dw", fx, y, np.asarray(weights), stride, offset, plan=plan)
    else:
        body = lower_depthwise(config, image, "dw", fx, y, np.asarray(weights), stride, offset)
    return _standalone(config, image, y, body, bias, multiplier, shift)
