"""torch.fx front end: an ``nn.Module`` becomes a float graph of the operations the accelerator runs.

Batch norm is folded into the convolution before it, ReLU/ReLU6/sign into the
operation before them, dropout and flatten disappear, and a linear layer
becomes a convolution whose kernel covers its whole (H, W, C) input, as in
``quant.graph``. Tensors are NCHW here (torch's layout); the integer graph is NHWC.
"""
import operator
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from .graph import ChannelShuffle, Concat, Padding, PoolKind, Slice, binary_padding_signs
from .zoo import BinaryConv2d, BinarySign

__all__ = ["Activation", "FloatConv", "FloatPool", "FloatAdd", "FloatGraph", "UnsupportedOperation", "trace",
           "run_float", "SUPPORTED"]

SUPPORTED = ("Conv2d (zeros padding, no dilation; any kernel, stride, groups), BinaryConv2d, Linear, "
             "BatchNorm2d after a convolution, ReLU / ReLU6 / BinarySign after a convolution or add, "
             "MaxPool2d, AvgPool2d (count_include_pad), AdaptiveAvgPool2d(1), add, torch.cat(dim=1), "
             "chunk(2, dim=1), ChannelShuffle, flatten(1), Dropout, Identity")


class UnsupportedOperation(ValueError):
    """An operation the accelerator cannot run; the message names the module, the op and what is supported."""


class Activation(Enum):
    NONE = "none"
    RELU = "relu"
    RELU6 = "relu6"
    SIGN = "sign"      # output becomes a binary (+1/-1) tensor


@dataclass(eq=False)
class FloatConv:
    """``y = channel_scale[o] * conv(x, weight)[o] + bias[o]``, then ``activation``.

    ``weight`` is torch's ``(C_out, C_in // groups, kh, kw)``; for a binary
    convolution (``binary``) it holds the +1/-1 signs and ``channel_scale``
    the XNOR-Net scale times any folded batch-norm scale (may be negative).
    """
    name: str
    input: str
    output: str
    weight: np.ndarray
    channel_scale: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: Padding
    groups: int
    binary: bool = False
    activation: Activation = Activation.NONE


@dataclass(eq=False)
class FloatPool:
    name: str
    input: str
    output: str
    kind: PoolKind
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: Padding


@dataclass(eq=False)
class FloatAdd:
    name: str
    inputs: tuple[str, str]
    output: str
    activation: Activation = Activation.NONE


FloatNode = FloatConv | FloatPool | FloatAdd | Concat | ChannelShuffle | Slice
_KIND_NAMES = {FloatConv: "a convolution or linear layer", FloatAdd: "an add"}


@dataclass
class FloatGraph:
    """Float nodes in execution order; ``shapes`` maps every tensor to its ``(H, W, C)``."""
    nodes: list[FloatNode] = field(default_factory=list)
    shapes: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    input: str = "input"
    output: str = ""

    def is_binary(self, tensor: str) -> bool:
        """Whether ``tensor`` holds +1/-1 values (the output of a convolution with a sign activation)."""
        producer = next((node for node in self.nodes if node.output == tensor), None)
        return isinstance(producer, FloatConv) and producer.activation == Activation.SIGN


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class _Tracer(fx.Tracer):
    """Keeps the binary layers whole: their straight-through arithmetic is not what the hardware runs."""

    def is_leaf_module(self, module, qualified_name):
        return isinstance(module, (BinaryConv2d, BinarySign)) or super().is_leaf_module(module, qualified_name)


class _Builder:
    def __init__(self, module: nn.Module, traced: fx.GraphModule):
        self.module = module
        self.traced = traced
        self.graph = FloatGraph()
        self.values: dict[str, str | tuple[str, ...]] = {}   # fx node name -> tensor name (or chunk tuple)

    def fail(self, node: fx.Node, op: str, why: str = "") -> None:
        where = f"module {node.target!r}" if node.op == "call_module" else f"node {node.name!r}"
        reason = f" ({why})" if why else ""
        raise UnsupportedOperation(f"Unsupported operation {op} at {where} of {type(self.module).__name__}{reason}; "
                                   f"supported: {SUPPORTED}")

    def tensor(self, node: fx.Node) -> str:
        return self.values[node.name]

    def shape(self, node: fx.Node) -> tuple[int, int, int]:
        n, c, h, w = node.meta["tensor_meta"].shape
        return (h, w, c)

    def producer(self, tensor: str):
        return next((node for node in self.graph.nodes if node.output == tensor), None)

    def add(self, node: fx.Node, float_node: FloatNode) -> None:
        self.graph.nodes.append(float_node)
        self.graph.shapes[float_node.output] = self.shape(node)
        self.values[node.name] = float_node.output

    def fuse(self, node: fx.Node, op: str, kinds: tuple[type, ...], apply) -> None:
        """Fold ``node`` into the node producing its input, which must be of ``kinds`` and used only here."""
        source = node.args[0]
        producer = self.producer(self.tensor(source))
        if not isinstance(producer, kinds) or len(source.users) != 1 or producer.activation != Activation.NONE:
            self.fail(node, op, f"it must directly follow {' or '.join(_KIND_NAMES[k] for k in kinds)} "
                                f"with no other user and no activation yet")
        apply(producer)
        self.values[node.name] = producer.output

    def activation(self, node: fx.Node, op: str, activation: Activation) -> None:
        kinds = (FloatConv,) if activation == Activation.SIGN else (FloatConv, FloatAdd)
        self.fuse(node, op, kinds, lambda producer: setattr(producer, "activation", activation))

    def conv(self, node: fx.Node, conv: nn.Conv2d) -> None:
        if conv.padding_mode != "zeros" or _pair(conv.dilation) != (1, 1) or isinstance(conv.padding, str):
            self.fail(node, "Conv2d", "padding must be numbers with padding_mode 'zeros' and dilation 1")
        binary = isinstance(conv, BinaryConv2d)
        if binary != self.graph.is_binary(self.tensor(node.args[0])):
            self.fail(node, type(conv).__name__, "binary convolutions take exactly the outputs of BinarySign")
        weight = conv.weight.detach()
        if binary:
            scale, weight = conv.channel_scale().detach(), torch.where(weight >= 0, 1.0, -1.0)
        else:
            scale = torch.ones(conv.out_channels)
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
        ph, pw = _pair(conv.padding)
        self.add(node, FloatConv(node.name, self.tensor(node.args[0]), node.name, weight.numpy().copy(),
                                 scale.numpy().copy(), bias.numpy().copy(), _pair(conv.stride),
                                 Padding(ph, ph, pw, pw), conv.groups, binary))

    def linear(self, node: fx.Node, linear: nn.Linear) -> None:
        source = self.tensor(node.args[0])
        h, w, c = self.graph.shapes[source]
        weight = linear.weight.detach().numpy().reshape(linear.out_features, c, h, w)
        bias = linear.bias.detach().numpy() if linear.bias is not None else np.zeros(linear.out_features)
        self.graph.nodes.append(FloatConv(node.name, source, node.name, weight.copy(), np.ones(linear.out_features),
                                          bias.copy(), (1, 1), Padding(0, 0, 0, 0), 1))
        self.graph.shapes[node.name] = (1, 1, linear.out_features)
        self.values[node.name] = node.name

    def batch_norm(self, node: fx.Node, bn: nn.BatchNorm2d) -> None:
        gain = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias.detach() - bn.running_mean * gain).numpy()
        gain = gain.numpy()

        def fold(conv: FloatConv):
            conv.channel_scale = conv.channel_scale * gain
            conv.bias = conv.bias * gain + shift
        self.fuse(node, "BatchNorm2d", (FloatConv,), fold)

    def pool(self, node: fx.Node, pool: nn.Module) -> None:
        h, w, _ = self.graph.shapes[self.tensor(node.args[0])]
        if isinstance(pool, nn.AdaptiveAvgPool2d):
            if _pair(pool.output_size) != (1, 1):
                self.fail(node, "AdaptiveAvgPool2d", "only output size 1 (global average pooling)")
            kind, kernel, stride, padding = PoolKind.AVG, (h, w), (1, 1), Padding(0, 0, 0, 0)
        else:
            kernel, stride, (ph, pw) = _pair(pool.kernel_size), _pair(pool.stride), _pair(pool.padding)
            kind = PoolKind.MAX if isinstance(pool, nn.MaxPool2d) else PoolKind.AVG
            if kind == PoolKind.MAX and _pair(pool.dilation) != (1, 1):
                self.fail(node, "MaxPool2d", "dilation must be 1")
            if kind == PoolKind.AVG and (pool.ceil_mode or not pool.count_include_pad
                                         or pool.divisor_override is not None):
                self.fail(node, "AvgPool2d", "needs ceil_mode False, count_include_pad True, no divisor_override")
            out_h, out_w = self.shape(node)[:2]
            # ceil mode adds windows that run past the bottom/right border: pad there (with INT8_MIN).
            # Only the rows the windows reach: less than ``ph`` if floor mode drops them.
            padding = Padding(ph, max(0, (out_h - 1) * stride[0] + kernel[0] - h - ph),
                              pw, max(0, (out_w - 1) * stride[1] + kernel[1] - w - pw))
        self.add(node, FloatPool(node.name, self.tensor(node.args[0]), node.name, kind, kernel, stride, padding))

    def call_module(self, node: fx.Node) -> None:
        module = self.traced.get_submodule(node.target)
        if isinstance(module, nn.Conv2d):
            self.conv(node, module)
        elif isinstance(module, nn.Linear):
            self.linear(node, module)
        elif isinstance(module, nn.BatchNorm2d):
            self.batch_norm(node, module)
        elif isinstance(module, nn.ReLU6) or (isinstance(module, nn.Hardtanh)
                                              and (module.min_val, module.max_val) == (0.0, 6.0)):
            self.activation(node, "ReLU6", Activation.RELU6)
        elif isinstance(module, nn.ReLU):
            self.activation(node, "ReLU", Activation.RELU)
        elif isinstance(module, BinarySign):
            self.activation(node, "BinarySign", Activation.SIGN)
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            self.pool(node, module)
        elif isinstance(module, nn.ChannelShuffle):
            self.add(node, ChannelShuffle(node.name, self.tensor(node.args[0]), node.name, module.groups))
        elif isinstance(module, nn.Flatten):
            self.flatten(node, module.start_dim)
        elif isinstance(module, (nn.Dropout, nn.Identity)):
            self.values[node.name] = self.tensor(node.args[0])
        else:
            self.fail(node, type(module).__name__)

    def flatten(self, node: fx.Node, start_dim: int) -> None:
        if start_dim != 1:
            self.fail(node, "flatten", f"start_dim must be 1, not {start_dim}")
        self.values[node.name] = self.tensor(node.args[0])

    def chunk(self, node: fx.Node, chunks, dim) -> None:
        source = self.tensor(node.args[0])
        channels = self.graph.shapes[source][2]
        if chunks != 2 or dim != 1 or channels % 2:
            self.fail(node, "chunk", f"only chunk(2, dim=1) of an even channel count, not chunk({chunks}, dim={dim})")
        halves = []
        for index in range(2):
            name = f"{node.name}_{index}"
            start = index * channels // 2
            self.graph.nodes.append(Slice(name, source, name, start, start + channels // 2))
            self.graph.shapes[name] = self.graph.shapes[source][:2] + (channels // 2,)
            halves.append(name)
        self.values[node.name] = tuple(halves)

    def call_function(self, node: fx.Node) -> None:
        target = node.target
        args = node.args
        if target in (operator.add, torch.add) and len(args) == 2 and all(isinstance(a, fx.Node) for a in args):
            self.add(node, FloatAdd(node.name, (self.tensor(args[0]), self.tensor(args[1])), node.name))
        elif target is torch.cat:
            dim = args[1] if len(args) > 1 else node.kwargs.get("dim", 0)
            if dim != 1:
                self.fail(node, "torch.cat", f"only along channels (dim=1), not dim={dim}")
            self.add(node, Concat(node.name, tuple(self.tensor(a) for a in args[0]), node.name))
        elif target in (F.relu, torch.relu):
            self.activation(node, "relu", Activation.RELU)
        elif target is F.relu6:
            self.activation(node, "relu6", Activation.RELU6)
        elif target is torch.flatten:
            self.flatten(node, args[1] if len(args) > 1 else node.kwargs.get("start_dim", 0))
        elif target is torch.chunk:
            self.chunk(node, args[1], args[2] if len(args) > 2 else node.kwargs.get("dim", 0))
        elif target is operator.getitem and isinstance(self.values.get(args[0].name), tuple):
            self.values[node.name] = self.values[args[0].name][args[1]]
        else:
            self.fail(node, getattr(target, "__name__", repr(target)))

    def call_method(self, node: fx.Node) -> None:
        if node.target == "chunk":
            self.chunk(node, node.args[1], node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0))
        elif node.target == "flatten":
            self.flatten(node, node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0))
        elif node.target == "relu":
            self.activation(node, "relu", Activation.RELU)
        else:
            self.fail(node, f"Tensor.{node.target}")

    def build(self) -> FloatGraph:
        for node in self.traced.graph.nodes:
            if node.op == "placeholder":
                self.values[node.name] = self.graph.input
                self.graph.shapes[self.graph.input] = self.shape(node)
            elif node.op == "output":
                self.graph.output = self.tensor(node.args[0])
            else:
                getattr(self, node.op, lambda n: self.fail(n, n.op))(node)
        return self.graph


def trace(module: nn.Module, input_shape: tuple[int, int, int]) -> FloatGraph:
    """Trace ``module`` (in eval mode) for inputs of ``(C, H, W)`` into a ``FloatGraph``.

    Raises ``UnsupportedOperation`` naming the module, the op and what is supported.
    """
    if len(input_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in input_shape):
        raise ValueError(f"Input shape must be (C, H, W) of positive integers, not {input_shape!r}")
    module = module.eval()
    traced = fx.GraphModule(module, _Tracer().trace(module))
    with torch.no_grad():
        ShapeProp(traced).propagate(torch.zeros(1, *input_shape))
    return _Builder(module, traced).build()


def _binary_pad(x: torch.Tensor, padding: Padding) -> torch.Tensor:
    inside = F.pad(torch.ones_like(x[:1, :1]), (padding.left, padding.right, padding.top, padding.bottom))
    signs = torch.tensor(binary_padding_signs(x.shape[1]), dtype=x.dtype).view(1, -1, 1, 1)
    return F.pad(x, (padding.left, padding.right, padding.top, padding.bottom)) + (1 - inside) * signs


def _activate(y: torch.Tensor, activation: Activation) -> torch.Tensor:
    if activation == Activation.RELU:
        return F.relu(y)
    if activation == Activation.RELU6:
        return F.relu6(y)
    if activation == Activation.SIGN:
        clipped = y.clamp(-1, 1)   # straight-through gradient for fine-tuning, exactly +1/-1 forward
        return torch.where(y >= 0, 1.0, -1.0).to(y.dtype) + (clipped - clipped.detach())
    return y


def run_float(graph: FloatGraph, images: torch.Tensor, parameters: dict[str, tuple] | None = None,
              on_tensor=None) -> dict[str, torch.Tensor]:
    """Every tensor of ``graph`` for NCHW ``images``, in float (the calibration and accuracy reference).

    ``parameters`` replaces the ``(weight, channel_scale, bias)`` of convolutions
    by name, and ``on_tensor(name, value)`` may replace each tensor as it is
    produced: quantization-aware training uses both (trainable weights, fake
    quantization). Gradients flow unless the caller disables them.
    """
    parameters = parameters or {}
    on_tensor = on_tensor or (lambda name, value: value)
    values = {graph.input: on_tensor(graph.input, images)}
    for node in graph.nodes:
        if isinstance(node, FloatConv):
            x = values[node.input]
            pad = (node.padding.left, node.padding.right, node.padding.top, node.padding.bottom)
            x = _binary_pad(x, node.padding) if node.binary else F.pad(x, pad)
            weight, channel_scale, bias = (torch.as_tensor(p, dtype=x.dtype) for p in
                                           parameters.get(node.name, (node.weight, node.channel_scale, node.bias)))
            y = F.conv2d(x, weight, None, node.stride, groups=node.groups)
            y = _activate(y * channel_scale.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1), node.activation)
        elif isinstance(node, FloatPool):
            x = values[node.input]
            pad = (node.padding.left, node.padding.right, node.padding.top, node.padding.bottom)
            if node.kind == PoolKind.MAX:
                y = F.max_pool2d(F.pad(x, pad, value=-torch.inf), node.kernel, node.stride)
            else:
                y = F.avg_pool2d(F.pad(x, pad), node.kernel, node.stride)
        elif isinstance(node, FloatAdd):
            y = _activate(values[node.inputs[0]] + values[node.inputs[1]], node.activation)
        elif isinstance(node, Concat):
            y = torch.cat([values[name] for name in node.inputs], 1)
        elif isinstance(node, ChannelShuffle):
            y = F.channel_shuffle(values[node.input], node.groups)
        else:
            y = values[node.input][:, node.start:node.stop]
        values[node.output] = on_tensor(node.output, y)
    return values
