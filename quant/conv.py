"""Lowering of a dense int8 convolution (1x1, KxK, 1xK/Kx1, strided, fully connected) to the systolic array.

The convolution is a GEMM whose reduction index is (tap, input channel):
weights are stored per block of C output channels as rows ``(tap, cin)``,
input channels padded to whole blocks of R with zeros. Activations are read
in place from the input feature map, one window tap at a time
(``quant.window``): no im2col copy.

* WS: a step is one (tap, input-channel block): the step loads one
  activation tile (whole output rows) and R weight rows for each output block
  of a round; each block's COMPUTE streams the tile past its stationary rows
  into that block's own accumulator region, accumulating over the steps
  (``_ws_round``: a round is as many blocks as half the accumulator holds
  tiles of, at least ``_WS_ROUND_BLOCKS`` with shorter tiles).
* OS: a step is a tile of R output pixels against the whole reduction
  (chunked if it exceeds a scratchpad half). Tiles take the pixels in raster
  order across image rows (``_os_tiles``; a pointwise convolution reads them
  as one long row), so a width that is no multiple of R idles no lanes; the
  activation rows of each tap are one LOAD per image row the tile touches,
  whose groups are the input-channel blocks (``sram_gap`` leaves the other
  rows' pixels between a block's rows of one image row). When the
  reduction fits one chunk, the tile serves every output block whose weights
  fit half the weight scratchpad, or, when that is one block, a group filling
  the whole weight scratchpad (block j's weights replace the previous group's
  block j once its last compute is done). Each block's compute of a group's
  first tile waits only for its own weights.

Both use ``gemm.PingPongScheduler``: loads run ahead into other scratchpad
regions (up to ``_MAX_ACT_BUFFERS``), stores of a tile overlap the next tiles.
"""
from dataclasses import replace
from itertools import product

import numpy as np

from hdl.compute import max_in_flight
from hdl.config import AcceleratorConfig, Dataflow
from hdl.isa import MAX_COMPUTE_BEATS, MAX_SRAM_GAP, Instruction, Opcode, Target
from hdl.numerics import ArithMode, neutral_padding

from .gemm import PingPongScheduler
from .memory import FeatureMap, MemoryImage
from .program import records_row
from .window import window_fields

__all__ = ["lower_conv"]


class _Weights:
    """The weights of output ``blocks`` in one region: block after block, each its K rows (tap, cin padded
    to ``lanes``) of C int8 lanes (zeros past its channels), so a round's rows of one step are one strided LOAD."""

    def __init__(self, image: MemoryImage, name: str, weight: np.ndarray, lanes: int, cols: int, blocks: range):
        cout, kh, kw, cin = weight.shape
        cin_blocks = -(-cin // lanes)
        padded = np.zeros((cout, kh * kw, cin_blocks * lanes), dtype=np.int64)
        padded[:, :, :cin] = weight.reshape(cout, kh * kw, cin)
        rows = padded.reshape(cout, -1).T          # (K, cout)
        self.k = rows.shape[0]
        stacked = np.zeros((len(blocks), self.k, cols), dtype=np.int64)
        for index, block in enumerate(blocks):
            part = rows[:, block * cols:(block + 1) * cols]
            stacked[index, :, :part.shape[1]] = part
        self.region = image.place_rows(f"{name}.w.n{blocks.start}", stacked.reshape(-1, cols))
        self.blocks = blocks

    def address(self, block: int, k_row: int) -> int:
        """DRAM address of reduction row ``k_row`` of output block ``block``."""
        return self.region.address + ((block - self.blocks.start) * self.k + k_row) * self.region.row_stride

    @property
    def block_stride(self) -> int:
        return self.k * self.region.row_stride


# WS rounds of at least this many output blocks make a step's COMPUTEs stream several times the rows its
# loads bring (one activation tile, R weight rows per block), so the array rather than DRAM sets the pace.
_WS_ROUND_BLOCKS = 4
# The smallest tile of a WS layer's shrinking tail (``_ws_tiles``), in pixels per array row: a shorter
# tile's COMPUTEs barely outlast the preload of their R stationary rows.
_WS_TAIL_MIN_PIXELS = 4
# Activation tiles a WS layer with resident weights may keep in flight.
_MAX_ACT_BUFFERS = 4


def _ws_round(config: AcceleratorConfig, width: int, height: int, blocks: int) -> tuple[int, int]:
    """(output blocks per round, output rows per tile) for WS: each activation tile a step loads serves a
    round of output blocks, each accumulating in its own region of an accumulator half."""
    act_half, weight_half, acc_half = config.act_rows // 2, config.weight_rows // 2, config.acc_rows // 2
    tile_rows = min(height, min(act_half, acc_half, MAX_COMPUTE_BEATS) // width)
    if tile_rows == 0:
        return 1, 0
    most = min(blocks, weight_half // config.array.rows)
    members = min(most, acc_half // (tile_rows * width))
    if members < min(most, _WS_ROUND_BLOCKS):
        # Shorter tiles for a round of _WS_ROUND_BLOCKS blocks, if a tile keeps a whole output row.
        members = min(most, _WS_ROUND_BLOCKS)
        tile_rows = max(1, min(tile_rows, acc_half // (members * width)))
        members = max(1, min(members, acc_half // (tile_rows * width)))
    return members, tile_rows


def _ws_tiles(height: int, tile_rows: int, steps: int, store_beats: int, min_rows: int
              ) -> list[tuple[int, int]]:
    """(first row, rows) of a WS layer's activation tiles: whole tiles of ``tile_rows``, the odd rows first,
    then tiles shrinking towards the end. A tile's STOREs (``store_beats`` W beats per pixel and block)
    overlap the next tile's ``steps`` COMPUTEs (a beat per pixel and block each), so the layer ends with
    the last tile's stores and whatever of the tile before's outlast it: each tile of the tail is the
    largest whose stores the next one's computes cover, down to ``min_rows``."""
    tail = [min_rows] if steps > store_beats and min_rows < tile_rows < height else []
    while tail and sum(tail) < height and steps * tail[-1] // store_beats < tile_rows:
        tail.append(min(steps * tail[-1] // store_beats, height - sum(tail)))
    rest = height - sum(tail)
    sizes = ([rest % tile_rows] if rest % tile_rows else []) + [tile_rows] * (rest // tile_rows) + tail[::-1]
    starts = [sum(sizes[:index]) for index in range(len(sizes))]
    return list(zip(starts, sizes))


def lower_conv(config: AcceleratorConfig, image: MemoryImage, name: str, x: FeatureMap, y: FeatureMap,
               weight: np.ndarray, stride: tuple[int, int], offset: tuple[int, int],
               records: Instruction, blocks: range | None = None, mode: ArithMode = ArithMode.INT8
               ) -> list[Instruction]:
    """Instructions computing output channel ``blocks`` (default all) of ``y`` and storing them.

    ``weight`` is in array coordinates, ``(y blocks * C, kh, kw, x blocks * R)``:
    row ``b * C + j`` is column ``j`` of output block ``b``, input ``k * R + l``
    multiplies lane ``l`` of input block ``k`` (zeros where no channel is; for a
    binary ``mode`` a lane is a byte of 8 packed channels and the lanes past a
    block's bytes are loaded as ``numerics.neutral_padding``).
    ``offset`` is minus the (top, left) padding. CONFIG is the caller's; ``records``
    is the LOAD of output block ``b``'s channel records into channel row ``b - blocks.start``:
    issued first, or, where a group's weights come block by block, each block's row with them.
    """
    array = config.array
    rows, cols = array.rows, array.cols
    _, kh, kw, _ = weight.shape
    taps = [(dy, dx) for dy in range(kh) for dx in range(kw)]
    cin_blocks = x.channel_blocks
    blocks = blocks or range(y.channel_blocks)
    weights = _Weights(image, name, weight, rows, cols, blocks)
    act_half, weight_half, acc_half = config.act_rows // 2, config.weight_rows // 2, config.acc_rows // 2
    pad_value = neutral_padding(mode)[0]

    def load_bytes(block):      # int8 lanes past a block's channels meet zero weights; binary ones must be padding
        return x.row_bytes(block) if x.binary else x.lanes

    def store(block, acc_addr, first_row, out_rows, first_col, out_cols):
        return {"channel_row": block - blocks.start, "acc_addr": acc_addr,
                **y.store_fields(block, first_row, out_rows, first_col, out_cols)}

    def tap_offset(tap):
        return tap[0] + offset[0], tap[1] + offset[1]

    if array.dataflow == Dataflow.WS:
        members, tile_rows = _ws_round(config, y.width, y.height, len(blocks))
        if tile_rows == 0:
            raise ValueError(f"Layer {name}: an output row of {y.width} pixels exceeds half a scratchpad "
                             f"({min(act_half, acc_half)} rows)")
        steps = [(tap, cb) for tap in taps for cb in range(cin_blocks)]
        tiles = _ws_tiles(y.height, tile_rows, len(steps), -(-y.row_bytes(blocks[0]) // config.bus_bytes),
                          -(-_WS_TAIL_MIN_PIXELS * rows // y.width))
        # Resident weights: when a round's whole reduction fits half the weight scratchpad, its first tile
        # loads it (step after step, into the half of the round's parity) and its other tiles reuse it.
        resident = members * weights.k <= weight_half
        # Then the activation scratchpad may hold more than two tiles, so loads run further ahead; a
        # round's weight half is rewritten two rounds later, so a round must span buffers - 1 steps.
        buffers = 2
        if resident:
            steps_per_round = len(steps) * len(tiles)
            buffers = max(2, min(_MAX_ACT_BUFFERS, config.act_rows // (tile_rows * y.width), steps_per_round + 1))
        scheduler = PingPongScheduler(buffers)
        act_region = config.act_rows // buffers
        rounds = 0
        for round_index, first_block in enumerate(range(0, len(blocks), members)):
            round_blocks = blocks[first_block:first_block + members]
            for first_row, out_rows in tiles:
                pixels = out_rows * y.width
                acc_base = (rounds % 2) * acc_half
                for index, (tap, cb) in enumerate(steps):
                    half = scheduler.region
                    k_row = (taps.index(tap) * cin_blocks + cb) * rows
                    weight_base = ((round_index % 2) * weight_half + index * len(round_blocks) * rows if resident
                                   else half * weight_half)
                    loads = []
                    if not resident or first_row == 0:
                        # The round's R rows of this step, block after block: one LOAD (a load queue slot
                        # each keeps instruction fetch from stalling on a full queue).
                        loads.append((Opcode.LOAD, {
                            "target": Target.WEIGHTS, "sram_addr": weight_base,
                            "dram_addr": weights.address(round_blocks[0], k_row), "row_elems": cols, "rows": rows,
                            "row_stride": weights.region.row_stride, "blocks": len(round_blocks),
                            "block_stride": weights.block_stride}))
                    loads.append((Opcode.LOAD, {"target": Target.ACTIVATIONS, "sram_addr": half * act_region,
                                                "row_elems": load_bytes(cb), "pad_value": pad_value, **window_fields(
                                                    x, block=cb, first_row=first_row, out_rows=out_rows, first_col=0,
                                                    out_cols=y.width, stride=stride, offset=tap_offset(tap))}))
                    last = index == len(steps) - 1
                    # A round's tiles hand the accumulator half over together: its first compute waits
                    # for the stores of the round before last, and its last store releases the half.
                    scheduler.step_many(loads, [
                        ({"act_addr": half * act_region, "weight_addr": weight_base + j * rows,
                          "acc_addr": acc_base + j * pixels, "beats": pixels, "accumulate": int(index > 0),
                          "mode": mode}, index == 0, last,
                         [store(block, acc_base + j * pixels, first_row, out_rows, 0, y.width)] if last else [],
                         index == 0 and j == 0 and rounds >= 2, j == len(round_blocks) - 1)
                        for j, block in enumerate(round_blocks)])
                rounds += 1
        return [records] + scheduler.finish(end=False)

    pointwise = (kh, kw, tuple(stride), tuple(offset)) == (1, 1, (1, 1), (0, 0))
    if pointwise:
        # A pointwise convolution is a GEMM over the pixels, which lie in DRAM one after another:
        # seen as one long output row, its tiles of R pixels cross image rows in one LOAD per run.
        x = replace(x, height=1, width=x.height * x.width)
        y = replace(y, height=1, width=y.height * y.width)
    # An OS tile (R output pixels) drains for about 2R + C cycles after its last beat: as many
    # tiles as the compute unit keeps in flight, and as many again waiting for their STOREs,
    # each in its own accumulator region, overlap that. A STORE that hands its region back waits
    # for its write responses and holds later STOREs' bursts meanwhile, so the regions go back
    # in groups of `handover` tiles (a quarter of them), each group's last STORE handing them over.
    region_count = max(2, min(2 * max_in_flight(array), config.acc_rows // rows))
    handover = 1 << max(0, (region_count // 4).bit_length() - 1)
    acc_buffers = region_count // handover * handover
    k_blocks = len(taps) * cin_blocks
    chunk_blocks = min(k_blocks, min(act_half, weight_half, MAX_COMPUTE_BEATS) // rows)
    chunks = [range(start, min(start + chunk_blocks, k_blocks)) for start in range(0, k_blocks, chunk_blocks)]
    # When the whole reduction fits one chunk, the weights of a group of output blocks stay
    # loaded (in the weight half of the group's parity) and each activation tile serves the group.
    keep_weights = len(chunks) == 1
    k_rows = chunk_blocks * rows
    group = max(1, min(len(blocks), weight_half // k_rows)) if keep_weights else 1
    # A group of one block reads as many activation rows as it computes beats: rather groups that fill
    # the whole weight scratchpad, each group's weights loaded once every earlier compute has retired.
    whole_group = min(len(blocks), config.weight_rows // k_rows)
    whole_weights = keep_weights and group == 1 and whole_group > 1
    if whole_weights:
        group = whole_group
    runs, block = 0, 0       # LOADs per tap and image row: runs of evenly spaced input blocks
    while block < cin_blocks:
        block += x.run(block, cin_blocks - block)
        runs += 1
    tiles = _os_tiles(y, rows, span=_os_spans_rows(y, rows, len(taps) * runs, group * chunk_blocks * rows))
    # A step's loads wait for the computes that last used their region to retire (2R + C cycles after
    # their last beat), and instruction fetch, in program order, waits behind them: with more regions
    # than two the step two back has long retired. A group's weight half is rewritten two groups
    # later, so with resident weights a group must span buffers - 1 steps.
    steps_per_group = len(tiles) * len(chunks)
    buffers = max(2, min(_MAX_ACT_BUFFERS, config.act_rows // k_rows,
                         steps_per_group + 1 if keep_weights and not whole_weights else config.weight_rows // k_rows))
    act_region, weight_region = config.act_rows // buffers, config.weight_rows // buffers
    scheduler = PingPongScheduler(buffers, acc_buffers)

    def block_records(block):
        """The channel-records row of one output block, out of ``records``."""
        return (Opcode.LOAD, records_row(records, block - blocks.start))

    def act_load(tap, block, sram_row, row, col, count, sram_rows, groups):
        """``sram_rows`` rows of each of ``groups`` input blocks, every block's at R rows from the last."""
        return (Opcode.LOAD, {
            "target": Target.ACTIVATIONS, "sram_addr": sram_row, "row_elems": load_bytes(block),
            "pad_value": pad_value, "sram_gap": rows - sram_rows, **window_fields(
                x, block=block, first_row=row, out_rows=1, first_col=col, out_cols=count,
                stride=stride, offset=tap_offset(tap), rows=sram_rows, groups=groups)})

    def activation_loads(segments, reduction, sram_row):
        """The activation LOADs of one tile's ``reduction`` blocks (tap * cin_blocks + input block), from
        ``sram_row`` on: one LOAD per run of evenly spaced input blocks and segment, a block's R rows its
        segments' pixels. The rows past a short tile's pixels are not loaded: their lanes' results are
        never stored, so whatever those rows hold does not matter."""
        loads = []
        for tap_index, tap in enumerate(taps):
            blocks_here = [kb % cin_blocks for kb in reduction if kb // cin_blocks == tap_index]
            while blocks_here:
                run = x.run(blocks_here[0], len(blocks_here))
                lane = 0         # of the tile's R pixels, the segment's first
                for row, col, count in segments:
                    loads.append(act_load(tap, blocks_here[0], sram_row + lane, row, col, count, count, groups=run))
                    lane += count
                sram_row += run * rows
                blocks_here = blocks_here[run:]
        return loads

    def weight_load(block, sram_addr, reduction):
        return (Opcode.LOAD, {"target": Target.WEIGHTS, "sram_addr": sram_addr,
                              "dram_addr": weights.address(block, reduction.start * rows),
                              "row_elems": y.block_channels(block), "rows": len(reduction) * rows,
                              "row_stride": weights.region.row_stride})

    def merged_loads(step_tiles, reduction, sram_row):
        """The activation LOADs of whole pointwise tiles that follow each other: per run of input blocks,
        one LOAD whose groups are the tiles (R pixels apart), its blocks the run, ``sram_gap`` the tile's other
        blocks; or None where that does not apply."""
        full = all(len(segments) == 1 and segments[0][2] == rows for segments in step_tiles)
        if not (pointwise and full and len(step_tiles) > 1):
            return None
        _, col, _ = step_tiles[0][0]
        loads, skip, blocks_here = [], 0, list(reduction)
        while blocks_here:
            run = x.run(blocks_here[0], len(blocks_here))
            gap = (len(reduction) - run) * rows
            if gap > MAX_SRAM_GAP:
                return None
            loads.append((Opcode.LOAD, {
                "target": Target.ACTIVATIONS, "sram_addr": sram_row + skip, "row_elems": load_bytes(blocks_here[0]),
                "pad_value": pad_value, "sram_gap": gap,
                "dram_addr": x.pixel_address(blocks_here[0], 0, col), "rows": rows, "row_stride": x.row_stride,
                "blocks": run, "block_stride": x.block_stride, "groups": len(step_tiles),
                "group_stride": rows * x.row_stride}))
            skip += run * rows
            blocks_here = blocks_here[run:]
        return loads

    # Whole-scratchpad groups as even as their size allows: a short last group would leave the array
    # waiting for each tile's activations, which it uses for fewer beats.
    count = -(-len(blocks) // group)
    bounds = [-(-len(blocks) * g // count) if whole_weights else min(g * group, len(blocks)) for g in range(count + 1)]
    # The first group's first tile waits for each block's weights in turn (a block's LOADs take longer
    # than its compute): when that costs more than loading a second tile, the first two tiles share a
    # step, block after block, so that the array computes two tiles against each block meanwhile.
    first_group = bounds[1] - bounds[0]
    tile_loads = len(taps) * runs * len(tiles[0]) if tiles else 0
    part_blocks = -(-_FIRST_PART_BEATS // rows)
    parted = keep_weights and k_blocks > part_blocks
    paired = (keep_weights and len(tiles) >= max(2, buffers) and 2 * k_rows <= act_region
              and (parted and first_group > 1 or first_group * _LOAD_CYCLES > tile_loads * _LOAD_CYCLES + k_rows))
    for g in range(count):
        members = blocks[bounds[g]:bounds[g + 1]]
        steps = [tiles[:2]] + [[tile] for tile in tiles[2:4]] if paired and g == 0 else [[tile] for tile in tiles[:2]]
        # Later steps of a pointwise layer take several whole tiles, each run of input blocks one LOAD for all
        # (not with whole-scratchpad groups, whose next group's weight loads wait for a compute per block).
        merge = 1 if whole_weights else max(1, min(_MERGED_LOAD_ROWS // k_rows, act_region // k_rows,
                                                   acc_buffers // (2 * len(members))))
        # Their tiles start at multiples of `merge`, as the groups of tiles handed over together do, so
        # that a step's tiles of an output block are one STORE.
        done = sum(map(len, steps))
        lead = min(-done % merge, len(tiles) - done)
        rest = tiles[done + lead:]
        steps += [tiles[done:done + lead]] * bool(lead) + [rest[first:first + merge] for first in range(0, len(rest), merge)]
        for step_index, step_tiles in enumerate(steps):
            # A region is a tile's R rows, so that consecutive full tiles of a handover group lie one after
            # another in the accumulator as in DRAM, and one STORE writes them all (`_merge_stores`).
            regions = [scheduler.acc_region(i) * rows for i in range(len(members) * len(step_tiles))]
            for index, chunk in enumerate(chunks):
                region = scheduler.region
                tile_base = region * act_region
                last = index == len(chunks) - 1
                # Resident weights: block j of the group at j * k_rows of the group's half (or of all).
                group_base = 0 if whole_weights else (g % 2) * weight_half
                weight_addrs = [group_base + j * k_rows if keep_weights else region * weight_region
                                for j in range(len(members))]
                # The layer's first computes wait for their tile's activations and their block's weights,
                # the whole reduction of each, which the read channel brings slower than the array uses
                # them: in the first two steps (until the array, reusing the weights, gets ahead of the
                # loads) they rather run in parts, each after its own loads (not in a group's last step, whose
                # computes the next group's weight loads wait for one by one).
                split = parted and g == 0 and step_index < min(2, len(steps) - 1)
                parts = ([range(start, min(start + part_blocks, chunk.stop))
                          for start in range(chunk.start, chunk.stop, part_blocks)] if split else [chunk])
                weighted = not keep_weights or step_index == 0
                loads = [] if split else merged_loads(step_tiles, chunk, tile_base) or [
                    load for number, segments in enumerate(step_tiles)
                    for load in activation_loads(segments, chunk, tile_base + number * len(chunk) * rows)]
                stages, stage_computes, computes = [], [], []
                first_tile = scheduler.tiles
                combos = list(enumerate(product(range(len(members)), range(len(step_tiles)))))
                # In parts, part after part: each part's loads (the tiles' activations, each block's weights)
                # and then its computes of every block and tile, so that the array works on a part's first
                # block while the next blocks' weights of that part come in; in rounds of as many tiles as
                # start without waiting for a region that a later STORE of the round would hand back.
                rounds = acc_buffers - handover
                for part, (i, (j, number)) in [(part, combo) for first in range(0, len(combos), rounds)
                                               for part in parts for combo in combos[first:first + rounds]]:
                    tile = first_tile + i
                    out_row, first_col, _ = step_tiles[number][0]
                    pixels = sum(count for _, _, count in step_tiles[number])
                    brings_weights = weighted and number == 0
                    skip = (part.start - chunk.start) * rows
                    stage = ((activation_loads(step_tiles[number], part, tile_base + number * k_rows + skip)
                              if split and j == 0 else [])
                             + ([weight_load(members[j], weight_addrs[j] + skip, part)] if brings_weights else [])
                             + ([block_records(members[j])] if brings_weights and keep_weights
                                and part.stop == chunk.stop else []))
                    if stage:
                        stages.append(stage)
                        stage_computes.append(0)
                    if stage_computes:       # a compute before any stage follows the step's loads
                        stage_computes[-1] += 1
                    first, ends = index == 0 and part.start == chunk.start, last and part.stop == chunk.stop
                    # A tile's pixels follow each other in DRAM, across image rows too: one STORE.
                    computes.append(({"act_addr": tile_base + number * k_rows + skip,
                                      "weight_addr": weight_addrs[j] + skip, "acc_addr": regions[i],
                                      "beats": len(part) * rows, "accumulate": int(not first), "mode": mode},
                                     first, ends,
                                     [store(members[j], regions[i], out_row, 1, first_col, pixels)] if ends else [],
                                     # A group's first tile waits for the group whose regions it reuses.
                                     first and tile % handover == 0 and tile >= acc_buffers,
                                     tile % handover == handover - 1))
                # Each block's computes start once its own weights are in; a whole-scratchpad group's
                # block j replaces the previous group's once that group's last compute of block j is done.
                scheduler.step_many(loads, _merge_stores(computes), stages=stages,
                                    reuse=whole_weights and g > 0 and step_index == 0, stage_computes=stage_computes)
    return ([] if keep_weights else [records]) + scheduler.finish(end=False)


# A layer's first OS computes run in parts of this many beats (each part's loads are about as long).
_FIRST_PART_BEATS = 64
# Later steps of a pointwise layer take as many whole tiles as bring this many activation rows in one LOAD.
_MERGED_LOAD_ROWS = 256
# Cycles an OS step spends on each activation LOAD it issues (its fetch, check and first burst); a
# tile crossing image rows takes a LOAD per row it touches for each (tap, input block).
_LOAD_CYCLES = 12


def _merge_stores(computes: list[tuple]) -> list[tuple]:
    """OS step entries with each run of STOREs that continue each other (in the accumulator and in DRAM,
    the same output block) made one STORE, after the run's last compute. A run ends at a STORE that hands
    regions back. Each STORE's instruction fetch, two bus beats, competes with the activation LOADs:
    a pointwise layer of 64 input channels reads as many bytes of activations as the array computes
    beats, so one STORE per tile of R pixels took 3% of its read channel."""
    merged = []
    for entry in computes:
        fields, starts, ends, stores, waits, releases = entry
        before = merged[-1] if merged else None
        if before and len(stores) == len(before[3]) == 1 and not before[5]:
            run, store = before[3][0], stores[0]
            if (run["blocks"] == 1 and run["acc_addr"] + run["rows"] == store["acc_addr"]
                    and run["dram_addr"] + run["rows"] * run["row_stride"] == store["dram_addr"]
                    and {**run, "rows": 0, "acc_addr": 0, "dram_addr": 0}
                    == {**store, "rows": 0, "acc_addr": 0, "dram_addr": 0}):
                merged[-1] = (*before[:3], [], *before[4:])
                stores = [{**run, "rows": run["rows"] + store["rows"]}]
        merged.append((fields, starts, ends, stores, waits, releases))
    return merged


def _os_spans_rows(y: FeatureMap, rows: int, loads_per_segment: int, step_beats: int) -> bool:
    """Whether OS tiles should cross output rows: when rows leave lanes idle and a step's computes
    (``step_beats``) outlast the LOADs of two segments."""
    return y.width % rows != 0 and 2 * loads_per_segment * _LOAD_CYCLES <= step_beats


def _os_tiles(y: FeatureMap, rows: int, span: bool) -> list[list[tuple[int, int, int]]]:
    """OS tiles of up to R output pixels as (output row, first column, pixels) segments: R pixels in
    raster order across rows (``span``), or each row cut into its own tiles."""
    if not span:
        return [[(row, col, min(rows, y.width - col))] for row in range(y.height) for col in range(0, y.width, rows)]
    tiles = []
    total = y.height * y.width
    for first in range(0, total, rows):
        segments, pixel = [], first
        while pixel < min(first + rows, total):
            row, col = divmod(pixel, y.width)
            count = min(y.width - col, first + rows - pixel, total - pixel)
            segments.append((row, col, count))
            pixel += count
        tiles.append(segments)
    return tiles
