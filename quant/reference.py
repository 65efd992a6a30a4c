"""Fake-quant reference: each integer-graph node computed in torch float64 with real-valued rescaling.

It shares nothing with the golden model but the graph's integer parameters:
convolutions and pooling are torch's own (NCHW, float64, exact for these
integer sizes), binary lanes are unpacked with ``np.unpackbits``, and
requantization is ``round(acc * multiplier * 2**(shift - MULTIPLIER_FRACTION_BITS))`` in float with
round-half-to-even. The golden model's fixed-point rule (gemmlowp: a rounding
doubling high multiply, then a rounding right shift, ties away from zero)
rounds twice, so the two may differ by 1 LSB; binarized bits, max pooling and
data movement must agree exactly.
"""
import numpy as np
import torch
import torch.nn.functional as F

from hdl.numerics import MULTIPLIER_FRACTION_BITS, ArithMode

from .graph import (
    Add,
    Binarize,
    ChannelShuffle,
    Concat,
    Conv,
    Graph,
    Node,
    Pool,
    PoolKind,
    Requantize,
    Slice,
    binary_padding_signs,
)

__all__ = ["run_node"]


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64)).permute(0, 3, 1, 2)


def _unpack_signs(lanes: np.ndarray) -> np.ndarray:
    """+1/-1 values of packed lanes along the last axis (bit b of lane l is value 8l + b)."""
    bits = np.unpackbits(np.ascontiguousarray(lanes).view(np.uint8), axis=-1, bitorder="little")
    return 2.0 * bits - 1.0


def _rescale(acc: torch.Tensor, post: Requantize | Binarize) -> np.ndarray:
    """NCHW accumulators through the output stage, back to NHWC stored form."""
    acc = acc.permute(0, 2, 3, 1).numpy()
    if isinstance(post, Binarize):
        bits = (acc + post.bias >= 0) != post.flip
        return np.packbits(bits.astype(np.uint8), axis=-1, bitorder="little").view(np.int8)
    real = (acc + post.bias) * post.multiplier.astype(np.float64) * np.exp2(post.shift.astype(np.float64) - MULTIPLIER_FRACTION_BITS)
    return np.clip(np.round(real), post.clamp_min, post.clamp_max).astype(np.int8)


def _conv(graph: Graph, node: Conv, x: np.ndarray) -> np.ndarray:
    pad = (node.padding.left, node.padding.right, node.padding.top, node.padding.bottom)
    if graph.tensors[node.input].kind == ArithMode.BINARY:
        signs = _nchw(_unpack_signs(x))
        inside = F.pad(torch.ones_like(signs[:1, :1]), pad)
        border = torch.as_tensor(binary_padding_signs(signs.shape[1]), dtype=torch.float64).view(1, -1, 1, 1)
        inputs = F.pad(signs, pad) + (1 - inside) * border
        weight = torch.as_tensor(_unpack_signs(node.weight)).permute(0, 3, 1, 2)
    else:
        inputs = F.pad(_nchw(x), pad)
        weight = torch.as_tensor(node.weight.astype(np.float64)).permute(0, 3, 1, 2)
    return _rescale(F.conv2d(inputs, weight, None, node.stride, groups=node.groups), node.post)


def _pool(node: Pool, x: np.ndarray) -> np.ndarray:
    pad = (node.padding.left, node.padding.right, node.padding.top, node.padding.bottom)
    if node.kind == PoolKind.MAX:
        acc = F.max_pool2d(F.pad(_nchw(x), pad, value=-torch.inf), node.kernel, node.stride)
    else:
        acc = F.avg_pool2d(F.pad(_nchw(x), pad), node.kernel, node.stride) * (node.kernel[0] * node.kernel[1])
    return _rescale(acc, node.post)


def run_node(graph: Graph, node: Node, values: dict[str, np.ndarray]) -> np.ndarray:
    """The output of ``node`` (stored NHWC form) from its input tensors in ``values``."""
    if isinstance(node, Conv):
        return _conv(graph, node, values[node.input])
    if isinstance(node, Pool):
        return _pool(node, values[node.input])
    if isinstance(node, Add):
        first, second = (_nchw(values[name]) for name in node.inputs)
        return _rescale(first * node.scales[0] + second * node.scales[1], node.post)
    if isinstance(node, Concat):
        return np.concatenate([values[name] for name in node.inputs], axis=-1)
    if isinstance(node, ChannelShuffle):
        shuffled = F.channel_shuffle(_nchw(values[node.input]), node.groups)
        return shuffled.permute(0, 2, 3, 1).numpy().astype(np.int8)
    if isinstance(node, Slice):
        return values[node.input][..., node.start:node.stop]
    raise ValueError(f"Graph node must be one of Conv, Pool, Add, Concat, ChannelShuffle, Slice, not {node!r}")
