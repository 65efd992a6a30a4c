"""Compile an integer graph (``quant.graph``) into one accelerator program and its DRAM image.

Every tensor is a ``FeatureMap``: NHWC in channel blocks (``L = min(R, C)``
int8 channels, or binary channels packed 8 a byte), each block a row per
pixel. Channel split, concatenation and channel shuffle copy nothing: a
tensor's channels may sit in any lanes of any blocks (``CompiledNet.slots``),
so these nodes only relabel channels, and the permutation is folded into the
weights and channel records of the layers that read and write them. Where a
tensor's channels are placed is planned once for the whole net (``_plan``):
a computed channel is placed when the first layer reads it, next to the other
channels that layer reads from the same producer (ShuffleNetV2's kept half
then never moves); a per-channel layer (depthwise, pooling, add) writes its
outputs in the lanes of its inputs. Of the int8 channels placed together,
each producer's whole blocks of L come first, then the few channels left of
each share blocks with other producers' (``_Plan._place``): a producer
computes its part of a shared block from lane 0 and STOREs it at the byte
offset of its first lane (``_Plan.as_written``), so it writes no more blocks
than its channels need, and a layer reading a mixture reads fewer unused lanes
(against zero weights): the 232 channels ShuffleNetV2's last stage reads at
224x224 take 15 blocks of 16 lanes instead of 20.

Dense and group convolutions run on the systolic array (``quant.conv``): the
weights are laid out in array coordinates (output block x C columns, input
block x R lanes), so a group convolution is block-diagonal, and each output
block reduces only over the input blocks its groups touch (one fenced pass per
run of output blocks with the same input blocks). A convolution of the network
input whose few channels would leave most lanes idle (an RGB image: 3 of L)
reads an im2col copy of it that the compiler lays out beside it, (H_out,
W_out, kh * kw * C_in), as a pointwise convolution: its taps share lanes
(``_packs_input``; the host writes the input, so the copy costs no instructions). Binary convolutions run on
the array in binary mode: a binary block is a whole scratchpad row of R bytes
(8 R channels), written by R / (C / 8) output blocks of C channels, each
stored at its byte offset into the rows (STORE ``byte_offset``). Depthwise
convolutions run in the array's depthwise mode where the array has it and the
layer fits (``quant.depthwise``), otherwise, like pooling and residual adds,
on the accumulator path (``quant.vector``); so does a global average pool (a depthwise sum
with weights of one) whose window is at most R wide. Layers run one after another (``program.fenced``); inside
a layer loads, computes and stores overlap.
"""
from dataclasses import dataclass, field, replace

import numpy as np

from hdl.config import AcceleratorConfig
from hdl.isa import Instruction, Opcode
from hdl.numerics import BINARY_VALUES_PER_LANE, ArithMode, neutral_padding, stored_bytes

from .conv import lower_conv
from .depthwise import Fold, fold_block, lower_depthwise_array, plan_depthwise
from .golden import windows
from .graph import Add, Binarize, ChannelShuffle, Concat, Conv, Graph, Padding, Pool, PoolKind, Slice
from .memory import FeatureMap, MemoryImage, row_stride
from .program import fenced, load_channel_records
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
    # Per tensor, each logical channel's position in its feature map: block * lanes + lane.
    slots: dict[str, np.ndarray] = field(default_factory=dict)
    # Convolutions that read an im2col copy of the network input instead of it (``_packs_input``): a new
    # input must be written there too.
    input_copies: dict[str, FeatureMap] = field(default_factory=dict)

    def layer_programs(self) -> tuple[MemoryImage, list[tuple[int, list[Instruction]]]]:
        """How the layers run one at a time: a copy of the image with each layer's own program (its
        span, then END) added, and the (address, program) of each, in layer order."""
        image = MemoryImage(self.image.alignment, bytearray(self.image.data), dict(self.image.regions))
        programs = []
        for span in self.layers:
            program = self.program[span.start:span.end] + [Instruction(Opcode.END, {})]
            programs.append((image.place_program(f"program.layer.{span.name}", program).address, program))
        return image, programs

    def read_tensor(self, dram: bytes, name: str) -> np.ndarray:
        """Tensor ``name`` as stored in ``dram``: (H, W, C) int8, or (H, W, C / 8) packed lanes if binary."""
        image = MemoryImage(self.image.alignment, bytearray(dram), self.image.regions)
        fmap = self.feature_maps[name]
        rows = image.read_blocks(fmap)
        if fmap.binary:
            return np.concatenate([rows[:, :, b, :fmap.row_bytes(b)] for b in range(fmap.channel_blocks)], axis=2)
        physical = np.zeros(rows.shape[:2] + (fmap.channel_blocks, fmap.lanes), dtype=np.int64)
        physical[..., :rows.shape[3]] = rows
        slots = self.slots.get(name, np.arange(fmap.channels))
        return physical.reshape(*rows.shape[:2], -1)[:, :, slots]


def _is_depthwise(graph: Graph, node) -> bool:
    return (isinstance(node, Conv) and node.arith == ArithMode.INT8 and node.groups > 1
            and node.groups == graph.tensors[node.input].shape[2] == len(node.weight))


def _per_channel(graph: Graph, node) -> bool:
    """Output channel c is computed from input channel c alone, in the same lane."""
    return isinstance(node, (Pool, Add)) or _is_depthwise(graph, node)


def _inputs(node) -> tuple[str, ...]:
    return node.inputs if isinstance(node, (Add, Concat)) else (node.input,)


class _Plan:
    """Where every channel of every tensor lives (see the module docstring)."""

    def __init__(self, config: AcceleratorConfig, graph: Graph, image: MemoryImage, x: np.ndarray):
        self.graph, self.image = graph, image
        self.int8_lanes = min(config.array.rows, config.array.cols)
        # A binary block is as many output blocks of C channels (C / 8 bytes each) as fill R bytes.
        cols = config.array.cols
        self.binary_lanes = cols * max(1, config.array.rows // max(1, cols // BINARY_VALUES_PER_LANE))
        # Every tensor's channels as (computed tensor, channel): movement nodes only relabel.
        self.origin: dict[str, list[tuple[str, int]]] = {}
        for name in (graph.input, *(node.output for node in graph.nodes)):
            self.origin[name] = [(name, c) for c in range(graph.tensors[name].shape[2])]
        for node in graph.nodes:
            if isinstance(node, Concat):
                self.origin[node.output] = [o for name in node.inputs for o in self.origin[name]]
            elif isinstance(node, Slice):
                self.origin[node.output] = self.origin[node.input][node.start:node.stop]
            elif isinstance(node, ChannelShuffle):
                source = self.origin[node.input]
                per_group = len(source) // node.groups
                self.origin[node.output] = [source[(k % node.groups) * per_group + k // node.groups]
                                            for k in range(len(source))]
        self.blocks: dict[str, list[tuple[int, int]]] = {}    # computed tensor -> [(address, live lanes)]
        self.where: dict[tuple[str, int], tuple[int, int]] = {}   # (tensor, channel) -> (its block, lane)
        fmap = image.place_feature_map(graph.input, x, self.int8_lanes)
        self._adopt(graph.input, fmap, [(graph.input, c) for c in range(fmap.channels)])
        self.packed: dict[str, FeatureMap] = {}       # conv node -> the im2col copy of the input it reads
        for node in graph.nodes:
            if _packs_input(graph, node, self.int8_lanes):
                patches = windows(np.asarray(x)[None], node.kernel, node.stride, node.padding,
                                  neutral_padding(node.arith)[0])[0]
                self.packed[node.name] = image.place_feature_map(
                    f"{node.name}.im2col", patches.reshape(*patches.shape[:2], -1), self.int8_lanes)
        for node in graph.nodes:
            if isinstance(node, (Conv, Pool, Add)):
                for name in _inputs(node):
                    self._place(name)
                if _per_channel(graph, node):
                    self._mirror(node)
        self._place(graph.output)
        for name in self.origin:
            self._place(name)       # tensors nothing reads

    def lanes(self, name: str) -> int:
        return self.binary_lanes if self.graph.tensors[name].kind == ArithMode.BINARY else self.int8_lanes

    def _adopt(self, owner: str, fmap: FeatureMap, channels: list[tuple[str, int]]) -> None:
        """Record the blocks of ``fmap`` as ``owner``'s and ``channels`` as its lanes, in order."""
        first = len(self.blocks.setdefault(owner, []))
        self.blocks[owner] += [(fmap.block_address(b), 0, fmap.block_channels(b)) for b in range(fmap.channel_blocks)]
        for index, channel in enumerate(channels):
            self.where[channel] = (first + index // fmap.lanes, index % fmap.lanes)

    def _allocate(self, owner: str, count: int) -> FeatureMap:
        height, width, _ = self.graph.tensors[owner].shape
        part = len(self.blocks.get(owner, []))
        binary = self.graph.tensors[owner].kind == ArithMode.BINARY
        return self.image.allocate_feature_map(owner if not part else f"{owner}.{part}", height, width, count,
                                               self.lanes(owner), binary)

    def _place(self, name: str) -> None:
        """Give ``name``'s unplaced channels new blocks in ``name``'s order, producer after producer: int8
        ones packed lane after lane (a producer's run may start mid-block, which its STOREs reach by their
        byte offset), binary ones a run of whole blocks per producer."""
        pending: dict[str, list[tuple[str, int]]] = {}
        for channel in self.origin[name]:
            if channel not in self.where:
                pending.setdefault(channel[0], []).append(channel)
        if not pending:
            return
        if self.graph.tensors[name].kind == ArithMode.BINARY:
            for owner, channels in pending.items():
                self._adopt(owner, self._allocate(owner, len(channels)), channels)
            return
        lanes = self.lanes(name)
        # Each producer's whole blocks, then its last few channels in a block shared with other producers'
        # (first fit, most channels first): a producer still writes as few blocks as its channels need.
        whole = {owner: len(channels) // lanes for owner, channels in pending.items()}
        first_shared = sum(whole.values())
        taken: list[int] = []           # lanes taken in each shared block
        tails = {}                      # producer -> (block, first lane) of its last channels
        for owner in sorted(pending, key=lambda owner: -(len(pending[owner]) % lanes)):
            tail = len(pending[owner]) % lanes
            if tail:
                block = next((b for b, used in enumerate(taken) if used + tail <= lanes), len(taken))
                if block == len(taken):
                    taken.append(0)
                tails[owner] = (first_shared + block, taken[block])
                taken[block] += tail
        fmap = self._allocate(next(iter(pending)), (first_shared + len(taken)) * lanes)
        block = 0
        for owner, channels in pending.items():
            runs = [(block + b, 0, lanes) for b in range(whole[owner])]
            block += whole[owner]
            if owner in tails:
                runs.append((*tails[owner], len(channels) % lanes))
            blocks = self.blocks.setdefault(owner, [])
            places = [(len(blocks) + r, lane) for r, (_, first, count) in enumerate(runs)
                      for lane in range(first, first + count)]
            self.where.update(zip(channels, places))
            blocks += [(fmap.block_address(b), first, count) for b, first, count in runs]

    def _mirror(self, node) -> None:
        """Place the output of a per-channel node in the lanes its input channels occupy."""
        first = self.view(node.inputs[0] if isinstance(node, Add) else node.input)
        if isinstance(node, Add):
            second = self.view(node.inputs[1])
            if not np.array_equal(first[1], second[1]) or first[0].channel_blocks != second[0].channel_blocks:
                raise UnsupportedLayer(f"Node {node.name!r} (Add): its inputs {node.inputs[0]!r} and "
                                       f"{node.inputs[1]!r} sit in different lanes; an add needs both in the same "
                                       "lanes (they do when each is a whole layer's output)")
        fmap, slots = first
        region = self._allocate(node.output, fmap.channel_blocks * fmap.lanes)
        self.blocks[node.output] = [(region.block_address(b), 0, fmap.block_channels(b))
                                    for b in range(fmap.channel_blocks)]
        for channel, slot in enumerate(slots):
            self.where[(node.output, channel)] = divmod(int(slot), fmap.lanes)

    def view(self, name: str) -> tuple[FeatureMap, np.ndarray]:
        """``name``'s feature map as its readers see it (the blocks holding its channels, each loaded up to
        its last lane of them) and each channel's slot in it."""
        order: dict[int, int] = {}      # block address -> its index in the map
        live: list[int] = []
        slots = []
        for owner, channel in self.origin[name]:
            block, lane = self.where[(owner, channel)]
            address, first, count = self.blocks[owner][block]
            index = order.setdefault(address, len(order))
            if index == len(live):
                live.append(0)
            live[index] = max(live[index], first + count)
            slots.append(index * self.lanes(name) + lane)
        return self._map(name, tuple(order), tuple(live)), np.asarray(slots, dtype=np.int64)

    def as_written(self, name: str) -> tuple[FeatureMap, np.ndarray]:
        """The blocks of computed tensor ``name`` as its producer writes them: each block's channels from
        lane 0, stored at the byte offset of their first lane (int8 packs producers into shared blocks)."""
        blocks = self.blocks[name]
        slots = []
        for channel in range(self.graph.tensors[name].shape[2]):
            block, lane = self.where[(name, channel)]
            slots.append(block * self.lanes(name) + lane - blocks[block][1])
        offsets = tuple(first for _, first, _ in blocks)
        return (replace(self._map(name, tuple(a for a, _, _ in blocks), tuple(n for _, _, n in blocks)),
                        byte_offsets=offsets if any(offsets) else ()), np.asarray(slots, dtype=np.int64))

    def _map(self, name: str, addresses: tuple[int, ...], counts: tuple[int, ...]) -> FeatureMap:
        height, width, channels = self.graph.tensors[name].shape
        kind, lanes = self.graph.tensors[name].kind, self.lanes(name)
        stride = row_stride(stored_bytes(lanes, kind), self.image.alignment)
        return FeatureMap(name, addresses[0], height, width, channels, lanes, stride, addresses, counts,
                          kind == ArithMode.BINARY)


def _packs_input(graph: Graph, node, lanes: int) -> bool:
    """Whether ``node`` convolves the network input as an im2col copy: fewer blocks of ``lanes`` for its
    taps' channels together than for each tap's channels apart."""
    if not (isinstance(node, Conv) and node.input == graph.input and node.groups == 1
            and node.arith == ArithMode.INT8 and node.kernel != (1, 1)):
        return False
    kh, kw = node.kernel
    channels = graph.tensors[graph.input].shape[2]
    return -(-kh * kw * channels // lanes) < kh * kw * -(-channels // lanes)


def _array_weights(config: AcceleratorConfig, node: Conv, x: FeatureMap, x_slots: np.ndarray, y: FeatureMap,
                   y_slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``node``'s weights in array coordinates (``quant.conv.lower_conv``) and which input blocks each
    output block reads: (y blocks * C, kh, kw, x blocks * R) int8 and (y blocks, x blocks) bool."""
    rows, cols = config.array.rows, config.array.cols
    cout, kh, kw, per_group = node.weight.shape
    if x.binary:      # a lane is a byte: channels 8u .. 8u + 7 of the block
        units = x_slots[::BINARY_VALUES_PER_LANE]
        in_index = units // x.lanes * rows + units % x.lanes // BINARY_VALUES_PER_LANE
    else:
        in_index = x_slots // x.lanes * rows + x_slots % x.lanes
    out_index = y_slots // y.lanes * cols + y_slots % y.lanes
    weights = np.zeros((y.channel_blocks * cols, kh, kw, x.channel_blocks * rows), dtype=np.int64)
    needed = np.zeros((y.channel_blocks, x.channel_blocks), dtype=bool)
    group_out = cout // node.groups
    for group in range(node.groups):
        outs = out_index[group * group_out:(group + 1) * group_out]
        ins = in_index[group * per_group:(group + 1) * per_group]
        weights[np.ix_(outs, range(kh), range(kw), ins)] = node.weight[group * group_out:(group + 1) * group_out]
        needed[np.ix_(np.unique(outs // cols), np.unique(ins // rows))] = True
    return weights, needed


def _records(config: AcceleratorConfig, node, y: FeatureMap, y_slots: np.ndarray) -> dict[str, np.ndarray]:
    """``node``'s per-channel parameters at their output columns: y blocks * C entries (0 where no channel)."""
    cols = config.array.cols
    index = y_slots // y.lanes * cols + y_slots % y.lanes
    post = node.post
    values = {"bias": post.bias, "multiplier": getattr(post, "multiplier", 0), "shift": getattr(post, "shift", 0),
              "flip": getattr(post, "flip", 0)}
    records = {}
    for key, value in values.items():
        records[key] = np.zeros(y.channel_blocks * cols, dtype=np.int64)
        records[key][index] = np.broadcast_to(np.asarray(value, dtype=np.int64), len(index))
    return records


def _writer_view(config: AcceleratorConfig, y: FeatureMap) -> FeatureMap:
    """A binary map as its producer writes it: blocks of C channels, several sharing each row at byte offsets."""
    cols = config.array.cols
    per_row = y.lanes // cols
    blocks = range(-(-y.channels // cols))
    return FeatureMap(y.name, y.address, y.height, y.width, y.channels, cols, y.row_stride,
                      tuple(y.block_address(b // per_row) for b in blocks),
                      tuple(min(cols, y.channels - b * cols) for b in blocks), True,
                      tuple(b % per_row * cols // BINARY_VALUES_PER_LANE for b in blocks))


def _config(post) -> Instruction:
    if isinstance(post, Binarize):
        return Instruction(Opcode.CONFIG, {"mode": ArithMode.BINARY, "zero_point": 0, "clamp_min": -128,
                                           "clamp_max": 127})
    return Instruction(Opcode.CONFIG, {"mode": ArithMode.INT8, "zero_point": 0, "clamp_min": post.clamp_min,
                                       "clamp_max": post.clamp_max})


def _sub_map(x: FeatureMap, blocks: list[int]) -> FeatureMap:
    return FeatureMap(x.name, x.block_address(blocks[0]), x.height, x.width, x.channels, x.lanes, x.row_stride,
                      tuple(x.block_address(b) for b in blocks), tuple(x.block_channels(b) for b in blocks), x.binary)


def _passes(config: AcceleratorConfig, out_blocks: int, needed: np.ndarray | None) -> list[tuple[range, list[int]]]:
    """Output block ranges run as fenced passes (each within the channel memory) and the input blocks they read:
    consecutive output blocks reading the same input blocks share a pass."""
    runs = []
    for block in range(out_blocks):
        inputs = [] if needed is None else list(np.flatnonzero(needed[block]))
        if runs and runs[-1][1] == inputs and len(runs[-1][0]) < config.channel_rows:
            runs[-1] = (range(runs[-1][0].start, block + 1), inputs)
        else:
            runs.append((range(block, block + 1), inputs))
    return runs


def _global_average_plan(config: AcceleratorConfig, pool: Pool, y: FeatureMap):
    """(stride, plan): the array's depthwise mapping of a global average pool (one window over the unpadded
    map), or None. Its ADD over every pixel is then one COMPUTE per window row and phase instead of one
    LOAD per pixel. One output has no stride, so a window wider than R columns takes the smallest
    horizontal stride that splits it into phases of at most R taps."""
    if pool.kind != PoolKind.AVG or (y.height, y.width) != (1, 1) or any(pool.padding):
        return None
    for stride in ((1, 1), (1, 2), (1, 4), (1, 8)):
        plan = plan_depthwise(config, pool.kernel, stride, 1, 1)
        if plan:
            return stride, plan
    return None


def _folds(config: AcceleratorConfig, image: MemoryImage, graph: Graph, maps: dict) -> dict[str, dict[int, Fold]]:
    """The blocks each depthwise layer on the array reads folded (``quant.depthwise.Fold``), by block of its
    input: where a pooling layer (``lower_pool``, which writes the copies) makes the input."""
    producers = {node.output: node for node in graph.nodes}
    folds = {}
    for node in graph.nodes:
        producer = producers.get(node.input) if _is_depthwise(graph, node) else None
        if not isinstance(producer, Pool) or _global_average_plan(config, producer, maps[producer.output]):
            continue
        x, y = maps[node.input], maps[node.output]
        if plan_depthwise(config, node.kernel, node.stride, y.height, y.width):
            found = {block: fold_block(image, node.name, x, y, block, node.kernel, node.stride, node.padding.top)
                     for block in range(x.channel_blocks)}
            folds[node.name] = {block: fold for block, fold in found.items() if fold}
    return folds


def _lower(config: AcceleratorConfig, image: MemoryImage, graph: Graph, node, maps: dict, slots: dict,
           writer: tuple[FeatureMap, np.ndarray], packed: dict[str, FeatureMap],
           folds: dict[str, dict[int, Fold]]) -> list[list[Instruction]]:
    """One node's passes, each to be fenced: CONFIG and the pass's channel records, then its instructions.
    ``writer``: its output's blocks and channel slots as it writes them (``_Plan.as_written``); ``folds``:
    every depthwise layer's folded blocks (``_folds``)."""
    y, y_slots = writer
    cols = config.array.cols
    if y.binary:
        y = _writer_view(config, y)
    records = _records(config, node, y, y_slots)
    for block, fold in folds.get(node.name, {}).items():      # a folded block's channels in both halves
        for values in records.values():
            values[block * cols:][:fold.half + fold.channels] = fold.lanes(values[block * cols:][:fold.channels])
    offset = (-node.padding.top, -node.padding.left) if not isinstance(node, Add) else (0, 0)
    needed = weights = None
    conv = node
    if isinstance(node, Conv) and not _is_depthwise(graph, node):
        x, x_slots = maps[node.input], slots[node.input]
        if node.name in packed:     # a pointwise convolution of the im2col copy, channel (dy, dx, c)
            x, x_slots = packed[node.name], np.arange(packed[node.name].channels)
            conv = replace(node, weight=node.weight.reshape(len(node.weight), 1, 1, -1), stride=(1, 1),
                           padding=Padding(0, 0, 0, 0))
            offset = (0, 0)
        weights, needed = _array_weights(config, conv, x, x_slots, y, y_slots)
    passes = []
    for blocks, inputs in _passes(config, y.channel_blocks, needed):
        channels = slice(blocks.start * cols, blocks.stop * cols)
        channel_load = load_channel_records(image, f"{node.name}.channels.{blocks.start}", cols,
                                            *(records[k][channels] for k in records))
        configure = _config(node.post)
        head = [configure, channel_load]      # (lower_conv and lower_depthwise_array place the records themselves)
        if weights is not None:
            x_sub = _sub_map(x, inputs)
            columns = np.concatenate([np.arange(b * config.array.rows, (b + 1) * config.array.rows) for b in inputs])
            passes.append([configure] + lower_conv(config, image, node.name, x_sub, y, weights[..., columns],
                                                   conv.stride, offset, channel_load, blocks, node.arith))
        elif isinstance(node, Conv):
            x, x_slots = maps[node.input], slots[node.input]
            taps = np.zeros(node.kernel + (x.channel_blocks * x.lanes,), dtype=np.int64)
            taps[:, :, x_slots] = node.weight[:, :, :, 0].transpose(1, 2, 0)
            plan = plan_depthwise(config, node.kernel, node.stride, y.height, y.width)
            if plan:
                passes.append([configure] + lower_depthwise_array(config, image, node.name, x, y, taps,
                                                                  node.stride, offset, blocks, plan, channel_load,
                                                                  folds.get(node.name)))
            else:
                passes.append(head + lower_depthwise(config, image, node.name, x, y, taps, node.stride, offset,
                                                     blocks))
        elif isinstance(node, Pool):
            x = maps[node.input]
            mapping = _global_average_plan(config, node, y)
            if mapping:     # a sum over the whole map: a depthwise convolution with weights of one
                stride, plan = mapping
                ones = np.zeros(node.kernel + (x.channel_blocks * x.lanes,), dtype=np.int64)
                ones[:, :, slots[node.input]] = 1
                passes.append([configure] + lower_depthwise_array(config, image, node.name, x, y, ones, stride,
                                                                  offset, blocks, plan, channel_load))
            else:
                readers = tuple(fold for reader in graph.nodes if node.output in _inputs(reader)
                                for fold in folds.get(reader.name, {}).values())
                passes.append(head + lower_pool(config, x, y, "max" if node.kind == PoolKind.MAX else "avg",
                                                node.kernel, node.stride, offset, blocks, readers))
        else:
            passes.append(head + lower_add(config, maps[node.inputs[0]], maps[node.inputs[1]], y, *node.scales,
                                           blocks))
    return passes


def _check(config: AcceleratorConfig, graph: Graph) -> None:
    array = config.array
    for node in graph.nodes:
        kinds = {graph.tensors[name].kind for name in (*_inputs(node), node.output)}
        what = f"Node {node.name!r} ({type(node).__name__})"
        if ArithMode.BINARY in kinds:
            if not isinstance(node, Conv) or _is_depthwise(graph, node):
                raise UnsupportedLayer(f"{what} moves or pools binary tensors; binary tensors are supported as "
                                       "inputs and outputs of dense convolutions only")
            if ArithMode.BINARY not in array.modes:
                raise UnsupportedLayer(f"{what} is binary; the accelerator must be generated with arith binary "
                                       f"or both, not {array.arith.value}")
            if array.cols % BINARY_VALUES_PER_LANE or array.cols // BINARY_VALUES_PER_LANE > array.rows:
                raise UnsupportedLayer(f"{what} is binary; a binary output block of C channels is C / 8 whole "
                                       f"bytes of one scratchpad row, so C must be a multiple of 8 and at most 8 R, "
                                       f"not a {array.rows}x{array.cols} array")
        if (ArithMode.INT8 in kinds and not (isinstance(node, Conv) and node.arith == ArithMode.BINARY)
                and ArithMode.INT8 not in array.modes):
            raise UnsupportedLayer(f"{what} is int8; the accelerator must be generated with arith int8 or both, "
                                   f"not {array.arith.value}")
        if isinstance(node, ChannelShuffle) and graph.tensors[node.input].shape[2] % node.groups:
            raise UnsupportedLayer(f"{what}: {graph.tensors[node.input].shape[2]} channels do not split into "
                                   f"{node.groups} groups")


def compile_graph(config: AcceleratorConfig, graph: Graph, x: np.ndarray) -> CompiledNet:
    """Lay out ``graph`` with input ``x`` ((H, W, C) int8) and build its program."""
    _check(config, graph)
    image = MemoryImage(config.bus_bytes)
    plan = _Plan(config, graph, image, np.asarray(x))
    maps, slots = {}, {}
    for name in graph.tensors:
        maps[name], slots[name] = plan.view(name)
    folds = _folds(config, image, graph, maps)
    program: list[Instruction] = []
    layers = []
    for node in graph.nodes:
        if isinstance(node, (Concat, Slice, ChannelShuffle)):
            continue
        start = len(program)
        writer = plan.as_written(node.output)
        for instructions in _lower(config, image, graph, node, maps, slots, writer, plan.packed, folds):
            program += fenced(instructions)     # the program before is balanced
        layers.append(LayerSpan(node.name, start, len(program)))
    program.append(Instruction(Opcode.END, {}))
    region = image.place_program("program", program)
    return CompiledNet(config, graph, image, program, region.address, maps, layers, slots, plan.packed)
