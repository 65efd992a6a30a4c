"""DRAM memory images: where tensors, parameters and programs live, and how they are packed.

The layout rules, defined once and used by the compiler, the ISA simulator,
the simulation loaders and (later) the host driver:

* every region and every row starts at a multiple of the bus width in bytes;
* a row's burst never crosses a 4 KiB boundary (an AXI rule): rows are spaced
  by a power of two at least their size (``row_stride``) and regions aligned to it;
* int8 rows are packed lane after lane, int32 lanes little-endian;
* a channel record (``isa.CHANNEL_RECORD_BYTES``) is bias int32, multiplier
  int32 (the hardware keeps its low ``MULTIPLIER_BITS``), shift int8, flip uint8,
  then zero padding;
* instructions are ``isa.INSTRUCTION_BITS`` wide, little-endian;
* a feature map (H, W, C) is NHWC in channel blocks (``FeatureMap``): block
  ``cb`` holds channels ``cb*lanes ..`` of every pixel, one row per pixel in
  raster order, so convolution windows and pooling taps are whole rows.
"""
from dataclasses import dataclass, field

import numpy as np

from hdl.axi import BURST_BOUNDARY
from hdl.isa import (CHANNEL_RECORD_BYTES, CHANNEL_RECORD_FIELDS, CHANNEL_RECORD_KEPT_BYTES, CHANNEL_RECORD_KEPT_FIELDS,
                     INSTRUCTION_BITS, Instruction, encode)

__all__ = ["Region", "FeatureMap", "MemoryImage", "pack_channel_records", "unpack_channel_records", "round_up", "row_stride",
           "AXI_BOUNDARY"]

INSTRUCTION_BYTES = INSTRUCTION_BITS // 8


AXI_BOUNDARY = BURST_BOUNDARY


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def row_stride(row_bytes: int, alignment: int) -> int:
    """Spacing of rows of ``row_bytes``: a power of two, at least the bus alignment."""
    if row_bytes > AXI_BOUNDARY:
        raise ValueError(f"A row of {row_bytes} bytes exceeds the {AXI_BOUNDARY}-byte AXI burst boundary")
    return max(alignment, 1 << max(row_bytes - 1, 0).bit_length())


@dataclass(frozen=True)
class Region:
    """A named, aligned byte range of the image, with how its rows are laid out."""
    name: str
    address: int
    size: int
    row_stride: int = 0
    rows: int = 0


@dataclass(frozen=True)
class FeatureMap:
    """Where an (H, W, C) tensor's channel blocks live: ``lanes`` channels per block, a row per pixel.

    Blocks are contiguous from ``address`` (every ``block_stride`` bytes) unless
    ``block_addresses`` lists them one by one (a view gathering blocks of
    several tensors); ``block_counts`` then gives each block's live channels
    (its first lanes; default: ``channels`` filling the blocks in order).
    A ``binary`` map packs 8 channels per byte (``numerics.stored_bytes``).
    ``byte_offsets`` (a writer's view): block ``b``'s bytes start that far into
    the rows at ``block_address(b)`` (several blocks share one row; STORE's
    ``byte_offset``).
    """
    name: str
    address: int
    height: int
    width: int
    channels: int
    lanes: int
    row_stride: int
    block_addresses: tuple[int, ...] = ()
    block_counts: tuple[int, ...] = ()
    binary: bool = False
    byte_offsets: tuple[int, ...] = ()

    @property
    def channel_blocks(self) -> int:
        return len(self.block_addresses) if self.block_addresses else -(-self.channels // self.lanes)

    @property
    def block_stride(self) -> int:
        return self.height * self.width * self.row_stride

    def block_address(self, block: int) -> int:
        return self.block_addresses[block] if self.block_addresses else self.address + block * self.block_stride

    def block_channels(self, block: int) -> int:
        """Channels stored in channel block ``block`` (the last may be partial)."""
        if self.block_counts:
            return self.block_counts[block]
        return min(self.lanes, self.channels - block * self.lanes)

    def byte_offset(self, block: int) -> int:
        return self.byte_offsets[block] if self.byte_offsets else 0

    def row_bytes(self, block: int) -> int:
        """Bytes of a pixel row of ``block`` (binary maps pack 8 channels a byte)."""
        channels = self.block_channels(block)
        return -(-channels // 8) if self.binary else channels

    def run(self, block: int, count: int) -> int:
        """How many of blocks ``block .. block + count - 1`` follow each other ``block_stride`` apart
        (binary: with equal row bytes): one LOAD's groups."""
        length = 1
        while (length < count and self.block_address(block + length) == self.block_address(block)
               + length * self.block_stride
               and (not self.binary or self.row_bytes(block + length) == self.row_bytes(block))):
            length += 1
        return length

    def pixel_address(self, block: int, y: int, x: int) -> int:
        return self.block_address(block) + (y * self.width + x) * self.row_stride

    def store_fields(self, block: int, first_row: int, out_rows: int, first_col: int, out_cols: int) -> dict:
        """STORE fields (all but acc_addr and channel_row) writing ``out_cols`` pixels of each of ``out_rows``
        image rows of ``block`` from (first_row, first_col) on."""
        return {"dram_addr": self.pixel_address(block, first_row, first_col), "channels": self.block_channels(block),
                **({"byte_offset": self.byte_offset(block)} if self.byte_offset(block) else {}),
                "rows": out_cols, "row_stride": self.row_stride, "blocks": out_rows,
                "block_stride": self.width * self.row_stride}


def pack_channel_records(bias, multiplier, shift, flip) -> np.ndarray:
    """Channel parameters (one entry per output channel) as (channels, CHANNEL_RECORD_BYTES) bytes."""
    values = {"bias": bias, "multiplier": multiplier, "shift": shift, "flip": flip}
    records = np.zeros((len(bias), CHANNEL_RECORD_BYTES), dtype=np.uint8)
    for name, (offset, size) in CHANNEL_RECORD_FIELDS.items():
        field = np.asarray(values[name], dtype=np.int64).astype(f"<i{size}")
        records[:, offset:offset + size] = field.view(np.uint8).reshape(-1, size)
    return records


def unpack_channel_records(records: np.ndarray) -> dict[str, np.ndarray]:
    """The channel parameters as the hardware reads them: from the bytes the channel memory keeps
    (``isa.CHANNEL_RECORD_KEPT_BYTES``), each field its ``CHANNEL_RECORD_KEPT_FIELDS`` bits (the
    multiplier's low MULTIPLIER_BITS, the shift's low SHIFT_BITS, two's complement; the flip's low bit)."""
    kept = np.ascontiguousarray(records, dtype=np.uint8)[:, list(CHANNEL_RECORD_KEPT_BYTES)].astype(np.int64)
    params = {}
    for name, (offset, shape) in CHANNEL_RECORD_KEPT_FIELDS.items():
        first = offset // 8
        word = sum(kept[:, first + byte] << (8 * byte) for byte in range(-(-shape.width // 8)))
        low = word & ((1 << shape.width) - 1)
        sign = (1 << (shape.width - 1)) if shape.signed else 0
        params[name] = (low ^ sign) - sign
    return params


@dataclass
class MemoryImage:
    """A growing DRAM image with a layout map of named regions."""
    alignment: int
    data: bytearray = field(default_factory=bytearray)
    regions: dict[str, Region] = field(default_factory=dict)

    def allocate(self, name: str, size: int, stride: int = 0, rows: int = 0) -> Region:
        """Reserve ``size`` bytes aligned to the bus width and to ``stride`` (rows of that spacing)."""
        if name in self.regions:
            raise ValueError(f"Memory region {name!r} is already allocated")
        address = round_up(len(self.data), max(self.alignment, min(stride, AXI_BOUNDARY)))
        self.data.extend(bytes(address + round_up(max(size, 1), self.alignment) - len(self.data)))
        region = self.regions[name] = Region(name, address, size, stride, rows)
        return region

    def allocate_rows(self, name: str, rows: int, row_bytes: int) -> Region:
        """Reserve ``rows`` rows of ``row_bytes``, spaced by ``row_stride``."""
        stride = row_stride(row_bytes, self.alignment)
        return self.allocate(name, stride * rows, stride, rows)

    def place_rows(self, name: str, rows: np.ndarray, dtype: str = "<i1") -> Region:
        """Store a 2-D array one row per aligned slot; lanes packed as ``dtype``."""
        rows = np.asarray(rows)
        packed = rows.astype(dtype).view(np.uint8).reshape(rows.shape[0], -1)
        region = self.allocate_rows(name, rows.shape[0], packed.shape[1])
        for index, row in enumerate(packed):
            self.write(region.address + index * region.row_stride, row.tobytes())
        return region

    def allocate_feature_map(self, name: str, height: int, width: int, channels: int, lanes: int,
                             binary: bool = False) -> FeatureMap:
        """Reserve an (H, W, C) feature map in channel blocks of ``lanes`` (``binary``: 8 channels a byte)."""
        stride = row_stride(-(-lanes // 8) if binary else lanes, self.alignment)
        blocks = -(-channels // lanes)
        region = self.allocate(name, blocks * height * width * stride, stride, blocks * height * width)
        return FeatureMap(name, region.address, height, width, channels, lanes, stride, binary=binary)

    def place_feature_map(self, name: str, values: np.ndarray, lanes: int) -> FeatureMap:
        """Store an (H, W, C) int8 array as a feature map."""
        height, width, channels = values.shape
        fmap = self.allocate_feature_map(name, height, width, channels, lanes)
        for block in range(fmap.channel_blocks):
            lanes_here = values[:, :, block * lanes:block * lanes + fmap.block_channels(block)]
            for index, row in enumerate(lanes_here.reshape(height * width, -1).astype(np.int8)):
                self.write(fmap.pixel_address(block, 0, 0) + index * fmap.row_stride, row.tobytes())
        return fmap

    def read_feature_map(self, fmap: FeatureMap) -> np.ndarray:
        """The (H, W, C) int8 values of a contiguous int8 ``fmap``."""
        return self.read_blocks(fmap).reshape(fmap.height, fmap.width, -1)[:, :, :fmap.channels]

    def read_blocks(self, fmap: FeatureMap) -> np.ndarray:
        """Every block's pixel rows as stored: (H, W, blocks, bytes of the widest block row), int8, 0 beyond."""
        width = max(fmap.row_bytes(block) for block in range(fmap.channel_blocks))
        values = np.zeros((fmap.height * fmap.width, fmap.channel_blocks, width), dtype=np.int64)
        for block in range(fmap.channel_blocks):
            size = fmap.row_bytes(block)
            for index in range(fmap.height * fmap.width):
                raw = self.read(fmap.pixel_address(block, 0, 0) + index * fmap.row_stride, size)
                values[index, block, :size] = np.frombuffer(raw, dtype=np.int8)
        return values.reshape(fmap.height, fmap.width, fmap.channel_blocks, width)

    def place_program(self, name: str, program: list[Instruction]) -> Region:
        region = self.allocate_rows(name, len(program), INSTRUCTION_BYTES)
        for index, instruction in enumerate(program):
            self.write(region.address + index * INSTRUCTION_BYTES,
                       encode(instruction).to_bytes(INSTRUCTION_BYTES, "little"))
        return region

    def write(self, address: int, payload: bytes) -> None:
        if address < 0 or address + len(payload) > len(self.data):
            raise ValueError(f"Write of {len(payload)} bytes at {address:#x} is outside the "
                             f"{len(self.data)}-byte image")
        self.data[address:address + len(payload)] = payload

    def read(self, address: int, size: int) -> bytes:
        if address < 0 or address + size > len(self.data):
            raise ValueError(f"Read of {size} bytes at {address:#x} is outside the {len(self.data)}-byte image")
        return bytes(self.data[address:address + size])

    def read_rows(self, region: Region, lanes: int, dtype: str = "<i1") -> np.ndarray:
        """The first ``lanes`` lanes of every row of ``region``."""
        width = np.dtype(dtype).itemsize * lanes
        return np.stack([np.frombuffer(self.read(region.address + i * region.row_stride, width), dtype=dtype)
                         for i in range(region.rows)]).astype(np.int64)
