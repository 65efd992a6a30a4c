"""The golden model against independent formulations: torch fake-quant per layer, and direct loops per op."""
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hdl.numerics import INT8_MAX, INT8_MIN, ArithMode, quantize_multiplier
from quant import golden, reference
from quant.frontend import trace
from quant.graph import (
    Add,
    Binarize,
    ChannelShuffle,
    Concat,
    Conv,
    Graph,
    Padding,
    Pool,
    PoolKind,
    Requantize,
    Slice,
    Tensor,
    binary_padding_signs,
    conv_output_size,
)
from quant.ptq import calibrate, quantize, quantize_input
from quant.zoo import ZOO

IDENTITY = quantize_multiplier(1.0)


def identity(channels: int, clamp=(INT8_MIN, INT8_MAX)) -> Requantize:
    """Requantization that passes accumulators in int8 range through unchanged."""
    return Requantize(np.zeros(channels, np.int64), np.full(channels, IDENTITY[0]), np.full(channels, IDENTITY[1]),
                      *clamp)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_layer_within_one_lsb_of_the_fake_quant_reference(name, seed):
    """Each node gets the golden model's own inputs (so errors do not compound) and is recomputed in torch.

    int8 outputs may differ by 1 LSB: the reference rescales in float and rounds
    half to even once; the hardware's gemmlowp rule rounds twice, ties away from
    zero. Binarized bits, max pooling, concat, slice and shuffle must be equal.
    """
    torch.manual_seed(seed)
    model = ZOO[name](width=0.25, num_classes=10, in_channels=3).eval()
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    graph = trace(model, (3, 32, 32))
    integer = quantize(graph, calibrate(graph, images))
    values = golden.run(integer, quantize_input(integer, images.numpy()))
    differing = 0
    for node in integer.nodes:
        expected = reference.run_node(integer, node, values)
        got = values[node.output]
        assert got.shape == expected.shape == (3, *integer.tensors[node.output].stored_shape)
        difference = np.abs(got.astype(np.int64) - expected)
        exact = (integer.tensors[node.output].kind == ArithMode.BINARY or isinstance(node, (Concat, Slice, ChannelShuffle))
                 or (isinstance(node, Pool) and node.kind == PoolKind.MAX))
        assert difference.max() <= (0 if exact else 1), node.name
        differing += np.count_nonzero(difference)
    assert differing <= 0.01 * sum(values[n.output].size for n in integer.nodes)


def test_golden_logits_track_the_float_net(seed):
    """End to end the errors compound, but a quantized net must still be close to its float original."""
    torch.manual_seed(seed)
    model = ZOO["squeezenext23v5"](width=0.25, num_classes=10, in_channels=1).eval()
    images = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(seed))
    graph = trace(model, (1, 32, 32))
    integer = quantize(graph, calibrate(graph, images))
    logits = golden.run(integer, quantize_input(integer, images.numpy()))[integer.output].reshape(8, -1)
    expected = model(images).detach().numpy()
    error = np.abs(logits * integer.tensors[integer.output].scale - expected)
    assert error.max() <= 0.1 * np.abs(expected).max()


def _graph(nodes, tensors) -> Graph:
    return Graph({t.name: t for t in tensors}, nodes, "x", "y")


def _direct_conv(x, weight, stride, padding, groups, border):
    """out[n, i, j, o] = sum over taps and the group's channels, borders explicit."""
    padded = np.pad(x, ((0, 0), (padding.top, padding.bottom), (padding.left, padding.right), (0, 0)))
    if border is not None:
        inside = np.pad(np.ones(x.shape[1:3]), ((padding.top, padding.bottom), (padding.left, padding.right)))
        padded = np.where(inside[None, :, :, None] == 1, padded, border)
    out_channels, kh, kw, group_in = weight.shape
    height = conv_output_size(x.shape[1], kh, stride[0], padding.top, padding.bottom)
    width = conv_output_size(x.shape[2], kw, stride[1], padding.left, padding.right)
    out = np.zeros((len(x), height, width, out_channels), dtype=np.int64)
    group_out = out_channels // groups
    for o in range(out_channels):
        channels = slice(o // group_out * group_in, (o // group_out + 1) * group_in)
        for i in range(height):
            for j in range(width):
                window = padded[:, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw, channels]
                out[:, i, j, o] = (window.astype(np.int64) * weight[o]).sum(axis=(1, 2, 3))
    return out


conv_cases = st.fixed_dictionaries({
    "kernel": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "stride": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "padding": st.tuples(*[st.integers(0, 2)] * 4),
    "size": st.tuples(st.integers(3, 6), st.integers(3, 6)),
    "groups": st.sampled_from([1, 2, 4]),
    "depthwise": st.booleans(),
    "seed": st.integers(0, 2 ** 32 - 1),
})


@settings(max_examples=40, deadline=None)
@given(conv_cases)
def test_int8_conv_equals_direct_loops(case):
    """Small operands keep the accumulator inside int8, so an identity requantization exposes it."""
    rng = np.random.default_rng(case["seed"])
    groups = case["groups"]
    channels = groups * (1 if case["depthwise"] else 2)
    out_channels = groups * (1 if case["depthwise"] else 3)
    kh, kw = case["kernel"]
    padding = Padding(*case["padding"])
    if padding.top + padding.bottom + case["size"][0] < kh or padding.left + padding.right + case["size"][1] < kw:
        return
    x = rng.integers(-2, 3, size=(2, *case["size"], channels)).astype(np.int8)
    weight = rng.integers(-2, 3, size=(out_channels, kh, kw, channels // groups)).astype(np.int8)
    expected = _direct_conv(x, weight, case["stride"], padding, groups, None)
    node = Conv("conv", "x", "y", weight, case["stride"], padding, groups, ArithMode.INT8, identity(out_channels))
    graph = _graph([node], [Tensor("x", x.shape[1:], 1.0), Tensor("y", expected.shape[1:], 1.0)])
    np.testing.assert_array_equal(golden.run(graph, x)["y"], expected)


@settings(max_examples=30, deadline=None)
@given(conv_cases)
def test_binary_conv_equals_plus_minus_one_loops(case):
    """XNOR-popcount lanes, the neutral border pattern and binarize thresholds against a +1/-1 sum."""
    rng = np.random.default_rng(case["seed"])
    kh, kw = case["kernel"]
    padding = Padding(*case["padding"])
    if padding.top + padding.bottom + case["size"][0] < kh or padding.left + padding.right + case["size"][1] < kw:
        return
    channels, out_channels = 16, 8 * case["groups"]
    x_bits = rng.integers(0, 2, size=(2, *case["size"], channels))
    w_bits = rng.integers(0, 2, size=(out_channels, kh, kw, channels))
    acc = _direct_conv(2 * x_bits - 1, 2 * w_bits - 1, case["stride"], padding, 1, binary_padding_signs(channels))
    bias = rng.integers(-20, 21, size=out_channels)
    flip = rng.integers(0, 2, size=out_channels).astype(bool)
    expected_bits = (acc + bias >= 0) != flip
    x = np.packbits(x_bits.astype(np.uint8), axis=-1, bitorder="little").view(np.int8)
    weight = np.packbits(w_bits.astype(np.uint8), axis=-1, bitorder="little").view(np.int8)
    node = Conv("conv", "x", "y", weight, case["stride"], padding, 1, ArithMode.BINARY, Binarize(bias, flip))
    graph = _graph([node], [Tensor("x", (*case["size"], channels), 1.0, ArithMode.BINARY),
                            Tensor("y", (*acc.shape[1:3], out_channels), 1.0, ArithMode.BINARY)])
    got = golden.run(graph, x)["y"]
    np.testing.assert_array_equal(np.unpackbits(got.view(np.uint8), axis=-1, bitorder="little"), expected_bits)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(list(PoolKind)), st.tuples(st.integers(1, 3), st.integers(1, 3)),
       st.tuples(st.integers(1, 3), st.integers(1, 3)), st.tuples(*[st.integers(0, 1)] * 4), st.integers(0, 2 ** 32 - 1))
def test_pools_equal_direct_loops(kind, kernel, stride, pads, seed):
    """Max over the window ignoring borders; average = window sum (borders count as 0) over its size."""
    assume(max(pads[:2]) <= kernel[0] // 2 and max(pads[2:]) <= kernel[1] // 2)   # torch's rule: no window all border
    rng = np.random.default_rng(seed)
    padding = Padding(*pads)
    x = rng.integers(INT8_MIN, INT8_MAX + 1, size=(2, 5, 6, 3)).astype(np.int8)
    height = conv_output_size(5, kernel[0], stride[0], padding.top, padding.bottom)
    width = conv_output_size(6, kernel[1], stride[1], padding.left, padding.right)
    area = kernel[0] * kernel[1]
    expected = np.zeros((2, height, width, 3), dtype=np.int64)
    for i in range(height):
        for j in range(width):
            rows = slice(max(0, i * stride[0] - padding.top), i * stride[0] - padding.top + kernel[0])
            cols = slice(max(0, j * stride[1] - padding.left), j * stride[1] - padding.left + kernel[1])
            window = x[:, rows, cols].astype(np.int64)
            expected[:, i, j] = window.max(axis=(1, 2)) if kind == PoolKind.MAX else window.sum(axis=(1, 2))
    if kind == PoolKind.AVG:
        real = 1.0 / area
        multiplier, shift = quantize_multiplier(real)
        post = Requantize(np.zeros(3, np.int64), np.full(3, multiplier), np.full(3, shift))
        expected_float = expected / area
    else:
        post = identity(3)
    node = Pool("pool", "x", "y", kind, kernel, stride, padding, post)
    graph = _graph([node], [Tensor("x", (5, 6, 3), 1.0), Tensor("y", (height, width, 3), 1.0)])
    got = golden.run(graph, x)["y"]
    if kind == PoolKind.MAX:
        np.testing.assert_array_equal(got, expected)
    else:
        # gemmlowp rounds twice (high multiply, then the shift): within 1 LSB, not 0.5 (1/3 of 1 gives 1).
        assert np.abs(got - expected_float).max() < 1


@settings(max_examples=40, deadline=None)
@given(st.integers(-40, 40), st.integers(-40, 40), st.integers(0, 2 ** 32 - 1))
def test_add_equals_the_scaled_sum(first_scale, second_scale, seed):
    """The two halves of one input, added with int16 scales (an identity requantization shows the sum)."""
    x = np.random.default_rng(seed).integers(-1, 2, size=(2, 3, 3, 8)).astype(np.int8)
    nodes = [Slice("a", "x", "a", 0, 4), Slice("b", "x", "b", 4, 8),
             Add("add", ("a", "b"), "y", (first_scale, second_scale), identity(4))]
    graph = Graph({"x": Tensor("x", (3, 3, 8), 1.0),
                   **{name: Tensor(name, (3, 3, 4), 1.0) for name in ("a", "b", "y")}}, nodes, "x", "y")
    expected = x[..., :4].astype(np.int64) * first_scale + x[..., 4:].astype(np.int64) * second_scale
    np.testing.assert_array_equal(golden.run(graph, x)["y"], expected)


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_channel_shuffle_equals_torch(groups, seed):
    x = np.random.default_rng(seed).integers(INT8_MIN, INT8_MAX + 1, size=(2, 3, 4, 6)).astype(np.int8)
    graph = _graph([ChannelShuffle("shuffle", "x", "y", groups)],
                   [Tensor("x", (3, 4, 6), 1.0), Tensor("y", (3, 4, 6), 1.0)])
    expected = torch.nn.ChannelShuffle(groups)(torch.tensor(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(golden.run(graph, x)["y"], expected)


def test_bad_inputs_name_the_value():
    tensors = [Tensor("x", (4, 4, 8), 1.0), Tensor("y", (4, 4, 8), 1.0)]
    graph = _graph([Slice("slice", "x", "y", 0, 8)], tensors)
    with pytest.raises(ValueError, match=r"Golden model input must be int8 of shape \(N, 4, 4, 8\), not int64 \(1, 4, 4, 8\)"):
        golden.run(graph, np.zeros((1, 4, 4, 8), dtype=np.int64))
    with pytest.raises(ValueError, match="Binary tensor 'x' must have a multiple of 8 channels, not 12"):
        Graph({"x": Tensor("x", (4, 4, 12), 1.0, ArithMode.BINARY)})
    with pytest.raises(ValueError, match="Node 'slice' refers to tensor 'z', which the graph does not have"):
        _graph([Slice("slice", "x", "z", 0, 8)], tensors)
    with pytest.raises(ValueError, match="Add input scale must be from -32768 to 32767, not 40000"):
        _graph([Add("add", ("x", "x"), "y", (40000, 1), identity(8))], tensors)
