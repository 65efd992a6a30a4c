"""Lowering of a dense int8 convolution (1x1, KxK, 1xK/Kx1, strided, fully connected) to the systolic array.

The convolution is a GEMM whose reduction index is (tap, input channel):
weights are stored per block of C output channels as rows ``(tap, cin)``,
input channels padded to whole blocks of R with zeros. Activations are read
in place from the input feature map, one window tap at a time
(``quant.window``): no im2col copy.

* WS: a step is one (tap, input-channel block): R weight rows stay in the
  array while the output pixels of a tile (whole output rows) stream through,
  accumulating over the steps.
* OS: a step is R output pixels of one output row against the whole
  reduction (chunked if it exceeds a scratchpad half); the activation rows of
  each tap are one LOAD whose groups are the input-channel blocks, and when the
  reduction fits one chunk they serve every output block whose weights fit
  half the weight scratchpad.

Both use ``gemm.PingPongScheduler``: loads run a step ahead into the other
scratchpad half, stores of a tile overlap the next tile.
"""
import numpy as np
from amaranth.hdl import Shape

from hdl.config import AcceleratorConfig, Dataflow
from hdl.isa import COMPUTE, Instruction, Opcode, Target
from hdl.numerics import ArithMode, neutral_padding

from .gemm import PingPongScheduler
from .memory import FeatureMap, MemoryImage
from .window import window_fields

__all__ = ["lower_conv"]

_MAX_BEATS = (1 << Shape.cast(COMPUTE.members["beats"]).width) - 1


def _weight_regions(image: MemoryImage, name: str, weight: np.ndarray, lanes: int, cols: int,
                    blocks: range) -> dict:
    """Per block of C output channels in ``blocks``, rows (tap, cin padded to ``lanes``) of C int8 lanes."""
    cout, kh, kw, cin = weight.shape
    cin_blocks = -(-cin // lanes)
    padded = np.zeros((cout, kh * kw, cin_blocks * lanes), dtype=np.int64)
    padded[:, :, :cin] = weight.reshape(cout, kh * kw, cin)
    rows = padded.reshape(cout, -1).T          # (K, cout)
    return {b: image.place_rows(f"{name}.w.n{b}", rows[:, b * cols:(b + 1) * cols]) for b in blocks}


def lower_conv(config: AcceleratorConfig, image: MemoryImage, name: str, x: FeatureMap, y: FeatureMap,
               weight: np.ndarray, stride: tuple[int, int], offset: tuple[int, int],
               blocks: range | None = None, mode: ArithMode = ArithMode.INT8) -> list[Instruction]:
    """Instructions computing output channel ``blocks`` (default all) of ``y`` and storing them.

    ``weight`` is in array coordinates, ``(y blocks * C, kh, kw, x blocks * R)``:
    row ``b * C + j`` is column ``j`` of output block ``b``, input ``k * R + l``
    multiplies lane ``l`` of input block ``k`` (zeros where no channel is; for a
    binary ``mode`` a lane is a byte of 8 packed channels and the lanes past a
    block's bytes are loaded as ``numerics.neutral_padding``).
    ``offset`` is minus the (top, left) padding. CONFIG and channel records are
    the caller's: channel row ``b - blocks.start`` must hold output block ``b``'s records.
    """
    array = config.array
    rows, cols = array.rows, array.cols
    _, kh, kw, _ = weight.shape
    taps = [(dy, dx) for dy in range(kh) for dx in range(kw)]
    cin_blocks = x.channel_blocks
    blocks = blocks or range(y.channel_blocks)
    regions = _weight_regions(image, name, weight, rows, cols, blocks)
    act_half, weight_half, acc_half = config.act_rows // 2, config.weight_rows // 2, config.acc_rows // 2
    scheduler = PingPongScheduler()
    pad_value = neutral_padding(mode)[0]

    def load_bytes(block):      # int8 lanes past a block's channels meet zero weights; binary ones must be padding
        return x.row_bytes(block) if x.binary else x.lanes

    def store(block, acc_addr, first_row, out_rows, first_col, out_cols):
        return {"channel_row": block - blocks.start, "acc_addr": acc_addr,
                "dram_addr": y.pixel_address(block, first_row, first_col), "channels": y.block_channels(block),
                **({"byte_offset": y.byte_offset(block)} if y.byte_offset(block) else {}),
                "rows": out_cols, "row_stride": y.row_stride, "blocks": out_rows,
                "block_stride": y.width * y.row_stride}

    def tap_offset(tap):
        return tap[0] + offset[0], tap[1] + offset[1]

    if array.dataflow == Dataflow.WS:
        tile_rows = min(y.height, min(act_half, acc_half, _MAX_BEATS) // y.width)
        if tile_rows == 0:
            raise ValueError(f"Layer {name}: an output row of {y.width} pixels exceeds half a scratchpad "
                             f"({min(act_half, acc_half)} rows)")
        steps = [(tap, cb) for tap in taps for cb in range(cin_blocks)]
        for block in blocks:
            region = regions[block]
            for first_row in range(0, y.height, tile_rows):
                out_rows = min(tile_rows, y.height - first_row)
                for index, (tap, cb) in enumerate(steps):
                    half = scheduler.steps % 2
                    k_row = (taps.index(tap) * cin_blocks + cb) * rows
                    loads = [(Opcode.LOAD, {"target": Target.WEIGHTS, "sram_addr": half * weight_half,
                                            "dram_addr": region.address + k_row * region.row_stride,
                                            "row_elems": y.block_channels(block), "rows": rows,
                                            "row_stride": region.row_stride}),
                             (Opcode.LOAD, {"target": Target.ACTIVATIONS, "sram_addr": half * act_half,
                                            "row_elems": load_bytes(cb), "pad_value": pad_value, **window_fields(
                                                x, block=cb, first_row=first_row, out_rows=out_rows, first_col=0,
                                                out_cols=y.width, stride=stride, offset=tap_offset(tap))})]
                    compute = {"act_addr": half * act_half, "weight_addr": half * weight_half,
                               "acc_addr": (scheduler.tiles % 2) * acc_half, "beats": out_rows * y.width,
                               "accumulate": int(index > 0), "mode": mode}
                    last = index == len(steps) - 1
                    scheduler.step(loads, compute, starts_tile=index == 0, ends_tile=last,
                                   store=[store(block, (scheduler.tiles % 2) * acc_half, first_row, out_rows, 0,
                                                y.width)] if last else [])
        return scheduler.finish(end=False)

    k_blocks = len(taps) * cin_blocks
    chunk_blocks = min(k_blocks, min(act_half, weight_half, _MAX_BEATS) // rows)
    chunks = [range(start, min(start + chunk_blocks, k_blocks)) for start in range(0, k_blocks, chunk_blocks)]
    # When the whole reduction fits one chunk, the weights of a group of output blocks stay
    # loaded (in the weight half of the group's parity) and each activation tile serves the group.
    keep_weights = len(chunks) == 1
    k_rows = chunk_blocks * rows
    group = max(1, min(len(blocks), weight_half // k_rows)) if keep_weights else 1
    for g, first in enumerate(range(0, len(blocks), group)):
        members = blocks[first:first + group]
        for out_row in range(y.height):
            for first_col in range(0, y.width, rows):
                out_cols = min(rows, y.width - first_col)
                tiles = [scheduler.acc_parity(j) * acc_half for j in range(len(members))]
                for index, chunk in enumerate(chunks):
                    half = scheduler.steps % 2
                    beats = len(chunk) * rows
                    loads = []
                    sram_row = half * act_half
                    for tap_index, tap in enumerate(taps):
                        blocks_here = [kb % cin_blocks for kb in chunk if kb // cin_blocks == tap_index]
                        while blocks_here:      # one LOAD per run of evenly spaced input blocks
                            run = x.run(blocks_here[0], len(blocks_here))
                            loads.append((Opcode.LOAD, {
                                "target": Target.ACTIVATIONS, "sram_addr": sram_row,
                                "row_elems": load_bytes(blocks_here[0]), "pad_value": pad_value,
                                **window_fields(x, block=blocks_here[0], first_row=out_row, out_rows=1,
                                                first_col=first_col, out_cols=out_cols, stride=stride,
                                                offset=tap_offset(tap), rows=rows, groups=run)}))
                            sram_row += run * rows
                            blocks_here = blocks_here[run:]
                    computes = []
                    last = index == len(chunks) - 1
                    for j, block in enumerate(members):
                        weight_addr = ((g % 2) * weight_half + j * k_rows) if keep_weights else half * weight_half
                        if not keep_weights or (out_row == 0 and first_col == 0):
                            loads.append((Opcode.LOAD, {
                                "target": Target.WEIGHTS, "sram_addr": weight_addr,
                                "dram_addr": regions[block].address + chunk.start * rows * regions[block].row_stride,
                                "row_elems": y.block_channels(block), "rows": beats,
                                "row_stride": regions[block].row_stride}))
                        computes.append(({"act_addr": half * act_half, "weight_addr": weight_addr,
                                          "acc_addr": tiles[j], "beats": beats, "accumulate": int(index > 0),
                                          "mode": mode}, index == 0, last,
                                         [store(block, tiles[j], out_row, 1, first_col, out_cols)] if last else []))
                    scheduler.step_many(loads, computes)
    return scheduler.finish(end=False)
