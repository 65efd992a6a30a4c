"""The instruction set: one layout, round trips, and clear errors."""
import random

import pytest

from hdl.isa import (
    COMPUTE,
    CONFIG,
    INSTRUCTION,
    INSTRUCTION_BITS,
    LOAD,
    STORE,
    Instruction,
    Opcode,
    Target,
    decode,
    encode,
)
from hdl.numerics import ArithMode, Combine

FIELDS = {
    Opcode.LOAD: {"target": Target.COMBINE, "sram_addr": 65535, "dram_addr": 0xFFFF_FFF0, "row_elems": 64,
                  "rows": 4095, "row_stride": 1 << 23, "blocks": 7, "block_stride": 123456, "groups": 4095,
                  "group_stride": (1 << 24) - 16, "pad_before": 3, "pad_after": 63, "pad_blocks_before": 127,
                  "pad_blocks_after": 1, "pad_value": -128, "combine": Combine.MAX, "scale": -32768,
                  "lane_scales": 1, "scale_row": 511, "sram_gap": 127},
    Opcode.STORE: {"acc_addr": 9, "channel_row": 4095, "dram_addr": 64, "channels": 33, "byte_offset": 37, "rows": 2,
                   "row_stride": 16, "blocks": 1, "block_stride": 0, "groups": 3, "group_stride": 4096},
    Opcode.COMPUTE: {"act_addr": 1, "weight_addr": 2, "acc_addr": 3, "beats": 4095, "accumulate": 1,
                     "mode": ArithMode.BINARY, "depthwise": 1, "act_stride_log2": 3, "taps": 64, "paired": 1,
                     "repeat": 255},
    Opcode.CONFIG: {"mode": ArithMode.INT8, "zero_point": -7, "clamp_min": 0, "clamp_max": 6},
    Opcode.SYNC: {}, Opcode.END: {},
}


def test_layouts_fit_one_instruction():
    assert INSTRUCTION.size == INSTRUCTION_BITS
    assert max(layout.size for layout in (LOAD, STORE, COMPUTE, CONFIG)) + 7 <= INSTRUCTION_BITS


@pytest.mark.parametrize("opcode", list(Opcode), ids=lambda op: op.name)
@pytest.mark.parametrize("flags", [(0, 0, 0, 0), (1, 0, 1, 0), (0, 1, 0, 1), (1, 1, 1, 1)])
def test_every_opcode_round_trips(opcode, flags):
    instruction = Instruction(opcode, FIELDS[opcode], *map(bool, flags))
    bits = encode(instruction)
    assert 0 <= bits < 1 << INSTRUCTION_BITS
    assert decode(bits) == instruction


def test_omitted_fields_take_the_defaults():
    decoded = decode(encode(Instruction(Opcode.LOAD, {"target": Target.WEIGHTS, "rows": 5})))
    assert decoded.fields["blocks"] == decoded.fields["groups"] == 1 and decoded.fields["rows"] == 5
    assert decoded.fields["pad_blocks_before"] == decoded.fields["scale"] == 0


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="Illegal opcode 7; allowed: 0 \\(LOAD\\)"):
        decode(7)
    with pytest.raises(ValueError, match="LOAD field rows must be from 0 to 4095, not 4096"):
        encode(Instruction(Opcode.LOAD, {**FIELDS[Opcode.LOAD], "rows": 4096}))
    with pytest.raises(ValueError, match="CONFIG field zero_point must be from -128 to 127, not 200"):
        encode(Instruction(Opcode.CONFIG, {**FIELDS[Opcode.CONFIG], "zero_point": 200}))
    with pytest.raises(ValueError, match="STORE has no field\\(s\\) bogus"):
        encode(Instruction(Opcode.STORE, {"bogus": 1}))
    with pytest.raises(ValueError, match="END takes no fields"):
        encode(Instruction(Opcode.END, {"rows": 1}))


def test_fast_packing_equals_the_layouts_own_encoding(seed):
    """encode/decode pack fields by hand for speed; Amaranth's Layout.const is the reference."""
    from amaranth.hdl import Shape
    from amaranth.lib import enum

    rng = random.Random(seed)
    layouts = {Opcode.LOAD: ("load", LOAD), Opcode.STORE: ("store", STORE), Opcode.COMPUTE: ("compute", COMPUTE),
               Opcode.CONFIG: ("config", CONFIG)}
    for _ in range(500):
        opcode = rng.choice(list(Opcode))
        fields = {}
        for name, shape in (layouts[opcode][1].members.items() if opcode in layouts else ()):
            if isinstance(shape, type) and issubclass(shape, enum.Enum):
                fields[name] = rng.choice(list(shape))
            else:
                shape = Shape.cast(shape)
                low = -(1 << (shape.width - 1)) if shape.signed else 0
                fields[name] = rng.randint(low, low + (1 << shape.width) - 1)
        flags = [rng.random() < 0.5 for _ in range(4)]
        value = {"header": {"opcode": opcode, **dict(zip(("pop_prev", "pop_next", "push_prev", "push_next"),
                                                          map(int, flags)))}}
        if opcode in layouts:
            value["fields"] = {layouts[opcode][0]: fields}
        reference = INSTRUCTION.const(value).as_bits()
        instruction = Instruction(opcode, fields, *flags)
        assert encode(instruction) == reference
        assert decode(reference) == instruction
