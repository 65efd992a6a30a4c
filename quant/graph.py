"""The integer graph: what the quantizer produces and both the golden model and the compiler consume.

Layout
------
Every tensor is one image's ``(H, W, C)`` block, channels last (NHWC with the
batch outermost): a pixel's channels are one contiguous row, which is what a
GEMM row of the accelerator is. Two kinds of tensor (``hdl.numerics.ArithMode``):

* ``INT8``: symmetric int8, zero point 0 (the array subtracts no input zero
  point and pads borders with 0), real value = ``scale * q``.
* ``BINARY``: +1/-1 values packed 8 per byte along C by ``numerics.pack_bits``
  (bit ``b`` of lane ``l`` is channel ``8l + b``, bit 1 = +1), so the stored
  shape is ``(H, W, C // 8)``; C must be a multiple of 8 so that no lane
  carries padding bits into a reduction. ``scale`` is 1.

Nodes run in list order (a topological order); each names its input and
output tensors. A fully connected layer is a ``Conv`` whose kernel covers its
whole input (``kernel == (H, W)``, output ``(1, 1, N)``), so its weights are
laid out like any convolution's.
"""
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple, Union

import numpy as np

from hdl.numerics import (
    BINARY_VALUES_PER_LANE,
    INT8_MAX,
    INT8_MIN,
    SCALE_BITS,
    ArithMode,
    binary_signs,
    neutral_padding,
)

__all__ = [
    "Tensor", "Padding", "Requantize", "Binarize", "Conv", "PoolKind", "Pool", "Add", "Concat",
    "ChannelShuffle", "Slice", "Node", "Graph", "binary_padding_signs", "conv_output_size",
]


class Tensor(NamedTuple):
    """A named activation tensor of one image: ``shape`` is ``(H, W, C)`` in channels (not packed lanes)."""
    name: str
    shape: tuple[int, int, int]
    scale: float
    kind: ArithMode = ArithMode.INT8

    @property
    def stored_shape(self) -> tuple[int, int, int]:
        """Shape of the stored int8 array: binary tensors hold 8 channels per byte."""
        height, width, channels = self.shape
        return (height, width, channels if self.kind == ArithMode.INT8 else channels // BINARY_VALUES_PER_LANE)


class Padding(NamedTuple):
    """Border rows and columns added around the input (asymmetric: ceil-mode pooling pads bottom/right only)."""
    top: int
    bottom: int
    left: int
    right: int


@dataclass(frozen=True, eq=False)
class Requantize:
    """int8 output stage: ``numerics.requantize(acc, bias, multiplier, shift, 0, clamp_min, clamp_max)``.

    ``bias`` (int32), ``multiplier`` (``numerics.quantize_multiplier``) and ``shift`` are
    per output channel, shape ``(C,)``. ReLU is ``clamp_min = 0``, ReLU6 also
    ``clamp_max = round(6 / output scale)``.
    """
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    clamp_min: int = INT8_MIN
    clamp_max: int = INT8_MAX


@dataclass(frozen=True, eq=False)
class Binarize:
    """Binary output stage: ``numerics.binarize(acc, bias, flip)`` per output channel, shape ``(C,)``.

    ``bias = -threshold`` of the batch norm that followed the layer; ``flip``
    where its scale was negative.
    """
    bias: np.ndarray
    flip: np.ndarray


OutputStage = Union[Requantize, Binarize]


@dataclass(frozen=True, eq=False)
class Conv:
    """Convolution as a GEMM: ``acc[p, o] = sum over (kh, kw, c in group) of x * w``, then ``post``.

    ``weight`` is ``(C_out, kh, kw, C_in // groups)`` int8 for an int8 input; for a
    binary input (``arith == BINARY``, groups must be 1) it holds packed lanes,
    ``(C_out, kh, kw, C_in // 8)``, packed like the activations. Border pixels are
    0 for int8 inputs and ``numerics.neutral_padding(BINARY)[0]`` lanes for binary
    ones. The output tensor's kind says which ``post`` stage applies.
    """
    name: str
    input: str
    output: str
    weight: np.ndarray
    stride: tuple[int, int]
    padding: Padding
    groups: int
    arith: ArithMode
    post: OutputStage

    @property
    def kernel(self) -> tuple[int, int]:
        return self.weight.shape[1], self.weight.shape[2]


class PoolKind(Enum):
    MAX = "max"
    AVG = "avg"


@dataclass(frozen=True, eq=False)
class Pool:
    """Pooling through the accumulator's ``numerics.combine_rows`` (see ``Combine``), then ``post``.

    MAX: OVERWRITE with the first window tap, MAX with the others (scale 1),
    borders ``INT8_MIN``; ``post`` is the identity requantization, so the output
    scale equals the input scale. AVG (count_include_pad): ADD over the taps
    (scale 1), borders 0, the divisor folded into ``post.multiplier``.
    A global average pool is AVG with ``kernel == (H, W)``.
    """
    name: str
    input: str
    output: str
    kind: PoolKind
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: Padding
    post: Requantize


@dataclass(frozen=True, eq=False)
class Add:
    """Residual add: OVERWRITE ``inputs[0] * scales[0]``, ADD ``inputs[1] * scales[1]``, then ``post``.

    ``scales`` are int16 (``numerics.SCALE_BITS``) that bring both inputs to one
    accumulator scale; ``post.bias`` is 0.
    """
    name: str
    inputs: tuple[str, str]
    output: str
    scales: tuple[int, int]
    post: Requantize


@dataclass(frozen=True, eq=False)
class Concat:
    """Channel concatenation; all inputs and the output share one scale, so it moves data only."""
    name: str
    inputs: tuple[str, ...]
    output: str


@dataclass(frozen=True, eq=False)
class ChannelShuffle:
    """ShuffleNet's shuffle: output channel ``k * groups + g`` is input channel ``g * (C // groups) + k``."""
    name: str
    input: str
    output: str
    groups: int


@dataclass(frozen=True, eq=False)
class Slice:
    """Channels ``start:stop`` of the input (ShuffleNetV2's channel split is two slices); data movement only."""
    name: str
    input: str
    output: str
    start: int
    stop: int


Node = Union[Conv, Pool, Add, Concat, ChannelShuffle, Slice]


def _check_scale(value: int) -> None:
    low, high = -(1 << (SCALE_BITS - 1)), (1 << (SCALE_BITS - 1)) - 1
    if not low <= value <= high:
        raise ValueError(f"Add input scale must be from {low} to {high}, not {value}")


@dataclass
class Graph:
    """Tensors by name, nodes in execution order, one input and one output tensor."""
    tensors: dict[str, Tensor]
    nodes: list[Node] = field(default_factory=list)
    input: str = "input"
    output: str = "output"

    def __post_init__(self):
        for node in self.nodes:
            inputs = node.inputs if isinstance(node, (Add, Concat)) else (node.input,)
            for name in (*inputs, node.output):
                if name not in self.tensors:
                    raise ValueError(f"Node {node.name!r} refers to tensor {name!r}, which the graph does not have")
            if isinstance(node, Conv) and node.arith == ArithMode.BINARY and node.groups != 1:
                raise ValueError(f"Binary convolution {node.name!r} must have groups 1, not {node.groups}")
            if isinstance(node, Add):
                for scale in node.scales:
                    _check_scale(scale)
        for tensor in self.tensors.values():
            if tensor.kind == ArithMode.BINARY and tensor.shape[2] % BINARY_VALUES_PER_LANE:
                raise ValueError(f"Binary tensor {tensor.name!r} must have a multiple of "
                                 f"{BINARY_VALUES_PER_LANE} channels, not {tensor.shape[2]}")


def binary_padding_signs(channels: int) -> np.ndarray:
    """The +1/-1 value of each channel of a binary border pixel (lanes of ``neutral_padding(BINARY)[0]``)."""
    if channels % BINARY_VALUES_PER_LANE:
        raise ValueError(f"Binary channel count must be a multiple of {BINARY_VALUES_PER_LANE}, not {channels}")
    lane = neutral_padding(ArithMode.BINARY)[0]
    return binary_signs(np.full(channels // BINARY_VALUES_PER_LANE, lane))


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output positions of a window sliding over a padded axis (floor mode)."""
    return (size + pad_before + pad_after - kernel) // stride + 1
