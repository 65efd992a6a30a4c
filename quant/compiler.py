"""Compile an integer graph (``quant.graph``) into one accelerator program and its DRAM image.

Every tensor is a ``FeatureMap`` (NHWC in channel blocks of the array's
width). Concatenation and channel slices are addresses: a concat's inputs are
written straight into their channel blocks of its output, and a slice is a
view of its input's blocks, so neither copies data (their channel offsets
must be whole blocks). Dense convolutions run on the systolic array
(``quant.conv``), depthwise convolutions, pooling and residual adds on the
accumulator path (``quant.vector``). Layers run one after another
(``program.fenced``); inside a layer loads, computes and stores overlap.

Not supported yet (a clear error names the node): binary layers, channel
shuffle, group convolutions other than depthwise, non-square arrays.
"""
from dataclasses import dataclass

import numpy as np

from hdl.config import AcceleratorConfig
from hdl.isa import Instruction, Opcode
from hdl.numerics import ArithMode

from .conv import lower_conv
from .graph import ChannelShuffle, Concat, Conv, Graph, Pool, PoolKind, Requantize, Slice
from .memory import FeatureMap, MemoryImage
from .program import fenced, load_channel_records, serialized
from .vector import lower_add, lower_depthwise, lower_pool

__all__ = ["CompiledNet", "LayerSpan", "UnsupportedLayer", "compile_graph"]


class UnsupportedLayer(ValueError):
    """A node the compiler cannot lower; the message names it and what is supported."""


@dataclass(frozen=True)
class LayerSpan:
    """The instructions ``program[start:end]`` that compute node ``name`` (its fence included)."""
    name: str
    start: int
    end: int


@dataclass
class CompiledNet:
    config: AcceleratorConfig
    graph: Graph
    image: MemoryImage
    program: list[Instruction]
    program_address: int
    feature_maps: dict[str, FeatureMap]
    layers: list[LayerSpan]

    def read_tensor(self, dram: bytes, name: str) -> np.ndarray:
        """Tensor ``name`` as stored in ``dram``: (H, W, C) int8."""
        image = MemoryImage(self.image.alignment, bytearray(dram), self.image.regions)
        return image.read_feature_map(self.feature_maps[name])


def _view(parent: FeatureMap, name: str, first_channel: int, channels: int) -> FeatureMap:
    if first_channel % parent.lanes:
        raise UnsupportedLayer(f"Tensor {name!r} starts at channel {first_channel} of {parent.name!r}; "
                               f"concat and slice offsets must be multiples of {parent.lanes} channels")
    address = parent.address + first_channel // parent.lanes * parent.block_stride
    return FeatureMap(name, address, parent.height, parent.width, channels, parent.lanes, parent.row_stride)


def _place(graph: Graph, image: MemoryImage, lanes: int, x: np.ndarray) -> dict[str, FeatureMap]:
    """A feature map for every tensor: concat inputs and slices are views of other maps."""
    maps: dict[str, FeatureMap] = {graph.input: image.place_feature_map(graph.input, x, lanes)}
    parents: dict[str, tuple[str, int]] = {}        # tensor -> (tensor it is a view of, first channel)
    for node in graph.nodes:
        if isinstance(node, Concat):
            offset = 0
            for name in node.inputs:
                parents[name] = (node.output, offset)
                offset += graph.tensors[name].shape[2]
        elif isinstance(node, Slice):
            parents[node.output] = (node.input, node.start)

    def resolve(name: str) -> FeatureMap:
        if name not in maps:
            height, width, channels = graph.tensors[name].shape
            if name in parents:
                parent, first = parents[name]
                maps[name] = _view(resolve(parent), name, first, channels)
            else:
                maps[name] = image.allocate_feature_map(name, height, width, channels, lanes)
        return maps[name]

    for name in graph.tensors:
        resolve(name)
    return maps


def _config(post: Requantize) -> Instruction:
    return Instruction(Opcode.CONFIG, {"mode": ArithMode.INT8, "zero_point": 0, "clamp_min": post.clamp_min,
                                       "clamp_max": post.clamp_max})


def _channel_records(config: AcceleratorConfig, image: MemoryImage, name: str, post: Requantize,
                     blocks: range) -> Instruction:
    """LOAD of ``post``'s per-channel records of output ``blocks``: channel row ``b - blocks.start`` for block ``b``."""
    cols = config.array.cols
    channels = slice(blocks.start * cols, blocks.stop * cols)
    return load_channel_records(image, f"{name}.channels.{blocks.start}", cols, post.bias[channels],
                                post.multiplier[channels], post.shift[channels])


def _lower(config: AcceleratorConfig, image: MemoryImage, node, maps: dict, blocks: range) -> list[Instruction]:
    """One node's instructions for output channel ``blocks`` (CONFIG and their records first)."""
    head = [_config(node.post), _channel_records(config, image, node.name, node.post, blocks)]
    y = maps[node.output]
    if isinstance(node, Conv) and node.groups == 1:
        return head + lower_conv(config, image, node.name, maps[node.input], y, node.weight, node.stride,
                                 (-node.padding.top, -node.padding.left), blocks)
    if isinstance(node, Conv):
        return serialized(head + lower_depthwise(config, image, node.name, maps[node.input], y,
                                                 node.weight[:, :, :, 0].transpose(1, 2, 0), node.stride,
                                                 (-node.padding.top, -node.padding.left), blocks))
    if isinstance(node, Pool):
        return serialized(head + lower_pool(config, maps[node.input], y, "max" if node.kind == PoolKind.MAX else "avg",
                                            node.kernel, node.stride, (-node.padding.top, -node.padding.left),
                                            blocks))
    return serialized(head + lower_add(config, maps[node.inputs[0]], maps[node.inputs[1]], y, *node.scales, blocks))


def _check(config: AcceleratorConfig, graph: Graph) -> None:
    if config.array.rows != config.array.cols:
        raise UnsupportedLayer(f"Compiling a network needs a square array (one channel block for inputs and "
                               f"outputs), not {config.array.rows}x{config.array.cols}")
    if ArithMode.INT8 not in config.array.modes:
        raise UnsupportedLayer(f"Compiling a network needs int8 arithmetic, not arith {config.array.arith.value}")
    for node in graph.nodes:
        outputs = [node.output]
        if any(graph.tensors[name].kind != ArithMode.INT8 for name in outputs):
            raise UnsupportedLayer(f"Node {node.name!r} ({type(node).__name__}) is binary; the compiler supports "
                                   "int8 layers only so far")
        if isinstance(node, ChannelShuffle):
            raise UnsupportedLayer(f"Node {node.name!r}: ChannelShuffle is not supported yet; supported: Conv, "
                                   "Pool, Add, Concat, Slice")
        if isinstance(node, Conv):
            cin = graph.tensors[node.input].shape[2]
            if node.groups not in (1, cin) or (node.groups == cin and len(node.weight) != cin):
                raise UnsupportedLayer(f"Node {node.name!r}: group convolution with {node.groups} groups is not "
                                       "supported; supported: groups 1 and depthwise")


def compile_graph(config: AcceleratorConfig, graph: Graph, x: np.ndarray) -> CompiledNet:
    """Lay out ``graph`` with input ``x`` ((H, W, C) int8) and build its program."""
    _check(config, graph)
    image = MemoryImage(config.bus_bytes)
    maps = _place(graph, image, config.array.cols, np.asarray(x))
    program: list[Instruction] = []
    layers = []
    for node in graph.nodes:
        if isinstance(node, (Concat, Slice)):
            continue
        start = len(program)
        # Output channel blocks in groups the channel memory holds, each group a fenced pass.
        out_blocks = maps[node.output].channel_blocks
        for first in range(0, out_blocks, config.channel_rows):
            blocks = range(first, min(first + config.channel_rows, out_blocks))
            program += fenced(_lower(config, image, node, maps, blocks))     # the program before is balanced
        layers.append(LayerSpan(node.name, start, len(program)))
    program.append(Instruction(Opcode.END, {}))
    region = image.place_program("program", program)
    return CompiledNet(config, graph, image, program, region.address, maps, layers)
