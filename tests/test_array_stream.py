"""GEMM tiling onto the array streams, checked without RTL by an ideal array built from the golden model."""
import numpy as np
import pytest

from hdl.config import ArrayConfig, Dataflow
from hdl.numerics import ArithMode, golden_gemm, random_operands
from hdl.systolic_array import activation_beat_layout, result_beat_layout, weight_beat_layout
from sim.array_stream import decode_gemm, encode_gemm, golden_tile


def ideal_results(streams, a, w):
    """Result beats an exact array would send: golden partial sums, tile by tile."""
    config, (m, _, _) = streams.config, streams.shape
    layout, beats = result_beat_layout(config), []
    for tile in streams.tiles:
        sums = golden_tile(a, w, tile, streams.mode)
        height = config.rows if config.dataflow == Dataflow.OS else m
        for row in range(height):
            lanes = list(sums[row]) if row < len(sums) else []
            lanes += [0] * (config.cols - len(lanes))
            beats.append(layout.const({"data": lanes, "last": row == height - 1}).as_bits())
    return beats


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("mode", list(ArithMode))
def test_tiling_round_trip(dataflow, mode, seed):
    rng = np.random.default_rng(seed)
    config = ArrayConfig(3, 4, dataflow, "both")
    for shape in [(1, 1, 1), (7, 10, 9), (3, 4, 4), (2, 13, 5)]:
        a, w = random_operands(rng, *shape)
        streams = encode_gemm(config, a, w, mode)
        product, partials = decode_gemm(streams, ideal_results(streams, a, w))
        np.testing.assert_array_equal(product, golden_gemm(a, w, mode))
        assert len(partials) == len(streams.tiles)


def test_ws_pads_unused_weight_rows_with_neutral_values():
    config = ArrayConfig(4, 2, "ws", "binary")
    a, w = random_operands(np.random.default_rng(0), 2, 3, 2)       # K = 3 < R = 4
    streams = encode_gemm(config, a, w, ArithMode.BINARY)
    weights = [weight_beat_layout(config).from_bits(b) for b in streams.weights]
    acts = [activation_beat_layout(config).from_bits(b) for b in streams.activations]
    assert len(weights) == 4 and list(weights[3].data) == [0, 0]
    assert all(beat.data[3] == 0x0F for beat in acts)


def test_stream_framing():
    config = ArrayConfig(2, 2, "os", "int8")
    a, w = random_operands(np.random.default_rng(1), 3, 5, 3)
    streams = encode_gemm(config, a, w, ArithMode.INT8)
    lasts = [activation_beat_layout(config).from_bits(b).last for b in streams.activations]
    assert lasts == ([0] * 4 + [1]) * 4           # 2 x 2 output tiles, K = 5 beats each
    assert streams.result_beats == 4 * 2


def test_rejects_mode_the_array_lacks_and_bad_shapes():
    config = ArrayConfig(2, 2, "os", "int8")
    with pytest.raises(ValueError, match=r"BINARY is not generated in this array \(arith int8\); allowed: INT8"):
        encode_gemm(config, np.zeros((2, 2)), np.zeros((2, 2)), ArithMode.BINARY)
    with pytest.raises(ValueError, match=r"not \(2, 3\) and \(2, 2\)"):
        encode_gemm(config, np.zeros((2, 3)), np.zeros((2, 2)), ArithMode.INT8)
    streams = encode_gemm(config, np.zeros((2, 2)), np.zeros((2, 2)), ArithMode.INT8)
    with pytest.raises(ValueError, match="Expected 2 result beats, got 1"):
        decode_gemm(streams, [0])
    with pytest.raises(ValueError, match="last flags"):
        decode_gemm(streams, [0, 0])
