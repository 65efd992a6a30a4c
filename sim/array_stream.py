"""Map a GEMM onto the systolic array's streams and back.

``encode_gemm`` tiles ``A (M x K) @ W (K x N)`` into the beats that
``hdl.systolic_array`` documents, packed with the array's own payload layouts;
``decode_gemm`` turns result beats back into per-tile partial sums and the
full product. WS tiles produce partial sums over R rows of K; summing them
uses the accumulator rule of ``hdl.numerics`` (the accelerator's accumulator
SRAM does the same in hardware).
"""
from dataclasses import dataclass, field

import numpy as np

from hdl.config import ArithSupport, ArrayConfig, Dataflow
from hdl.numerics import ArithMode, golden_gemm, neutral_padding, wrap_acc
from hdl.systolic_array import activation_beat_layout, result_beat_layout, weight_beat_layout

__all__ = ["Tile", "GemmStreams", "encode_gemm", "decode_gemm", "golden_tile"]


@dataclass(frozen=True)
class Tile:
    """One array pass: output rows/cols it covers and the slice of K it reduces."""
    rows: slice
    cols: slice
    depth: slice


@dataclass
class GemmStreams:
    """Packed input beats for each input stream and how to read the results."""
    config: ArrayConfig
    shape: tuple[int, int, int]
    mode: ArithMode
    activations: list[int] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)
    tiles: list[Tile] = field(default_factory=list)
    result_beats: int = 0

    @property
    def beats_per_tile(self) -> int:
        """K per tile for OS, M per tile for WS (what ``stream_cycles`` takes)."""
        m, k, _ = self.shape
        return k if self.config.dataflow == Dataflow.OS else m


def _padded(values, length: int, pad: int) -> list[int]:
    values = [int(v) for v in values]
    return values + [pad] * (length - len(values))


def _tile_slices(extent: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, extent)) for start in range(0, extent, size)]


def encode_gemm(config: ArrayConfig, a: np.ndarray, w: np.ndarray, mode: ArithMode) -> GemmStreams:
    """Tile a GEMM into packed stream beats for ``config``'s array."""
    a, w = np.asarray(a), np.asarray(w)
    if mode not in config.modes:
        raise ValueError(f"Arithmetic mode {mode.name} is not generated in this array (arith {config.arith.value}); "
                         f"allowed: {', '.join(m.name for m in config.modes)}")
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0] or 0 in a.shape + w.shape:
        raise ValueError(f"GEMM operands must be non-empty (M, K) and (K, N), not {a.shape} and {w.shape}")
    (m, k), n = a.shape, w.shape[1]
    rows, cols = config.rows, config.cols
    act_layout, weight_layout = activation_beat_layout(config), weight_beat_layout(config)
    act_pad, weight_pad = neutral_padding(mode)
    extra = {"mode": mode} if config.arith == ArithSupport.BOTH else {}
    streams = GemmStreams(config, (m, k, n), mode)

    def activation(lanes, last):
        return act_layout.const({"data": _padded(lanes, rows, act_pad), "last": last, **extra}).as_bits()

    def weight(lanes):
        return weight_layout.const({"data": _padded(lanes, cols, weight_pad)}).as_bits()

    if config.dataflow == Dataflow.OS:
        for row_block in _tile_slices(m, rows):
            for col_block in _tile_slices(n, cols):
                streams.tiles.append(Tile(row_block, col_block, slice(0, k)))
                for depth in range(k):
                    streams.activations.append(activation(a[row_block, depth], depth == k - 1))
                    streams.weights.append(weight(w[depth, col_block]))
                streams.result_beats += rows
    else:
        for col_block in _tile_slices(n, cols):
            for depth_block in _tile_slices(k, rows):
                streams.tiles.append(Tile(slice(0, m), col_block, depth_block))
                weight_rows = list(w[depth_block, col_block])
                weight_rows += [[weight_pad] * cols] * (rows - len(weight_rows))
                streams.weights.extend(weight(lanes) for lanes in weight_rows)
                for row in range(m):
                    streams.activations.append(activation(a[row, depth_block], row == m - 1))
                streams.result_beats += m
    return streams


def decode_gemm(streams: GemmStreams, result_beats: list[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unpack result beats into ``(product, per-tile partial sums)``.

    Raises ``ValueError`` if the beat count or the ``last`` framing is wrong.
    """
    if len(result_beats) != streams.result_beats:
        raise ValueError(f"Expected {streams.result_beats} result beats, got {len(result_beats)}")
    layout = result_beat_layout(streams.config)
    beats = [layout.from_bits(bits) for bits in result_beats]
    m, _, n = streams.shape
    product = np.zeros((m, n), dtype=np.int64)
    partials, position = [], 0
    for tile in streams.tiles:
        height = streams.config.rows if streams.config.dataflow == Dataflow.OS else m
        tile_beats = beats[position:position + height]
        position += height
        lasts = [int(beat.last) for beat in tile_beats]
        if lasts != [0] * (height - 1) + [1]:
            raise ValueError(f"Result beats of tile {tile} have last flags {lasts}, "
                             f"expected only the final beat flagged")
        sums = np.array([list(beat.data) for beat in tile_beats], dtype=np.int64)
        partial = sums[: tile.rows.stop - tile.rows.start, : tile.cols.stop - tile.cols.start]
        partials.append(partial.astype(np.int32))
        product[tile.rows, tile.cols] += partial
    return wrap_acc(product), partials


def golden_tile(a: np.ndarray, w: np.ndarray, tile: Tile, mode: ArithMode) -> np.ndarray:
    """The golden partial sums one tile must produce."""
    return golden_gemm(np.asarray(a)[tile.rows, tile.depth], np.asarray(w)[tile.depth, tile.cols], mode)
