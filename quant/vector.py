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
  multiply-accumulates per cycle.

Feature maps are ``quant.memory.FeatureMap`` with C lanes per channel block.
A window tap over output rows ``oy0..oy1`` is one 3-D descriptor: blocks are
output rows, rows are output columns, and the image borders are padding
blocks and rows (``hdl.walker``). Programs here are serialized (each
instruction waits for the previous one): correct, not yet overlapped.
"""
from dataclasses import dataclass

import numpy as np

from hdl.config import AcceleratorConfig
from hdl.isa import Instruction, Opcode, Target
from hdl.numerics import INT8_MIN, SCALE_BITS, ArithMode, Combine, quantize_multiplier

from .memory import FeatureMap, MemoryImage, pack_channel_records
from .program import serialized

__all__ = ["Window", "output_size", "tap_load", "VectorProgram", "compile_pool", "compile_add",
           "compile_depthwise", "IDENTITY"]

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


def _valid_range(count: int, offset: int, stride: int, extent: int) -> tuple[int, int]:
    """Outputs o < count whose input o * stride + offset lies in [0, extent): (first, end), first <= end."""
    first = min(count, -(offset // stride) if offset < 0 else 0)
    end = min(count, (extent - 1 - offset) // stride + 1) if extent - 1 - offset >= 0 else 0
    return first, max(first, end)


def tap_load(x: FeatureMap, block: int, first_row: int, out_rows: int, out_width: int, window: Window,
             dy: int, dx: int, sram_addr: int, **combine) -> Instruction:
    """COMBINE LOAD of tap (dy, dx) for output rows first_row .. first_row + out_rows - 1 of channel block ``block``."""
    y_offset = first_row * window.stride + dy - window.padding
    y_first, y_end = _valid_range(out_rows, y_offset, window.stride, x.height)
    x_first, x_end = _valid_range(out_width, dx - window.padding, window.stride, x.width)
    data = y_end > y_first and x_end > x_first
    address = x.pixel_address(block, y_offset + y_first * window.stride,
                              dx - window.padding + x_first * window.stride) if data else x.address
    return Instruction(Opcode.LOAD, {
        "target": Target.COMBINE, "sram_addr": sram_addr, "dram_addr": address,
        "row_elems": x.block_channels(block), "rows": out_width, "row_stride": window.stride * x.row_stride,
        "blocks": out_rows, "block_stride": window.stride * x.width * x.row_stride,
        "pad_before": x_first if data else out_width, "pad_after": out_width - x_end if data else 0,
        "pad_blocks_before": y_first if data else out_rows, "pad_blocks_after": out_rows - y_end if data else 0,
        **combine})


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


class _Builder:
    def __init__(self, config: AcceleratorConfig):
        self.config = config
        self.lanes = config.array.cols
        self.image = MemoryImage(config.bus_bytes)
        self.body: list[Instruction] = [Instruction(Opcode.CONFIG, {
            "mode": ArithMode.INT8, "zero_point": 0, "clamp_min": -128, "clamp_max": 127})]

    def channel_records(self, name: str, bias, multiplier, shift) -> None:
        """Load per-channel records, one channel row per block of C channels."""
        channels = len(bias)
        blocks = -(-channels // self.lanes)
        if blocks > self.config.channel_rows:
            raise ValueError(f"{channels} channels need {blocks} channel rows; the accelerator has "
                             f"{self.config.channel_rows}")
        records = np.zeros((blocks * self.lanes, 16), dtype=np.uint8)
        records[:channels] = pack_channel_records(bias, multiplier, shift, np.zeros(channels))
        region = self.image.place_rows(name, records.reshape(blocks, -1), dtype="u1")
        self.body.append(Instruction(Opcode.LOAD, {
            "target": Target.CHANNELS, "dram_addr": region.address, "row_elems": self.lanes, "rows": blocks,
            "row_stride": region.row_stride}))

    def tiles(self, out_height: int, out_width: int):
        """Output row ranges whose accumulator rows fit the accumulator."""
        if out_width > self.config.acc_rows:
            raise ValueError(f"An output row of {out_width} pixels exceeds the {self.config.acc_rows} "
                             "accumulator rows")
        rows = min(out_height, self.config.acc_rows // out_width)
        return [(first, min(rows, out_height - first)) for first in range(0, out_height, rows)]

    def store(self, y: FeatureMap, block: int, first_row: int, out_rows: int) -> None:
        self.body.append(Instruction(Opcode.STORE, {
            "channel_row": block, "dram_addr": y.pixel_address(block, first_row, 0), "channels": y.block_channels(block),
            "rows": y.width, "row_stride": y.row_stride, "blocks": out_rows, "block_stride": y.width * y.row_stride}))

    def finish(self, output: FeatureMap) -> VectorProgram:
        program = serialized(self.body + [Instruction(Opcode.END, {})])
        region = self.image.place_program("program", program)
        return VectorProgram(self.config, self.image, program, region.address, output)


def _check_image(values: np.ndarray, name: str) -> None:
    if values.ndim != 3:
        raise ValueError(f"{name} must be an (H, W, C) int8 array, not shape {values.shape}")


def compile_pool(config: AcceleratorConfig, x: np.ndarray, window: Window, kind: str,
                 multiplier: int | None = None, shift: int | None = None) -> VectorProgram:
    """Max or average pooling of (H, W, C) int8 ``x``; average pooling requantizes with (multiplier, shift)."""
    if kind not in ("max", "avg"):
        raise ValueError(f"Pooling kind must be 'max' or 'avg', not {kind!r}")
    _check_image(x, "pooling input")
    builder = _Builder(config)
    height, width, channels = x.shape
    fx = builder.image.place_feature_map("x", x, builder.lanes)
    oh, ow = output_size(height, window), output_size(width, window)
    y = builder.image.allocate_feature_map("y", oh, ow, channels, builder.lanes)
    if kind == "max":
        multiplier, shift = IDENTITY
    elif multiplier is None or shift is None:
        multiplier, shift = quantize_multiplier(1.0 / window.kernel ** 2)
    blocks = fx.channel_blocks
    builder.channel_records("channels", np.zeros(blocks * builder.lanes), np.full(blocks * builder.lanes, multiplier),
                            np.full(blocks * builder.lanes, shift))
    pad_value = INT8_MIN if kind == "max" else 0
    later = Combine.MAX if kind == "max" else Combine.ADD
    for block in range(blocks):
        for first, rows in builder.tiles(oh, ow):
            for tap in range(window.kernel ** 2):
                dy, dx = divmod(tap, window.kernel)
                builder.body.append(tap_load(fx, block, first, rows, ow, window, dy, dx, 0, pad_value=pad_value,
                                             combine=Combine.OVERWRITE if tap == 0 else later, scale=1))
            builder.store(y, block, first, rows)
    return builder.finish(y)


def compile_add(config: AcceleratorConfig, a: np.ndarray, b: np.ndarray, ka: int, kb: int, multiplier: int,
                shift: int) -> VectorProgram:
    """Residual add: ``requantize(a * ka + b * kb, 0, multiplier, shift)`` elementwise."""
    _check_image(a, "add input a")
    if a.shape != b.shape:
        raise ValueError(f"Add inputs must have one shape, not {a.shape} and {b.shape}")
    limit = 1 << (SCALE_BITS - 1)
    if not (-limit <= ka < limit and -limit <= kb < limit):
        raise ValueError(f"Add scales must be from {-limit} to {limit - 1}, not {ka} and {kb}")
    builder = _Builder(config)
    height, width, channels = a.shape
    fa = builder.image.place_feature_map("a", a, builder.lanes)
    fb = builder.image.place_feature_map("b", b, builder.lanes)
    y = builder.image.allocate_feature_map("y", height, width, channels, builder.lanes)
    lanes = fa.channel_blocks * builder.lanes
    builder.channel_records("channels", np.zeros(lanes), np.full(lanes, multiplier), np.full(lanes, shift))
    same = Window(1)
    for block in range(fa.channel_blocks):
        for first, rows in builder.tiles(height, width):
            builder.body.append(tap_load(fa, block, first, rows, width, same, 0, 0, 0, combine=Combine.OVERWRITE,
                                         scale=ka))
            builder.body.append(tap_load(fb, block, first, rows, width, same, 0, 0, 0, combine=Combine.ADD, scale=kb))
            builder.store(y, block, first, rows)
    return builder.finish(y)


def compile_depthwise(config: AcceleratorConfig, x: np.ndarray, weights: np.ndarray, window: Window, bias,
                      multiplier, shift) -> VectorProgram:
    """Depthwise convolution of (H, W, C) int8 ``x`` with (k, k, C) int8 ``weights``, per-channel requantization."""
    _check_image(x, "depthwise input")
    height, width, channels = x.shape
    if weights.shape != (window.kernel, window.kernel, channels):
        raise ValueError(f"Depthwise weights must have shape {(window.kernel, window.kernel, channels)}, "
                         f"not {weights.shape}")
    taps = window.kernel ** 2
    if taps > config.weight_rows:
        raise ValueError(f"A {window.kernel}x{window.kernel} window needs {taps} weight rows; the scratchpad has "
                         f"{config.weight_rows}")
    builder = _Builder(config)
    fx = builder.image.place_feature_map("x", x, builder.lanes)
    oh, ow = output_size(height, window), output_size(width, window)
    y = builder.image.allocate_feature_map("y", oh, ow, channels, builder.lanes)
    builder.channel_records("channels", bias, multiplier, shift)
    tap_rows = weights.reshape(taps, channels)
    for block in range(fx.channel_blocks):
        lanes = slice(block * builder.lanes, block * builder.lanes + fx.block_channels(block))
        region = builder.image.place_rows(f"w.c{block}", tap_rows[:, lanes])
        builder.body.append(Instruction(Opcode.LOAD, {
            "target": Target.WEIGHTS, "dram_addr": region.address, "row_elems": fx.block_channels(block),
            "rows": taps, "row_stride": region.row_stride}))
        for first, rows in builder.tiles(oh, ow):
            for tap in range(taps):
                dy, dx = divmod(tap, window.kernel)
                builder.body.append(tap_load(fx, block, first, rows, ow, window, dy, dx, 0,
                                             combine=Combine.OVERWRITE if tap == 0 else Combine.ADD,
                                             lane_scales=1, scale_row=tap))
            builder.store(y, block, first, rows)
    return builder.finish(y)
