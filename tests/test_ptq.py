import numpy as np
import pytest
import torch

from hdl.numerics import INT8_MAX, MULTIPLIER_FRACTION_BITS, SHIFT_RANGE, ArithMode, binarize
from quant.frontend import FloatConv, trace
from quant.graph import Add, Binarize, ChannelShuffle, Concat, Conv, Pool, PoolKind, Requantize, Slice
from quant.ptq import ADD_ACC_SCALE, binarize_thresholds, calibrate, quantize, quantize_input
from quant.zoo import ZOO


def float_and_integer(name: str, seed: int, **kwargs):
    torch.manual_seed(seed)
    model = ZOO[name](width=0.25, num_classes=10, in_channels=3).eval()
    graph = trace(model, (3, 32, 32))
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    return graph, quantize(graph, calibrate(graph, images, **kwargs)), images


def test_weights_are_per_channel_symmetric_int8_and_requantization_is_q31(seed):
    graph, integer, _ = float_and_integer("mobilenet_v2", seed)
    floats = {node.name: node for node in graph.nodes if isinstance(node, FloatConv)}
    convs = [node for node in integer.nodes if isinstance(node, Conv)]
    assert convs and all(conv.arith == ArithMode.INT8 for conv in convs)
    for conv in convs:
        source = floats[conv.name]
        effective = (source.weight * source.channel_scale[:, None, None, None]).transpose(0, 2, 3, 1)
        step = np.abs(effective).reshape(len(effective), -1).max(axis=1) / INT8_MAX
        assert conv.weight.dtype == np.int8
        assert np.all(np.abs(conv.weight).reshape(len(step), -1).max(axis=1) == INT8_MAX)
        assert np.all(np.abs(conv.weight * step[:, None, None, None] - effective) <= step[:, None, None, None] / 2 + 1e-9)
        post = conv.post
        assert np.all((post.multiplier >= 1 << (MULTIPLIER_FRACTION_BITS - 1)) &
                      (post.multiplier < 1 << MULTIPLIER_FRACTION_BITS))
        assert np.all((post.shift >= SHIFT_RANGE.start) & (post.shift < SHIFT_RANGE.stop))
        assert np.all(np.abs(post.bias) < 1 << 31)
        real = post.multiplier * np.exp2(post.shift - float(MULTIPLIER_FRACTION_BITS))
        expected = integer.tensors[conv.input].scale * step / integer.tensors[conv.output].scale
        np.testing.assert_allclose(real, expected, rtol=2.0 ** -MULTIPLIER_FRACTION_BITS)


def test_relu6_becomes_a_clamp_at_six(seed):
    graph, integer, _ = float_and_integer("mobilenet_v2", seed)
    relu6 = {node.name for node in graph.nodes if getattr(node, "activation", None) and
             node.activation.value == "relu6"}
    assert relu6
    for node in integer.nodes:
        if node.name in relu6:
            scale = integer.tensors[node.output].scale
            assert (node.post.clamp_min, node.post.clamp_max) == (0, min(INT8_MAX, round(6 / scale)))


def test_data_movement_shares_one_scale_so_it_stays_exact(seed):
    _, integer, _ = float_and_integer("shufflenet_v2", seed)
    moved = [node for node in integer.nodes if isinstance(node, (Concat, Slice, ChannelShuffle))
             or (isinstance(node, Pool) and node.kind == PoolKind.MAX)]
    assert {type(node) for node in moved} == {Concat, Slice, ChannelShuffle, Pool}
    for node in moved:
        inputs = node.inputs if isinstance(node, Concat) else (node.input,)
        assert {integer.tensors[name].scale for name in (*inputs, node.output)} == {integer.tensors[node.output].scale}


def test_add_brings_both_inputs_to_one_accumulator_scale(seed):
    _, integer, _ = float_and_integer("squeezenext23", seed)
    adds = [node for node in integer.nodes if isinstance(node, Add)]
    assert adds
    for node in adds:
        first, second = (integer.tensors[name].scale for name in node.inputs)
        acc_scale = max(first, second) / ADD_ACC_SCALE
        assert node.scales == (round(first / acc_scale), round(second / acc_scale))
        assert max(node.scales) == ADD_ACC_SCALE
        assert np.all(node.post.bias == 0)


def test_binary_net_layers(seed):
    _, integer, _ = float_and_integer("binarynet", seed)
    convs = [node for node in integer.nodes if isinstance(node, Conv)]
    assert [c.arith for c in convs] == [ArithMode.INT8] + [ArithMode.BINARY] * 4 + [ArithMode.INT8]
    assert [type(c.post) for c in convs] == [Binarize] * 4 + [Requantize] * 2
    for conv in convs[1:5]:
        tensor = integer.tensors[conv.input]
        assert tensor.kind == ArithMode.BINARY and tensor.scale == 1.0
        assert conv.weight.shape[-1] == tensor.shape[2] // 8


def test_binarize_thresholds_reproduce_the_float_sign(seed):
    """sign(scale * acc + bias) for every reachable integer acc, including negative scales (flip) and 0."""
    rng = np.random.default_rng(seed)
    acc_scale = np.concatenate([rng.normal(size=40), -np.abs(rng.normal(size=8)), [0.0, 0.0]])
    bias = rng.normal(scale=30, size=len(acc_scale))
    bias[-1] = -1.0
    post = binarize_thresholds(acc_scale, bias)
    acc = np.arange(-300, 301)[:, None]
    expected = acc_scale * acc + bias >= 0
    np.testing.assert_array_equal(binarize(acc, post.bias, post.flip), expected)
    np.testing.assert_array_equal(post.flip, acc_scale < 0)


def test_calibration_methods(seed):
    graph, _, images = float_and_integer("squeezenet1_1", seed)
    minmax = calibrate(graph, images, "minmax")
    percentile = calibrate(graph, images, "percentile", percentile=99.0)
    assert minmax.keys() == percentile.keys() == graph.shapes.keys()
    assert all(percentile[name] <= minmax[name] for name in minmax)
    assert any(percentile[name] < minmax[name] for name in minmax)
    with pytest.raises(ValueError, match=r"Calibration method must be one of \('minmax', 'percentile'\), not 'mse'"):
        calibrate(graph, images, "mse")
    with pytest.raises(ValueError, match=r"Calibration percentile must be in \(0, 100\], not 101"):
        calibrate(graph, images, "percentile", percentile=101)


def test_quantize_input_rounds_saturates_and_goes_channels_last(seed):
    _, integer, images = float_and_integer("squeezenet1_1", seed)
    scale = integer.tensors[integer.input].scale
    x = quantize_input(integer, images.numpy())
    assert x.dtype == np.int8 and x.shape == (8, 32, 32, 3)
    np.testing.assert_allclose(x * scale, images.numpy().transpose(0, 2, 3, 1), atol=scale / 2 + 1e-9)
    assert quantize_input(integer, np.full((1, 3, 32, 32), 1e6))[0, 0, 0, 0] == INT8_MAX
