"""Golden model: runs an integer ``Graph`` in numpy exactly as the accelerator computes it.

Every value comes from ``hdl.numerics``: convolutions are im2col GEMMs through
``golden_gemm`` (int8, or packed binary lanes), their outputs go through
``requantize`` or ``binarize`` + ``pack_bits``; pooling and residual adds are
accumulator rows built with ``combine_rows`` and then requantized. Concat,
slice and shuffle only move bytes. Tensors are batches of the graph's NHWC
layout: ``(N, H, W, C)`` int8, or ``(N, H, W, C // 8)`` packed lanes when binary.
"""
import numpy as np

from hdl.numerics import (
    INT8_MIN,
    ArithMode,
    Combine,
    binarize,
    combine_rows,
    golden_gemm,
    neutral_padding,
    pack_bits,
    requantize,
)

from .graph import Add, Binarize, ChannelShuffle, Concat, Conv, Graph, Padding, Pool, PoolKind, Requantize, Slice

__all__ = ["run", "windows"]


def windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: Padding,
            pad_value: int) -> np.ndarray:
    """The sliding windows of an (N, H, W, C) batch: (N, H_out, W_out, kh, kw, C), borders ``pad_value``."""
    padded = np.pad(x, ((0, 0), (padding.top, padding.bottom), (padding.left, padding.right), (0, 0)),
                    constant_values=pad_value)
    view = np.lib.stride_tricks.sliding_window_view(padded, kernel, axis=(1, 2))
    return view[:, ::stride[0], ::stride[1]].transpose(0, 1, 2, 4, 5, 3)


def _post(acc: np.ndarray, post: Requantize | Binarize) -> np.ndarray:
    if isinstance(post, Requantize):
        return requantize(acc, post.bias, post.multiplier, post.shift, 0, post.clamp_min, post.clamp_max)
    return pack_bits(binarize(acc, post.bias, post.flip))


def _conv(node: Conv, x: np.ndarray) -> np.ndarray:
    pad_value = neutral_padding(node.arith)[0]
    patches = windows(x, node.kernel, node.stride, node.padding, pad_value)
    batch, height, width = patches.shape[:3]
    rows = batch * height * width
    weight = node.weight
    group_in = patches.shape[-1] // node.groups
    group_out = len(weight) // node.groups
    acc = np.empty((rows, len(weight)), dtype=np.int32)
    for group in range(node.groups):
        a = patches[..., group * group_in:(group + 1) * group_in].reshape(rows, -1)
        w = weight[group * group_out:(group + 1) * group_out].reshape(group_out, -1).T
        acc[:, group * group_out:(group + 1) * group_out] = golden_gemm(a, w, node.arith)
    out = _post(acc, node.post)
    return out.reshape(batch, height, width, -1)


def _pool(node: Pool, x: np.ndarray) -> np.ndarray:
    pad_value = INT8_MIN if node.kind == PoolKind.MAX else 0
    patches = windows(x, node.kernel, node.stride, node.padding, pad_value)
    combine = Combine.MAX if node.kind == PoolKind.MAX else Combine.ADD
    acc = combine_rows(None, patches[..., 0, 0, :], 1, Combine.OVERWRITE)
    for row in range(node.kernel[0]):
        for col in range(node.kernel[1]):
            if row or col:
                acc = combine_rows(acc, patches[..., row, col, :], 1, combine)
    return _post(acc, node.post)


def _add(node: Add, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    acc = combine_rows(None, first, node.scales[0], Combine.OVERWRITE)
    return _post(combine_rows(acc, second, node.scales[1], Combine.ADD), node.post)


def _int8_only(graph: Graph, node, tensor: str) -> None:
    if graph.tensors[tensor].kind != ArithMode.INT8:
        raise ValueError(f"{type(node).__name__} {node.name!r} needs an int8 tensor, not binary {tensor!r}")


def run(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of ``graph`` for the int8 input batch ``x`` of shape (N, H, W, C)."""
    x = np.asarray(x)
    expected = graph.tensors[graph.input].stored_shape
    if x.ndim != 4 or x.shape[1:] != expected or x.dtype != np.int8:
        raise ValueError(f"Golden model input must be int8 of shape (N, {', '.join(map(str, expected))}), "
                         f"not {x.dtype} {x.shape}")
    values = {graph.input: x}
    for node in graph.nodes:
        if isinstance(node, Conv):
            out = _conv(node, values[node.input])
        elif isinstance(node, Pool):
            _int8_only(graph, node, node.input)
            out = _pool(node, values[node.input])
        elif isinstance(node, Add):
            out = _add(node, values[node.inputs[0]], values[node.inputs[1]])
        elif isinstance(node, Concat):
            out = np.concatenate([values[name] for name in node.inputs], axis=-1)
        elif isinstance(node, ChannelShuffle):
            _int8_only(graph, node, node.input)
            source = values[node.input]
            out = source.reshape(*source.shape[:-1], node.groups, -1).swapaxes(-1, -2).reshape(source.shape)
        elif isinstance(node, Slice):
            _int8_only(graph, node, node.input)
            out = values[node.input][..., node.start:node.stop]
        else:
            raise ValueError(f"Graph node must be one of Conv, Pool, Add, Concat, ChannelShuffle, Slice, not {node!r}")
        values[node.output] = np.ascontiguousarray(out)
    return values
