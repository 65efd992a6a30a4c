"""The accelerator's instruction set, defined once.

Every instruction is ``INSTRUCTION_BITS`` wide: a header (opcode and four
dependency-token flags) and opcode-specific fields. The same layouts decode
instructions in hardware (``Signal(INSTRUCTION)``), encode them in the program
builder (``encode``) and drive the Python ISA simulator (``decode``).

Three units execute instructions concurrently, each from its own queue, as in
TVM-VTA: *load* (LOAD), *compute* (COMPUTE, SYNC) and *store* (CONFIG, STORE).
Ordering between units is by tokens: ``push_next``/``push_prev`` give a token
to the next/previous unit in the chain load -> compute -> store, and
``pop_next``/``pop_prev`` wait for (and take) one before the instruction runs.
END stops fetching; the run is done when every unit has drained.

Memories (rows, see ``AcceleratorConfig``): activation scratchpad (R int8),
weight scratchpad (C int8), accumulator (C int32), channel parameters (C
records of ``CHANNEL_RECORD_BYTES``: the requantization of C output channels).
All DRAM row addresses are multiples of the bus width in bytes.
"""
from dataclasses import dataclass
from typing import NamedTuple

from amaranth.hdl import Shape, signed
from amaranth.lib import data, enum

from .numerics import SCALE_BITS, ArithMode, Combine
from .postprocess import channel_params_layout, output_params_layout
from .config import MAX_MEMORY_ROWS
from .walker import DESCRIPTOR_FIELDS, PADDING_FIELDS, SPAN_BITS

__all__ = ["Opcode", "Target", "INSTRUCTION_BITS", "INSTRUCTION", "HEADER", "LOAD", "STORE",
           "COMPUTE", "CONFIG", "Instruction", "encode", "decode", "CHANNEL_RECORD_BYTES", "CHANNEL_RECORD_FIELDS",
           "CHANNEL_RECORD_KEPT_BYTES", "CHANNEL_RECORD_KEPT_FIELDS",
           "target_element_bytes", "FIELD_DEFAULTS", "STORE_BYTE_OFFSET_BITS", "MAX_COMPUTE_BEATS",
           "MAX_COMPUTE_REPEAT", "MAX_SRAM_GAP", "PAIRED_SECONDARY_OFFSET"]

INSTRUCTION_BITS = 256
CHANNEL_RECORD_BYTES = 16     # a channel record in DRAM: CHANNEL_RECORD_FIELDS, then zero padding
# Byte offset and size of each channel parameter (``postprocess.channel_params_layout``) in a record in DRAM:
# bias int32, multiplier int32, shift int8, flip uint8.
CHANNEL_RECORD_FIELDS = {"bias": (0, 4), "multiplier": (4, 4), "shift": (8, 1), "flip": (9, 1)}


def _kept_record_bytes():
    """The record bytes the channel memory keeps (those holding the bits of ``channel_params_layout``'s
    fields, which keeps the multiplier's low 16 and the shift's low 6), and each field's bit offset in the
    kept bytes and its shape there."""
    layout = channel_params_layout()
    kept, fields = [], {}
    for name, (offset, size) in CHANNEL_RECORD_FIELDS.items():
        shape = Shape.cast(layout.members[name])
        assert shape.width <= size * 8, name
        fields[name] = (len(kept) * 8, shape)
        kept.extend(range(offset, offset + -(-shape.width // 8)))
    return tuple(kept), fields


# The channel memory holds only these bytes of each record, in this order (8 of 16: the padding and the
# multiplier's high bytes take no block RAM), and CHANNEL_RECORD_KEPT_FIELDS gives each field's bit offset and
# shape in them: the store unit and the ISA simulator (``quant.memory.unpack_channel_records``) read them so.
CHANNEL_RECORD_KEPT_BYTES, CHANNEL_RECORD_KEPT_FIELDS = _kept_record_bytes()


class Opcode(enum.Enum, shape=3):
    LOAD = 0
    STORE = 1
    COMPUTE = 2
    CONFIG = 3
    SYNC = 4
    END = 5


class Target(enum.Enum, shape=3):
    """Where a LOAD writes. COMBINE: int8 rows combined into the accumulator (``numerics.Combine``)."""
    ACTIVATIONS = 0
    WEIGHTS = 1
    ACCUMULATORS = 2
    CHANNELS = 3
    COMBINE = 4


def target_element_bytes(target: Target) -> int:
    """Bytes per lane of a target's rows in DRAM."""
    return {Target.ACTIVATIONS: 1, Target.WEIGHTS: 1, Target.ACCUMULATORS: 4,
            Target.CHANNELS: CHANNEL_RECORD_BYTES, Target.COMBINE: 1}[Target(target)]


HEADER = data.StructLayout({
    "opcode": Opcode, "pop_prev": 1, "pop_next": 1, "push_prev": 1, "push_next": 1,
})

# A LOAD writes the groups x blocks x rows SRAM rows of its descriptor (``hdl.walker``:
# strides, and padding rows and blocks for convolution borders) from sram_addr on, skipping
# sram_gap rows after each group (``walker.sram_rows``: so that loads of a few rows of several
# channel blocks each can interleave their rows with other loads' in SRAM). A data
# row's first row_elems lanes come from DRAM, the rest are pad_value; padding rows are all
# pad_value, and so is every row when row_elems is 0 (a DRAM-free fill). COMBINE rows (C
# int8 lanes) go into the accumulator by ``numerics.combine_rows`` with ``combine`` and a
# scale: ``scale`` for every lane, or with lane_scales the int8 lanes of weight scratchpad
# row scale_row (per-channel weights: the depthwise path).
LOAD = data.StructLayout({
    "target": Target, "sram_addr": 16, **DESCRIPTOR_FIELDS, "row_elems": 7, **PADDING_FIELDS,
    "pad_value": signed(8), "combine": Combine, "scale": signed(SCALE_BITS), "lane_scales": 1, "scale_row": 16,
    "sram_gap": 7,
})

# A STORE post-processes the groups x blocks x rows accumulator rows from acc_addr on,
# with the C channel records of channel row channel_row, keeping the first `channels`
# channels (1 to C), and writes numerics.stored_bytes(channels, mode) bytes of each row to its
# descriptor address (``hdl.walker``, no padding) plus byte_offset: the row addresses stay
# bus aligned, and the bytes land byte_offset bytes into the row (byte strobes), so several
# stores can fill one row (C binary channels are C / 8 bytes of a packed row).
MAX_SRAM_GAP = (1 << Shape.cast(LOAD.members["sram_gap"]).width) - 1
assert MAX_MEMORY_ROWS + MAX_SRAM_GAP < 1 << SPAN_BITS, "the units' span checks would miss spans past a memory"
STORE_BYTE_OFFSET_BITS = 6
STORE = data.StructLayout({"acc_addr": 16, "channel_row": 12, **DESCRIPTOR_FIELDS, "channels": 7,
                           "byte_offset": STORE_BYTE_OFFSET_BITS})

# Beat n reads activation row act_addr + (n << act_stride_log2); below, act[act_addr + n] stands for it.
# OS: acc[acc_addr + i][j] (+)= sum_k A[i][k] * weight[weight_addr + k][j], i < R, j < C, k < beats,
#     where A[i][b * R + t] = act[act_addr + b * R + i][t]: the activation rows are NHWC
#     (a pixel's R channels), in blocks of R pixels per R reduction steps; beats is a
#     multiple of R.
# WS: the stationary weights become weight[weight_addr + r], r < R (preloaded while
#     the previous COMPUTE finishes); then
#     acc[acc_addr + m][j] (+)= sum_r act[act_addr + m][r] * stationary[r][j], m < beats.
# Depthwise (arrays generated with ``ArrayConfig.depthwise``): each column j correlates its own
#     channel, activation lane j (0 for j >= R), with its weight lane (``numerics.golden_depthwise``):
# WS: with the stationary column, beats - R + 1 result rows, beats >= R (taps is not used):
#     acc[acc_addr + m][j] (+)= sum_r act[act_addr + m + r][j] * stationary[r][j], m <= beats - R.
# OS: with the first `taps` of the streamed weight rows (1 <= taps <= R; int8 only; beats is a
#     multiple of R; the rows from weight_addr + taps on are read but multiply as 0), each
#     array row one output pixel, R - taps + 1 result rows:
#     acc[acc_addr + i][j] (+)= sum_t act[act_addr + i + t][j] * weight[weight_addr + t][j], t < taps, i <= R - taps.
# Paired (arrays generated with paired COMPUTEs; int8 depthwise, act_stride_log2 1): each beat also reads
#     a secondary row, PAIRED_SECONDARY_OFFSET rows after its own, which tap 0 multiplies instead
#     (``numerics.golden_paired_depthwise``), so a stride-2 window's even and odd columns meet in one
#     COMPUTE: with primary[n] = act[act_addr + 2n] and secondary[n] = act[act_addr + 3 + 2n],
#     OS: acc[acc_addr + i][j] (+)= secondary[i][j] * weight[weight_addr][j]
#                                   + sum_{1 <= t < taps} primary[i + t][j] * weight[weight_addr + t][j];
#     WS: likewise with the R stationary rows as the taps, i <= beats - R.
#     For a 3-wide window whose output i reads x[2i], x[2i + 1], x[2i + 2] (x[n]: act row b + n):
#     act_addr = b - 2 and the weight rows are the window's taps 1, 0, 2 (secondary[i] = x[2i + 1],
#     primary[i + 1] = x[2i], primary[i + 2] = x[2i + 2]). OS row i reads secondary[i] at its own first
#     beat (WS row 0 at every beat), so the array needs one more operand select per PE, not a second multiplier.
# Repeat (OS depthwise only): the COMPUTE runs 1 + repeat times, run n with act_addr + (n * K <<
#     act_stride_log2) and acc_addr + n * K, K = R - taps + 1 (one run's result rows): a chain of
#     runs along a row of outputs in one instruction. Its checks span every run: it runs whole or not at all.
COMPUTE = data.StructLayout({
    "act_addr": 16, "weight_addr": 16, "acc_addr": 16, "beats": 12, "accumulate": 1,
    "mode": ArithMode, "depthwise": 1, "act_stride_log2": 2, "taps": 7, "paired": 1, "repeat": 8,
})
PAIRED_SECONDARY_OFFSET = 3
MAX_COMPUTE_BEATS = (1 << Shape.cast(COMPUTE.members["beats"]).width) - 1
MAX_COMPUTE_REPEAT = (1 << Shape.cast(COMPUTE.members["repeat"]).width) - 1


def os_depthwise_results(rows, taps):
    """An OS depthwise COMPUTE's result rows on an R-row array (R - taps + 1): ints or Amaranth values."""
    return rows + 1 - taps

CONFIG = output_params_layout()

INSTRUCTION = data.StructLayout({
    "header": HEADER,
    "fields": data.UnionLayout({"load": LOAD, "store": STORE, "compute": COMPUTE, "config": CONFIG}),
    "reserved": INSTRUCTION_BITS - HEADER.size - max(LOAD.size, STORE.size, COMPUTE.size, CONFIG.size),
})

# Fields an instruction leaves out take these values (every other field: 0).
FIELD_DEFAULTS = {Opcode.LOAD: {"blocks": 1, "groups": 1}, Opcode.STORE: {"blocks": 1, "groups": 1}}

_FIELDS = {Opcode.LOAD: ("load", LOAD), Opcode.STORE: ("store", STORE),
           Opcode.COMPUTE: ("compute", COMPUTE), Opcode.CONFIG: ("config", CONFIG)}
_DEPENDENCIES = ("pop_prev", "pop_next", "push_prev", "push_next")


@dataclass(frozen=True)
class Instruction:
    """One decoded instruction: opcode, dependency flags and its fields as a dict."""
    opcode: Opcode
    fields: dict
    pop_prev: bool = False
    pop_next: bool = False
    push_prev: bool = False
    push_next: bool = False

    def __str__(self):
        flags = [name for name in _DEPENDENCIES if getattr(self, name)]
        body = ", ".join(f"{key}={value.name if hasattr(value, 'name') else value}"
                         for key, value in self.fields.items())
        return f"{self.opcode.name}({body})" + (f" [{' '.join(flags)}]" if flags else "")


class _Slot(NamedTuple):
    """Where a leaf field sits in the instruction word, taken from the layouts (Python packing is
    faster than ``Layout.const`` by orders of magnitude, and compilers encode many instructions)."""
    name: str
    offset: int
    width: int
    signed: bool
    enum: type | None
    low: int
    high: int


def _slots(layout: data.StructLayout, base: int) -> list[_Slot]:
    slots = []
    for name, field in layout:
        shape = field.shape
        is_enum = isinstance(shape, type) and issubclass(shape, enum.Enum)
        cast = Shape.cast(shape.as_shape() if is_enum else shape)
        low = -(1 << (cast.width - 1)) if cast.signed else 0
        slots.append(_Slot(name, base + field.offset, cast.width, cast.signed, shape if is_enum else None,
                           low, low + (1 << cast.width) - 1))
    return slots


_HEADER_SLOTS = _slots(HEADER, INSTRUCTION["header"].offset)
_FIELD_SLOTS = {opcode: _slots(layout, INSTRUCTION["fields"].offset + INSTRUCTION["fields"].shape[name].offset)
                for opcode, (name, layout) in _FIELDS.items()}
_FIELD_NAMES = {opcode: frozenset(layout.members) for opcode, (_, layout) in _FIELDS.items()}
_ENUM_VALUES = {shape: frozenset(member.value for member in shape)
                for slots in (_HEADER_SLOTS, *_FIELD_SLOTS.values()) for shape in (s.enum for s in slots) if shape}


def _pack(slots: list[_Slot], values: dict, opcode: Opcode) -> int:
    bits = 0
    for slot in slots:
        value = values.get(slot.name, 0)
        if slot.enum is not None:
            value = value.value if isinstance(value, enum.Enum) else value
            if value not in _ENUM_VALUES[slot.enum]:
                raise ValueError(f"{opcode.name} field {slot.name} must be one of "
                                 f"{', '.join(f'{m.value} ({m.name})' for m in slot.enum)}, not {value!r}")
        elif not slot.low <= value <= slot.high:
            raise ValueError(f"{opcode.name} field {slot.name} must be from {slot.low} to {slot.high}, not {value}")
        bits |= (int(value) & ((1 << slot.width) - 1)) << slot.offset
    return bits


def _unpack(slots: list[_Slot], bits: int, opcode: Opcode) -> dict:
    values = {}
    for slot in slots:
        value = (bits >> slot.offset) & ((1 << slot.width) - 1)
        if slot.signed and value >> (slot.width - 1):
            value -= 1 << slot.width
        if slot.enum is not None:
            try:
                value = slot.enum(value)
            except ValueError:      # a value the enum does not define
                raise ValueError(f"{opcode.name} field {slot.name} holds an undefined value; allowed: "
                                 f"{', '.join(f'{m.value} ({m.name})' for m in slot.enum)}") from None
        values[slot.name] = value
    return values


def encode(instruction: Instruction) -> int:
    """The instruction as an ``INSTRUCTION_BITS``-bit integer (little-endian in DRAM).

    Fields not given take ``FIELD_DEFAULTS`` (or 0).
    """
    opcode = instruction.opcode
    bits = _pack(_HEADER_SLOTS, {"opcode": opcode, **{name: getattr(instruction, name) for name in _DEPENDENCIES}},
                 opcode)
    if opcode in _FIELDS:
        unknown = instruction.fields.keys() - _FIELD_NAMES[opcode]
        if unknown:
            raise ValueError(f"{opcode.name} has no field(s) {', '.join(sorted(unknown))}; "
                             f"allowed: {', '.join(slot.name for slot in _FIELD_SLOTS[opcode])}")
        bits |= _pack(_FIELD_SLOTS[opcode], FIELD_DEFAULTS.get(opcode, {}) | instruction.fields, opcode)
    elif instruction.fields:
        raise ValueError(f"{opcode.name} takes no fields, not {instruction.fields}")
    return bits


def decode(bits: int) -> Instruction:
    """Decode an ``INSTRUCTION_BITS``-bit integer; raises ``ValueError`` on an illegal opcode or field."""
    raw_opcode = bits & ((1 << Opcode.as_shape().width) - 1)
    try:
        opcode = Opcode(raw_opcode)
    except ValueError:
        raise ValueError(f"Illegal opcode {raw_opcode}; allowed: "
                         f"{', '.join(f'{op.value} ({op.name})' for op in Opcode)}") from None
    header = _unpack(_HEADER_SLOTS, bits, opcode)
    fields = _unpack(_FIELD_SLOTS[opcode], bits, opcode) if opcode in _FIELDS else {}
    return Instruction(opcode, fields, **{name: bool(header[name]) for name in _DEPENDENCIES})
