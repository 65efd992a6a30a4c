"""Program-building helpers shared by the compiler and tests."""
import numpy as np

from hdl.isa import CHANNEL_RECORD_BYTES, Instruction, Opcode, Target

from .memory import MemoryImage, pack_channel_records

__all__ = ["UNIT_NAMES", "IDLE_LOAD", "unit_of", "serialized", "fenced", "load_channel_records", "records_row"]

UNIT_NAMES = ("load", "compute", "store")      # the token chain, in order
IDLE_LOAD = {"target": 0, "rows": 0}            # LOAD fields that move nothing: such a LOAD only passes tokens
_UNIT = {Opcode.LOAD: 0, Opcode.COMPUTE: 1, Opcode.SYNC: 1, Opcode.CONFIG: 2, Opcode.STORE: 2}


def unit_of(opcode: Opcode) -> int:
    """0 load, 1 compute, 2 store: the position of the unit in the token chain."""
    return _UNIT[opcode]


def _with(instruction: Instruction, **flags) -> Instruction:
    return Instruction(instruction.opcode, instruction.fields,
                       **{name: getattr(instruction, name) or flags.get(name, False)
                          for name in ("pop_prev", "pop_next", "push_prev", "push_next")})


def serialized(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions with tokens (and SYNCs where needed) so each starts after the previous one ends.

    Useful where overlap does not matter (tests, one-off transfers); compiled
    layers use finer-grained tokens to overlap the units.
    """
    program: list[Instruction] = []
    for instruction in instructions:
        if not program or instruction.opcode == Opcode.END:     # END waits for every unit anyway
            program.append(instruction)
            continue
        here, there = unit_of(program[-1].opcode), unit_of(instruction.opcode)
        # Walk from the previous unit to this one through the chain, one token per hop.
        while here != there:
            step = 1 if there > here else -1
            program[-1] = _with(program[-1], **{"push_next" if step > 0 else "push_prev": True})
            here += step
            if here != there:      # pass through the compute unit
                program.append(Instruction(Opcode.SYNC, {}, **{"pop_prev" if step > 0 else "pop_next": True}))
            else:
                instruction = _with(instruction, **{"pop_prev" if step > 0 else "pop_next": True})
        program.append(instruction)
    return program


def _count(program: list[Instruction], opcodes: tuple[Opcode, ...], flag: str) -> int:
    return sum(1 for instruction in program if instruction.opcode in opcodes and getattr(instruction, flag))


def fenced(program: list[Instruction]) -> list[Instruction]:
    """``program`` followed by instructions that make everything after them wait for all of it.

    The last STORE is made to report to the compute unit; the added
    instructions take every token ``program`` left in the store->compute and
    compute->load queues (so later pops cannot take stale ones), then pass one
    token to the load unit: instructions appended after them start from empty
    queues, behind every write of ``program``.
    """
    program = list(program)
    last_store = max((i for i, instruction in enumerate(program) if instruction.opcode == Opcode.STORE), default=None)
    if last_store is not None:
        program[last_store] = _with(program[last_store], push_prev=True)
    compute = (Opcode.COMPUTE, Opcode.SYNC)
    stores_left = _count(program, (Opcode.STORE, Opcode.CONFIG), "push_prev") - _count(program, compute, "pop_next")
    loads_left = _count(program, compute, "push_prev") - _count(program, (Opcode.LOAD,), "pop_next")
    return (program + [Instruction(Opcode.SYNC, {}, pop_next=True) for _ in range(stores_left)]
            + [Instruction(Opcode.SYNC, {}, push_prev=True)]
            + [Instruction(Opcode.LOAD, IDLE_LOAD, pop_next=True) for _ in range(loads_left + 1)])


def load_channel_records(image: MemoryImage, name: str, lanes: int, bias, multiplier, shift, flip=None) -> Instruction:
    """Place per-channel records (``flip`` default 0) in rows of ``lanes`` channels, the last row padded
    with zero records, and return the LOAD that puts them in channel rows 0, 1, ..."""
    channels = len(bias)
    rows = -(-channels // lanes)
    records = np.zeros((rows * lanes, CHANNEL_RECORD_BYTES), dtype=np.uint8)
    records[:channels] = pack_channel_records(bias, multiplier, shift, np.zeros(channels) if flip is None else flip)
    region = image.place_rows(name, records.reshape(rows, -1), dtype="u1")
    return Instruction(Opcode.LOAD, {"target": Target.CHANNELS, "dram_addr": region.address, "row_elems": lanes,
                                     "rows": rows, "row_stride": region.row_stride})


def records_row(records: Instruction, row: int) -> dict:
    """The fields of a LOAD of channel row ``row`` alone, out of ``records`` (``load_channel_records``)."""
    f = records.fields
    return {**f, "dram_addr": f["dram_addr"] + row * f["row_stride"], "sram_addr": row, "rows": 1}
