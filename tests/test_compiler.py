"""Zoo nets compiled for the accelerator: the ISA simulator's tensors equal the golden model's, layer by layer.

Nets are small (width 0.25, 32x32 inputs) on 4x4 arrays with small memories,
so every layer tiles, chunks and double-buffers, and wide layers take several
passes through the channel memory.
"""
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from hdl.config import AcceleratorConfig, ArrayConfig
from hdl.isa import Opcode, Target
from hdl.numerics import ArithMode
from quant import golden
from quant.compiler import UnsupportedLayer, compile_graph
from quant.depthwise import DepthwisePlan
from quant.frontend import trace
from quant.graph import ChannelShuffle, Concat, Conv, Slice
from quant.isasim import IsaSimulator
from quant.memory import MemoryImage
from quant.ptq import calibrate, quantize, quantize_input
from quant.races import RaceError
from quant.zoo import ZOO
from sim.accelerator_runner import AcceleratorRun, accelerator_model, run_programs
from sim.fast_runner import run_fast


def small_net(name: str, seed: int, size: int = 32):
    """(integer graph, one int8 input image) of a width-0.25 zoo net calibrated on random images."""
    torch.manual_seed(seed)
    model = ZOO[name](width=0.25, num_classes=10, in_channels=3).eval()
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    graph = trace(model, (3, size, size))
    integer = quantize(graph, calibrate(graph, images))
    return integer, quantize_input(integer, images.numpy())[0]


def config(dataflow: str, rows: int = 4, cols: int = 4, arith: str = "int8") -> AcceleratorConfig:
    # 6 channel rows hold 24 output channels: wider layers run in several fenced passes.
    return AcceleratorConfig(ArrayConfig(rows, cols, dataflow, arith), spad_kib=2, acc_kib=4, bus_bits=64,
                             channel_rows=6)


def check_every_tensor(config: AcceleratorConfig, graph, image, what: str):
    """Compile, run on the ISA simulator, compare every tensor with the golden model; the compiled net."""
    expected = golden.run(graph, image[None])
    net = compile_graph(config, graph, image)
    dram = bytearray(net.image.data)
    simulator = IsaSimulator(net.config, dram)
    simulator.run(net.program_address, len(net.program))
    # A token left in a queue would let a later pop pass early: the layers' fences must take them all.
    assert not any(simulator.tokens.values()), simulator.tokens
    for node in graph.nodes:
        got = net.read_tensor(dram, node.output)
        assert np.array_equal(got, expected[node.output][0]), f"{what}: {node.name} differs"
    return net


# Every int8 zoo net in both dataflows, on 4x4 and 8x8 (the binary net: test_binary_net_*).
@pytest.mark.parametrize("name, dataflow, size", [
    ("squeezenet1_0", "os", 4), ("squeezenet1_0", "ws", 8),
    ("squeezenet1_1", "ws", 4), ("squeezenet1_1", "os", 4),
    ("squeezenext23", "ws", 4), ("squeezenext23", "os", 4),
    ("squeezenext23v5", "ws", 4), ("squeezenext23v5", "os", 8),
    ("mobilenet_v1", "ws", 4), ("mobilenet_v1", "os", 8),
    ("mobilenet_v2", "os", 4), ("mobilenet_v2", "ws", 8),
    ("shufflenet_v2", "ws", 4), ("shufflenet_v2", "os", 4),
])
def test_every_tensor_matches_the_golden_model(name, dataflow, size, seed):
    check_every_tensor(config(dataflow, size, size), *small_net(name, seed),
                       f"{name} {dataflow} {size}x{size} (seed {seed})")


@pytest.mark.parametrize("name, dataflow, rows, cols", [("squeezenet1_1", "ws", 4, 8), ("squeezenet1_1", "os", 8, 4),
                                                        ("shufflenet_v2", "os", 4, 8), ("shufflenet_v2", "ws", 8, 4)])
def test_non_square_arrays(name, dataflow, rows, cols, seed):
    """Feature maps in blocks of min(R, C) channels: R > C reads min(R, C) lanes of a scratchpad row,
    R < C computes min(R, C) output columns."""
    net = check_every_tensor(config(dataflow, rows, cols), *small_net(name, seed),
                             f"{name} {dataflow} {rows}x{cols} (seed {seed})")
    assert {fmap.lanes for fmap in net.feature_maps.values()} == {min(rows, cols)}


def test_channel_shuffle_and_split_copy_nothing(seed):
    """ShuffleNetV2's split, concat and shuffle are relabellings: no instruction reads or writes for them,
    and every DRAM byte a layer stores is stored once (no tensor is copied)."""
    graph, image = small_net("shufflenet_v2", seed)
    net = check_every_tensor(config("os"), graph, image, f"shufflenet_v2 os (seed {seed})")
    moved = [node.name for node in graph.nodes if isinstance(node, (ChannelShuffle, Concat, Slice))]
    assert moved and not {span.name for span in net.layers} & set(moved)
    owners = {net.feature_maps[name].block_address(b) for name in graph.tensors
              for b in range(net.feature_maps[name].channel_blocks)}
    computed = [node.output for node in graph.nodes if not isinstance(node, (ChannelShuffle, Concat, Slice))]
    # Every block belongs to computed tensors (or the input): views add none.
    assert owners == {net.feature_maps[name].block_address(b) for name in (graph.input, *computed)
                      for b in range(net.feature_maps[name].channel_blocks)}
    # The channels a convolution leaves over whole blocks share a block with other producers' (STOREd
    # from a byte offset).
    convolutions = [node.output for node in graph.nodes if isinstance(node, Conv) and node.groups == 1]
    blocks = {name: {net.feature_maps[name].block_address(b) for b in range(net.feature_maps[name].channel_blocks)}
              for name in convolutions}
    assert any(blocks[a] & blocks[b] for a in convolutions for b in convolutions if a < b)
    assert any(i.opcode == Opcode.STORE and i.fields.get("byte_offset") for i in net.program)


def test_producers_left_over_channels_share_blocks(seed):
    """ShuffleNetV2 at 224x224 on 16 lanes: the 232 channels its last stage reads, left over by many
    producers' blocks, fill the 15 blocks they need (20 with a block per producer's remainder)."""
    torch.manual_seed(seed)
    model = ZOO["shufflenet_v2"]().eval()
    images = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(seed))
    graph = quantize(trace(model, (3, 224, 224)), calibrate(trace(model, (3, 224, 224)), images))
    net = compile_graph(config("os", 16, 16), graph, quantize_input(graph, images.numpy())[0])
    last_stage = next(node for node in graph.nodes if node.name == "features_14_branch1_0_0")
    assert net.feature_maps[last_stage.input].channels == 232
    assert net.feature_maps[last_stage.input].channel_blocks == 15


class OddWidthNet(nn.Module):
    """A 3x3 and a 1x1 convolution on a 13x13 map: widths that are no multiple of R."""

    def __init__(self):
        super().__init__()
        self.conv3 = nn.Sequential(nn.Conv2d(8, 32, 3, 1, 1), nn.ReLU())
        self.conv1 = nn.Sequential(nn.Conv2d(32, 12, 1), nn.ReLU())

    def forward(self, x):
        return self.conv1(self.conv3(x))


@pytest.mark.parametrize("spad_kib", [64, 2])
def test_os_tiles_and_weight_groups(spad_kib, seed):
    """OS tiles of R output pixels: a pointwise convolution reads its pixels as one long row, so 13x13 = 169
    pixels are 43 tiles of 4 (13 rows of 4 tiles would be 52); a KxK one crosses image rows too (per tap,
    a LOAD per image row a tile touches, its groups the two input blocks) when its steps compute long
    enough to hide the extra LOADs, here 8 or 3 output blocks against 2 x 9 LOADs. With 2 KiB scratchpads
    one block's 72 weight rows fill more than half the 256-row weight scratchpad: groups of 3, 3 and 2
    blocks share the whole of it, each block's weights loaded once the previous group's last compute of
    the block in the same place has retired."""
    graph, image = _odd_width_net(seed)
    net = check_every_tensor(_odd_width_config(spad_kib), graph, image, f"odd-width net, {spad_kib} KiB (seed {seed})")
    spans = {span.name.split("_")[0]: net.program[span.start:span.end] for span in net.layers}
    computes = {name: sum(i.opcode.name == "COMPUTE" for i in program) for name, program in spans.items()}
    # The first two steps run their computes in parts of 16 of the 18 reduction blocks (``conv._FIRST_PART_BEATS``),
    # part after part, every block and tile of the step in each: at 64 KiB the first step is two tiles and the
    # second one, against 8 blocks, 24 computes more; at 2 KiB one tile and one tile against 3 blocks, 6. The
    # parts go round by round of 12 tiles (16 accumulator regions handed back 4 at a time): 6 blocks of the
    # first step's two tiles, then the other 2.
    assert computes == {"conv3": 43 * 8 + (24 if spad_kib == 64 else 6), "conv1": 43 * 3}, computes
    weight_rows = [i.fields["sram_addr"] for i in spans["conv3"]
                   if i.opcode.name == "LOAD" and i.fields["target"] == Target.WEIGHTS]
    blocks, per_round = (8, 6) if spad_kib == 64 else (3, 12)
    first_group = [72 * j + part for first in range(0, blocks, per_round) for part in (0, 64)
                   for j in range(first, min(first + per_round, blocks))]
    assert weight_rows == first_group + ([] if spad_kib == 64 else [0, 72, 144, 0, 72]), weight_rows


class RgbNet(nn.Module):
    """A strided, padded 3x3 convolution of a 3-channel input (9 taps x 3 channels fill 7 blocks of 4 lanes,
    not 9), then a pointwise one."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 4, 1))

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_rgb_input_convolution_reads_an_im2col_copy(dataflow, seed):
    """The network input's 3x3 convolution reads the compiler's im2col copy of the input ((8, 8, 27) in 7
    blocks) as a pointwise convolution, bit-exact; the pointwise one after it reads its input in place."""
    torch.manual_seed(seed)
    images = torch.rand(2, 3, 15, 15, generator=torch.Generator().manual_seed(seed))
    graph = trace(RgbNet().eval(), (3, 15, 15))
    graph = quantize(graph, calibrate(graph, images))
    net = check_every_tensor(config(dataflow), graph, quantize_input(graph, images.numpy())[0],
                             f"RGB net, {dataflow} (seed {seed})")
    first, second = graph.nodes[0].name, graph.nodes[-1].name
    im2col = net.image.regions[f"{first}.im2col"]
    assert im2col.rows == 7 * 8 * 8, im2col      # a row per pixel and block
    reads = {span.name: {i.fields["dram_addr"] for i in net.program[span.start:span.end]
                         if i.opcode.name == "LOAD" and i.fields["target"] == Target.ACTIVATIONS}
             for span in net.layers}
    assert all(im2col.address <= address < im2col.address + im2col.size for address in reads[first]), reads
    assert f"{second}.im2col" not in net.image.regions


def _pointwise_net(seed, out_channels):
    """A 16 -> ``out_channels`` pointwise convolution and ReLU of a 13x13 map, and one int8 input."""
    torch.manual_seed(seed)
    images = torch.rand(2, 16, 13, 13, generator=torch.Generator().manual_seed(seed))
    graph = trace(nn.Sequential(nn.Conv2d(16, out_channels, 1), nn.ReLU()).eval(), (16, 13, 13))
    graph = quantize(graph, calibrate(graph, images))
    return graph, quantize_input(graph, images.numpy())[0]


def _check_output_in_rtl(net, graph, image):
    outcome = run_fast(net.config, bytes(net.image.data), net.program_address, len(net.program))
    assert outcome.done and outcome.error is None, outcome
    expected = golden.run(graph, image[None])
    assert np.array_equal(net.read_tensor(outcome.dram, graph.output), expected[graph.output][0])


def test_first_two_os_tiles_share_the_weight_stages(seed):
    """A pointwise convolution with several short output blocks (16 -> 24 channels, 13x13, on 4x4): each
    block's weight LOAD takes longer than its 16-beat compute, so the first two tiles compute against each
    block as it comes (one load token per block) and the next tiles reuse the resident weights; bit-exact
    in the ISA simulator and in RTL."""
    graph, image = _pointwise_net(seed, 24)
    net = check_every_tensor(config("os"), graph, image, f"16 -> 24 pointwise (seed {seed})")
    computes = [i for i in net.program if i.opcode.name == "COMPUTE"]
    first_step = computes[:2 * 6]
    assert [c.fields["weight_addr"] for c in first_step] == [16 * (j // 2) for j in range(12)]
    assert [c.fields["act_addr"] % 32 for c in first_step] == [0, 16] * 6       # tiles 0 and 1
    assert [c.pop_prev for c in first_step] == [True, False] * 6
    assert len(computes) == 43 * 6
    _check_output_in_rtl(net, graph, image)


def test_os_tiles_handed_over_together_share_a_store(seed):
    """A pointwise convolution of one output block (16 -> 4 channels, 13x13: 43 tiles of 4 pixels on 4x4):
    the tiles of a step that lie one after another in the accumulator and in DRAM are one STORE, up to a
    group of tiles whose regions go back together (4 here), so about a quarter of the STOREs; bit-exact in
    the ISA simulator and in RTL."""
    graph, image = _pointwise_net(seed, 4)
    net = check_every_tensor(config("os"), graph, image, f"16 -> 4 pointwise (seed {seed})")
    stores = [i.fields for i in net.program if i.opcode.name == "STORE"]
    assert sum(store["rows"] for store in stores) == 13 * 13
    assert all(store["rows"] <= 4 * 4 and store["blocks"] == 1 for store in stores), stores
    assert len(stores) <= -(-43 // 4) + 2, [store["rows"] for store in stores]
    _check_output_in_rtl(net, graph, image)


class WideGroupNet(nn.Module):
    """A pointwise convolution of 72 channels (18 blocks of 4) into 48 (12 blocks) on a 6x6 map."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(72, 48, 1)

    def forward(self, x):
        return self.conv(x)


def test_os_parts_go_in_rounds_of_free_regions(seed):
    """A parted first step of two tiles against 12 blocks is 24 tiles, more than the 16 accumulator regions:
    its parts go round by round of 12 tiles, each round's STOREs before the next round's computes (one
    round of all 24 would have tile 16 wait for a region that only a later STORE hands back, a deadlock
    that the ISA simulator refuses: a pop with no earlier push)."""
    torch.manual_seed(seed)
    images = torch.rand(2, 72, 6, 6, generator=torch.Generator().manual_seed(seed))
    graph = trace(WideGroupNet().eval(), (72, 6, 6))
    graph = quantize(graph, calibrate(graph, images))
    net = check_every_tensor(_odd_width_config(64), graph, quantize_input(graph, images.numpy())[0],
                             f"wide group net (seed {seed})")
    computes = [i for i in net.program if i.opcode.name == "COMPUTE"]
    starts = [i.fields["acc_addr"] for i in computes[:24] if not i.fields["accumulate"]]
    assert len(starts) == 12 and len(set(starts)) == 12, starts     # the first round: 12 tiles' first parts


def _odd_width_net(seed):
    torch.manual_seed(seed)
    images = torch.rand(2, 8, 13, 13, generator=torch.Generator().manual_seed(seed))
    graph = trace(OddWidthNet().eval(), (8, 13, 13))
    graph = quantize(graph, calibrate(graph, images))
    return graph, quantize_input(graph, images.numpy())[0]


def _odd_width_config(spad_kib):
    return AcceleratorConfig(ArrayConfig(4, 4, "os", "int8"), spad_kib=spad_kib, acc_kib=4, bus_bits=64)


def test_weight_reuse_without_its_token_is_refused(seed):
    """The 2 KiB case above: a group's weight LOAD into block j's place waits for the previous group's last
    compute of block j. Without that token the ISA simulator still computes the right tensors (it runs in
    program order), but the race check refuses the program: on the hardware the LOAD could overwrite
    weights a compute is still reading."""
    graph, image = _odd_width_net(seed)
    net = compile_graph(_odd_width_config(2), graph, image)
    reuse = next(i for i, instruction in enumerate(net.program) if instruction.opcode.name == "LOAD"
                 and instruction.fields["target"] == Target.WEIGHTS and instruction.pop_next)
    program = list(net.program)
    program[reuse] = replace(program[reuse], pop_next=False)
    image = MemoryImage(net.image.alignment, bytearray(net.image.data), dict(net.image.regions))
    image.place_program("corrupted", program)
    with pytest.raises(RaceError, match=f"instruction {reuse} .*: weights row 0 was read by compute"):
        IsaSimulator(net.config, image.data).run(image.regions["corrupted"].address, len(program))


class GroupNet(nn.Module):
    """Group convolutions whose groups are wider and narrower than a channel block, a shuffle between them,
    and a depthwise convolution with channel multiplier 2 (not the accumulator path's depthwise)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1), nn.ReLU())
        self.wide = nn.Sequential(nn.Conv2d(24, 24, 3, 1, 1, groups=2), nn.BatchNorm2d(24), nn.ReLU())
        self.narrow = nn.Sequential(nn.Conv2d(24, 16, 1, groups=8), nn.ReLU())
        self.shuffle = nn.ChannelShuffle(4)
        self.strided = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1, groups=4), nn.ReLU())
        self.multiplier = nn.Conv2d(32, 64, 3, 1, 1, groups=32)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.strided(self.shuffle(self.narrow(self.wide(self.stem(x)))))
        return self.fc(torch.flatten(self.pool(self.multiplier(x)), 1))


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_group_convolutions(dataflow, seed):
    torch.manual_seed(seed)
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    graph = trace(GroupNet().eval(), (3, 16, 16))
    graph = quantize(graph, calibrate(graph, images))
    image = quantize_input(graph, images.numpy())[0]
    net = check_every_tensor(config(dataflow), graph, image, f"group net {dataflow} (seed {seed})")
    # The 2-channel groups of `narrow` share blocks (block-diagonal weights, one pass); the 12-channel
    # groups of `wide` each read only their own 3 input blocks (one pass per group).
    spans = {span.name: net.program[span.start:span.end] for span in net.layers}
    configs = {name: sum(i.opcode.name == "CONFIG" for i in program) for name, program in spans.items()}
    wide = next(n.name for n in graph.nodes if n.name.startswith("wide"))
    narrow = next(n.name for n in graph.nodes if n.name.startswith("narrow"))
    assert configs[wide] == 2 and configs[narrow] == 1, configs


class StridedDepthwiseNet(nn.Module):
    """3x3 depthwise convolutions of 6 channels (a partial second block on 4 lanes) on odd widths: at stride 2
    padded and unpadded, at horizontal stride 2 only, and at stride 1."""

    def __init__(self):
        super().__init__()
        self.padded = nn.Sequential(nn.Conv2d(6, 6, 3, 2, 1, groups=6), nn.ReLU())
        self.unpadded = nn.Sequential(nn.Conv2d(6, 6, 3, 2, 0, groups=6), nn.ReLU())
        self.wide = nn.Sequential(nn.Conv2d(6, 6, 3, (1, 2), (0, 1), groups=6), nn.ReLU())
        self.flat = nn.Conv2d(6, 6, 3, 1, 1, groups=6)

    def forward(self, x):
        return self.flat(self.wide(self.unpadded(self.padded(x))))


@pytest.mark.parametrize("dataflow, rows, cols, pairs", [("os", 4, 4, True), ("os", 3, 4, True), ("os", 4, 3, True),
                                                         ("os", 8, 8, True), ("os", 2, 3, True), ("os", 4, 4, False),
                                                         ("ws", 4, 4, True), ("ws", 3, 5, True), ("ws", 8, 8, False)])
def test_strided_depthwise_pairs_phases(dataflow, rows, cols, pairs, seed):
    """On arrays of 3 rows or more (``ArrayConfig.paired``) a 3-wide window at horizontal stride 2 takes
    paired COMPUTEs instead of one per phase: on OS one chain of R-beat COMPUTEs of taps 3 per window row
    (chunks of R - 2 outputs), on WS one COMPUTE per window row (no stacks); the primary stream starts two
    rows into the load group's slot. Bit-exact against the golden model, with the simulator's race checks;
    stride 1, 2-row arrays and arrays generated without paired COMPUTEs keep phases (WS at 8x8: in stacks)."""
    torch.manual_seed(seed)
    images = torch.rand(2, 6, 23, 27, generator=torch.Generator().manual_seed(seed))
    graph = trace(StridedDepthwiseNet().eval(), (6, 23, 27))
    graph = quantize(graph, calibrate(graph, images))
    # (OS 8x8: 8-lane rows of 15 pixels per phase need more than the 64 rows of half a 2 KiB scratchpad)
    accelerator = replace(config(dataflow, rows, cols), spad_kib=8 if (dataflow, rows) == ("os", 8) else 2)
    if not pairs:
        accelerator = replace(accelerator, array=replace(accelerator.array, paired=False))
    net = check_every_tensor(accelerator, graph, quantize_input(graph, images.numpy())[0],
                             f"strided depthwise net, {dataflow} {rows}x{cols} (seed {seed})")
    nodes = {node.name: node for node in graph.nodes}
    paired = rows >= 3 and pairs
    for span in net.layers:
        node = nodes[span.name]
        computes = [i.fields for i in net.program[span.start:span.end] if i.opcode == Opcode.COMPUTE]
        if node.stride[1] == 2:      # in the array's depthwise mode (R = 2 takes a 3-wide window in phases only)
            assert computes and all(f["depthwise"] for f in computes), span.name
        if paired and node.stride[1] == 2:
            assert all(f["paired"] and f["taps"] == (3 if dataflow == "os" else 0) and f["act_stride_log2"] == 1
                       for f in computes), span.name
            # Three chains or COMPUTEs (window rows) per tile, segment and block; on OS each a COMPUTE of
            # ceil(Wp positions / (R - 2)) runs.
            y = net.feature_maps[node.output]
            plan = DepthwisePlan(net.config, node.kernel, node.stride, y.height, y.width)
            tiles = [min(plan.tile_rows, y.height - first) for first in range(0, y.height, plan.tile_rows)]
            assert (plan.phases, plan.lead, plan.stack) == (1, 2, 1)
            assert len(computes) == 3 * len(tiles) * len(plan.segments) * y.channel_blocks, span.name
            if dataflow == "os":
                runs = sum(len(plan.chunks(tile)) for tile in tiles) * y.channel_blocks
                assert plan.chunk == rows - 2
                assert sum(f["repeat"] + 1 for f in computes) == 3 * runs and max(f["repeat"] for f in computes)
        else:
            assert not any(f["paired"] for f in computes), span.name
            if dataflow == "os" and node.stride[1] == 2:     # two phases: taps {0, 2}, then {1}
                assert {f["taps"] for f in computes} == {2} and {f["act_addr"] % 2 for f in computes} == {0, 1}
            if dataflow == "ws" and rows == 8 and node.stride[1] == 2:
                y = net.feature_maps[node.output]
                assert DepthwisePlan(net.config, node.kernel, node.stride, y.height, y.width).stack == 2


class PoolDepthwiseNet(nn.Module):
    """Max pools into 3x3 depthwise convolutions of 6 channels (a second block of 2 on 4 lanes) at stride 2 and
    1, to odd output heights (7: the folded block's upper lanes take 3 rows of its 4)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.down = nn.Sequential(nn.Conv2d(6, 6, 3, 2, 1, groups=6), nn.ReLU(), nn.MaxPool2d(3, 1, 1))
        self.flat = nn.Sequential(nn.Conv2d(6, 6, 3, 1, 1, groups=6), nn.ReLU(), nn.Conv2d(6, 8, 1))

    def forward(self, x):
        return self.flat(self.down(self.stem(x)))


@pytest.mark.parametrize("dataflow, pairs, rtl", [("os", True, True), ("ws", True, True), ("os", False, False),
                                                  ("ws", False, False)])
def test_half_empty_blocks_fold(dataflow, pairs, rtl, seed):
    """A depthwise layer reading a pool's output takes a block of at most half its lanes folded
    (``quant.depthwise.Fold``): the pool also writes a copy holding the lower output rows' inputs in the
    lower lanes and the upper rows' in the upper lanes, and the layer computes both halves in one pass and
    stores the upper lanes a pixel row early at a byte offset. Bit-exact against the golden model (with
    the simulator's race checks) and, paired, in RTL (the upper STOREs' rows span two bus beats)."""
    torch.manual_seed(seed)
    images = torch.rand(2, 3, 25, 27, generator=torch.Generator().manual_seed(seed))
    graph = trace(PoolDepthwiseNet().eval(), (3, 25, 27))
    graph = quantize(graph, calibrate(graph, images))
    image = quantize_input(graph, images.numpy())[0]
    accelerator = config(dataflow)
    if not pairs:
        accelerator = replace(accelerator, array=replace(accelerator.array, paired=False))
    net = check_every_tensor(accelerator, graph, image, f"pool and depthwise net, {dataflow} (seed {seed})")
    nodes = {node.name: node for node in graph.nodes}
    for span in net.layers:
        node = nodes[span.name]
        if not (isinstance(node, Conv) and node.groups > 1):
            continue
        copy = net.image.regions[f"{node.name}.fold.c1"]
        x, y = net.feature_maps[node.input], net.feature_maps[node.output]
        split = (y.height + 1) // 2
        assert x.block_channels(1) == 2 and y.height == 7

        def inside(address):
            return copy.address <= address < copy.address + copy.size
        # The pool before writes the copy's lower and upper lanes; the layer reads only the copy for block 1.
        pool = next(s for s in net.layers if nodes[s.name].output == node.input)
        offsets = {i.fields.get("byte_offset", 0) for i in net.program[pool.start:pool.end]
                   if i.opcode == Opcode.STORE and inside(i.fields["dram_addr"])}
        assert offsets == {0, 2}, span.name
        program = net.program[span.start:span.end]
        loads = [i.fields for i in program if i.opcode == Opcode.LOAD and i.fields["target"] == Target.ACTIVATIONS]
        block_one = [f for f in loads if f["dram_addr"] >= x.block_address(1) and not inside(f["dram_addr"])]
        assert any(inside(f["dram_addr"]) for f in loads) and not block_one, span.name
        # Its upper lanes: block 1's rows from ceil(height / 2) on, 6 bytes into the pixel before (8-byte rows).
        upper = [i.fields for i in program if i.opcode == Opcode.STORE and i.fields.get("byte_offset")]
        assert {(f["byte_offset"], f["channels"]) for f in upper} == {(6, 4)}, span.name
        assert min(f["dram_addr"] for f in upper) == y.pixel_address(1, split, 0) - y.row_stride
    if rtl:
        _check_every_tensor_in_rtl(net, graph, image)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_binary_net_matches_the_golden_model(dataflow, seed):
    """XNOR net: int8 stem with a binary (threshold) output, binary convolutions in binary mode, a binary
    convolution with an int8 output, then int8 pooling and classifier, on an 8x8 array with arith both."""
    graph, image = small_net("binarynet", seed)
    assert {tensor.kind for tensor in graph.tensors.values()} == {ArithMode.INT8, ArithMode.BINARY}
    net = check_every_tensor(config(dataflow, 8, 8, "both"), graph, image, f"binarynet {dataflow} (seed {seed})")
    modes = {i.fields["mode"] for i in net.program if i.opcode.name == "COMPUTE"}
    assert modes == {ArithMode.INT8, ArithMode.BINARY}
    # Binary rows are packed: output blocks of 8 channels are one byte each, stored at byte offsets
    # 0, 1, .. of one row (up to 8 per row: the widest binary output here has 32 channels).
    widest = max(t.shape[2] for t in graph.tensors.values() if t.kind == ArithMode.BINARY)
    offsets = {i.fields.get("byte_offset", 0) for i in net.program if i.opcode.name == "STORE"}
    assert widest == 32 and offsets == set(range(4)), (widest, offsets)


def test_unsupported_layers_are_named(seed):
    graph, image = small_net("binarynet", seed)
    with pytest.raises(UnsupportedLayer, match=r"is binary; the accelerator must be generated with arith binary"):
        compile_graph(config("ws"), graph, image)
    with pytest.raises(UnsupportedLayer, match=r"C must be a multiple of 8 .* not a 4x4 array"):
        compile_graph(config("ws", arith="both"), graph, image)


@pytest.mark.parametrize("name, dataflow, rows, cols, arith, size", [
    ("squeezenet1_1", "ws", 4, 4, "int8", 32), ("squeezenet1_1", "os", 4, 4, "int8", 32),
    # ShuffleNetV2's relabelled channels (split, concat, shuffle without copies).
    ("shufflenet_v2", "ws", 4, 4, "int8", 32), ("shufflenet_v2", "os", 4, 4, "int8", 32),
    # The XNOR net: binary layers need C to be a multiple of 8.
    ("binarynet", "ws", 8, 8, "both", 16),
])
def test_net_runs_bit_exact_in_rtl(name, dataflow, rows, cols, arith, size, seed):
    """A whole zoo net on the generated accelerator with the in-design DRAM model (issue 5's CI run):
    the final DRAM equals the ISA simulator's and every tensor the golden model's."""
    graph, image = small_net(name, seed, size=size)
    _check_every_tensor_in_rtl(compile_graph(config(dataflow, rows, cols, arith), graph, image), graph, image)


def _check_every_tensor_in_rtl(net, graph, image):
    """The final DRAM of ``net`` run in RTL equals the ISA simulator's, and every tensor the golden model's."""
    dram = bytearray(net.image.data)
    IsaSimulator(net.config, dram).run(net.program_address, len(net.program))
    outcome = run_fast(net.config, bytes(net.image.data), net.program_address, len(net.program))
    assert outcome.done and outcome.error is None, outcome
    assert outcome.dram[:len(dram)] == bytes(dram)
    expected = golden.run(graph, image[None])
    for node in graph.nodes:
        assert np.array_equal(net.read_tensor(outcome.dram, node.output), expected[node.output][0]), node.name


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_global_average_pool_sums_on_the_array(dataflow, seed):
    """A global average pool runs as a depthwise convolution with weights of one in the array's depthwise
    mode (one COMPUTE per window row and phase, not one LOAD per pixel), a window wider than R in phases
    of a horizontal stride: bit-exact in the ISA simulator and in RTL. One whose stationary weights do not
    fit stays on the accumulator path."""
    graph, image = small_net("squeezenet1_1", seed, size=96)       # a 5x5 map before the pool: stride 2 on R = 4
    net = check_every_tensor(config(dataflow), graph, image, f"global pool {dataflow} (seed {seed})")
    (pool,) = [span for span in net.layers if span.name == "classifier_3"]
    pool_program = net.program[pool.start:pool.end]
    assert any(instruction.opcode == Opcode.COMPUTE for instruction in pool_program)
    assert not any(instruction.opcode == Opcode.LOAD and instruction.fields["target"] == Target.COMBINE
                   for instruction in pool_program)
    dram = bytearray(net.image.data)
    IsaSimulator(net.config, dram).run(net.program_address, len(net.program))
    outcome = run_fast(net.config, bytes(net.image.data), net.program_address, len(net.program))
    assert outcome.done and outcome.error is None, outcome
    assert outcome.dram[:len(dram)] == bytes(dram)

    wide = compile_graph(config(dataflow), *small_net("squeezenet1_1", seed, size=160))   # 9x9
    (pool,) = [span for span in wide.layers if span.name == "classifier_3"]
    assert not any(instruction.opcode == Opcode.COMPUTE for instruction in wide.program[pool.start:pool.end])


# The OS accelerator is test_accelerator's (one Verilator build for both files).
@pytest.mark.parametrize("name, config, size", [
    ("squeezenet1_1", AcceleratorConfig(ArrayConfig(4, 4, "os", "int8"), spad_kib=1, acc_kib=1, bus_bits=128), 32),
    ("shufflenet_v2", config("ws", 8, 8, "both"), 32),      # its depthwise layers in the array's depthwise mode
    ("binarynet", config("ws", 8, 8, "both"), 16),
], ids=lambda value: value.array.name if isinstance(value, AcceleratorConfig) else str(value))
def test_net_runs_bit_exact_in_cocotb(name, config, size, seed):
    """A whole zoo net in cocotb against cocotbext-axi's AxiRam with random stalls on every AXI channel:
    the final DRAM equals the ISA simulator's and the output tensor the golden model's."""
    graph, image = small_net(name, seed, size=size)
    net = compile_graph(config, graph, image)
    dram = bytearray(net.image.data)
    IsaSimulator(net.config, dram).run(net.program_address, len(net.program))
    (outcome,) = run_programs(config, [AcceleratorRun(bytes(net.image.data), net.program_address, len(net.program),
                                                      backpressure=True, seed=seed)], accelerator_model(config))
    assert outcome.done and outcome.error is None, outcome
    assert outcome.dram[:len(dram)] == bytes(dram)
    output = graph.nodes[-1].output
    assert np.array_equal(net.read_tensor(outcome.dram, output), golden.run(graph, image[None])[output][0])
