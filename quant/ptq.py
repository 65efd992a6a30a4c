"""Post-training quantization: a calibrated ``FloatGraph`` becomes the integer ``Graph``.

* Weights: per output channel, symmetric int8 in [-127, 127] (batch norm already folded).
* Activations: symmetric int8 with zero point 0, because the array subtracts no
  input zero point and pads borders with 0; the scale is calibrated on sample
  images (``"minmax"``: the largest magnitude; ``"percentile"``: that percentile of
  the magnitudes, clipping outliers). Tensors that only move data (concat, split,
  shuffle, max pool) share one scale with their inputs, so they stay exact copies.
* Biases: int32 in accumulator units; requantization: ``numerics.quantize_multiplier``.
* Binary layers: a sign after a layer becomes ``numerics.binarize`` thresholds
  (``bias = -threshold``, ``flip`` where the folded scale is negative).
"""
import numpy as np
import torch

from hdl.numerics import INT8_MAX, INT8_MIN, ArithMode, pack_bits, quantize_multiplier

from .frontend import Activation, FloatAdd, FloatConv, FloatGraph, FloatPool, run_float
from .graph import Add, Binarize, ChannelShuffle, Concat, Conv, Graph, Pool, PoolKind, Requantize, Slice, Tensor

__all__ = ["CALIBRATION_METHODS", "calibrate", "activation_scales", "quantize", "quantize_input", "binarize_thresholds",
           "ADD_ACC_SCALE"]

CALIBRATION_METHODS = ("minmax", "percentile")
WEIGHT_MAX = INT8_MAX                     # symmetric: -127..127, so negation never overflows
ADD_ACC_SCALE = 1 << 14                   # the larger Add input scale, in int16 (room for sign and rounding)
_THRESHOLD_LIMIT = 1 << 30                # beyond any reachable accumulator: "always" / "never"


def calibrate(graph: FloatGraph, images: torch.Tensor, method: str = "minmax", percentile: float = 99.99,
              batch_size: int = 64) -> dict[str, float]:
    """Magnitude range of every tensor over ``images`` (NCHW).

    ``percentile`` ranges are averaged over batches, so they do not depend on
    keeping every activation of the calibration set in memory.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"Calibration method must be one of {CALIBRATION_METHODS}, not {method!r}")
    if not 0 < percentile <= 100:
        raise ValueError(f"Calibration percentile must be in (0, 100], not {percentile!r}")
    batches = []
    for start in range(0, len(images), batch_size):
        with torch.no_grad():
            values = run_float(graph, images[start:start + batch_size])
        if method == "minmax":
            batches.append({name: float(v.abs().max()) for name, v in values.items()})
        else:
            batches.append({name: float(np.percentile(v.abs().numpy(), percentile)) for name, v in values.items()})
    reduce = max if method == "minmax" else (lambda xs: sum(xs) / len(xs))
    return {name: reduce([b[name] for b in batches]) for name in batches[0]}


def _tied_groups(graph: FloatGraph) -> dict[str, str]:
    """Union-find over tensors that must share a scale: each tensor -> its group's representative."""
    parent = {name: name for name in graph.shapes}

    def find(name):
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for node in graph.nodes:
        if isinstance(node, Concat):
            tied = node.inputs
        elif isinstance(node, (Slice, ChannelShuffle)) or (isinstance(node, FloatPool) and node.kind == PoolKind.MAX):
            tied = (node.input,)
        else:
            continue
        for name in tied:
            parent[find(name)] = find(node.output)
    return {name: find(name) for name in parent}


def activation_scales(graph: FloatGraph, ranges: dict[str, float]) -> dict[str, float]:
    """The int8 scale of every tensor: its range / 127, shared within tied groups, ReLU6 outputs at most 6."""
    groups = _tied_groups(graph)
    bounded = dict(ranges)
    for node in graph.nodes:
        if getattr(node, "activation", None) == Activation.RELU6:
            bounded[node.output] = min(bounded[node.output], 6.0)
    group_range: dict[str, float] = {}
    for name, group in groups.items():
        group_range[group] = max(group_range.get(group, 0.0), bounded[name])
    return {name: max(group_range[groups[name]], 1e-6) / INT8_MAX for name in groups}


def _clamp(activation: Activation, scale: float) -> tuple[int, int]:
    if activation == Activation.RELU:
        return 0, INT8_MAX
    if activation == Activation.RELU6:
        return 0, min(INT8_MAX, int(round(6.0 / scale)))
    return INT8_MIN, INT8_MAX


def _requantize(real_multipliers: np.ndarray, bias: np.ndarray, clamp: tuple[int, int]) -> Requantize:
    pairs = [quantize_multiplier(float(real)) for real in real_multipliers]
    return Requantize(np.asarray(bias, dtype=np.int64), np.array([m for m, _ in pairs], dtype=np.int64),
                      np.array([s for _, s in pairs], dtype=np.int64), *clamp)


def _int32_bias(bias: np.ndarray, acc_scale: np.ndarray) -> np.ndarray:
    return np.clip(np.round(bias / acc_scale), -_THRESHOLD_LIMIT, _THRESHOLD_LIMIT).astype(np.int64)


def binarize_thresholds(acc_scale: np.ndarray, bias: np.ndarray) -> Binarize:
    """Thresholds for ``sign(acc_scale * acc + bias)`` on integer ``acc`` (sign(0) = +1, as ``BinarySign``).

    acc_scale > 0: +1 iff ``acc >= ceil(t)`` with ``t = -bias / acc_scale``;
    acc_scale < 0: +1 iff ``acc <= floor(t)``, i.e. not ``acc >= floor(t) + 1`` (flip).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -bias / acc_scale
        threshold = np.where(acc_scale > 0, np.ceil(t), np.floor(t) + 1)
    constant = np.where(bias >= 0, _THRESHOLD_LIMIT, -_THRESHOLD_LIMIT)
    stored = np.where(acc_scale == 0, constant, -threshold)
    return Binarize(np.clip(stored, -_THRESHOLD_LIMIT, _THRESHOLD_LIMIT).astype(np.int64), acc_scale < 0)


def _conv(node: FloatConv, scales: dict[str, float]) -> Conv:
    out_scale = scales[node.output]
    if node.binary:
        # +1/-1 inputs and weights: the accumulator counts agreements; channel_scale carries the rest.
        bits = (node.weight > 0).astype(np.int64).transpose(0, 2, 3, 1)
        acc_scale = node.channel_scale.astype(np.float64)
        arith = ArithMode.BINARY
        if node.activation != Activation.SIGN:
            # requantize needs a positive multiplier: negate the accumulator by inverting the weights.
            bits = np.where((acc_scale < 0)[:, None, None, None], 1 - bits, bits)
            acc_scale = np.maximum(np.abs(acc_scale), 1e-12)
        weight = pack_bits(bits)
    else:
        effective = node.weight * node.channel_scale[:, None, None, None]
        weight_scale = np.abs(effective).reshape(len(effective), -1).max(axis=1) / WEIGHT_MAX
        weight_scale = np.where(weight_scale > 0, weight_scale, 1.0)
        weight = np.clip(np.round(effective / weight_scale[:, None, None, None]), -WEIGHT_MAX, WEIGHT_MAX)
        weight = weight.astype(np.int8).transpose(0, 2, 3, 1)
        acc_scale = scales[node.input] * weight_scale.astype(np.float64)
        arith = ArithMode.INT8
    if node.activation == Activation.SIGN:
        post = binarize_thresholds(acc_scale, node.bias.astype(np.float64))
    else:
        post = _requantize(acc_scale / out_scale, _int32_bias(node.bias, acc_scale), _clamp(node.activation, out_scale))
    return Conv(node.name, node.input, node.output, np.ascontiguousarray(weight), node.stride, node.padding,
                node.groups, arith, post)


def _pool(node: FloatPool, scales: dict[str, float], channels: int) -> Pool:
    if node.kind == PoolKind.MAX:
        real = 1.0
    else:
        real = scales[node.input] / (scales[node.output] * node.kernel[0] * node.kernel[1])
    post = _requantize(np.full(channels, real), np.zeros(channels), (INT8_MIN, INT8_MAX))
    return Pool(node.name, node.input, node.output, node.kind, node.kernel, node.stride, node.padding, post)


def _add(node: FloatAdd, scales: dict[str, float], channels: int) -> Add:
    first, second = (scales[name] for name in node.inputs)
    acc_scale = max(first, second) / ADD_ACC_SCALE
    factors = (int(round(first / acc_scale)), int(round(second / acc_scale)))
    out_scale = scales[node.output]
    post = _requantize(np.full(channels, acc_scale / out_scale), np.zeros(channels),
                       _clamp(node.activation, out_scale))
    return Add(node.name, node.inputs, node.output, factors, post)


def quantize(graph: FloatGraph, ranges: dict[str, float]) -> Graph:
    """The integer graph of ``graph`` for the tensor ``ranges`` that ``calibrate`` measured."""
    missing = graph.shapes.keys() - ranges.keys()
    if missing:
        raise ValueError(f"Calibration ranges must cover every tensor of the graph; missing {sorted(missing)}")
    scales = activation_scales(graph, ranges)
    tensors = {}
    for name, shape in graph.shapes.items():
        binary = graph.is_binary(name)
        tensors[name] = Tensor(name, shape, 1.0 if binary else scales[name],
                               ArithMode.BINARY if binary else ArithMode.INT8)
    nodes = []
    for node in graph.nodes:
        channels = graph.shapes[node.output][2]
        if isinstance(node, FloatConv):
            nodes.append(_conv(node, scales))
        elif isinstance(node, FloatPool):
            nodes.append(_pool(node, scales, channels))
        elif isinstance(node, FloatAdd):
            nodes.append(_add(node, scales, channels))
        else:
            nodes.append(node)
    return Graph(tensors, nodes, graph.input, graph.output)


def quantize_input(graph: Graph, images) -> np.ndarray:
    """NCHW float images as the graph's int8 NHWC input (host side: round half to even, saturate)."""
    images = np.asarray(images, dtype=np.float64)
    scale = graph.tensors[graph.input].scale
    return np.clip(np.round(images / scale), INT8_MIN, INT8_MAX).astype(np.int8).transpose(0, 2, 3, 1)
