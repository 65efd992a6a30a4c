"""Race check for programs: every pair of instructions of different units that touch the same
memory row, one of them writing it, must be ordered by the dependency tokens.

The ISA simulator runs a program in program order; the hardware runs its three
units concurrently, each in its own order, and only tokens order them. A
program whose tokens leave a conflicting pair unordered may still give the
right DRAM image in the simulator (and on the RTL, with lucky timing): this
check, fed by the simulator as it executes, refuses it.

Ordering is tracked with one vector clock per instruction: for each unit, the
position (in that unit's own instruction order) of its latest instruction known
to have finished before this one starts. A unit starts its instructions in
order and finishes them in order (the load unit runs one at a time), and a pop
of the k-th token of a queue happens after the instruction that pushed it has
finished. Within one unit the hardware keeps its own order, so only pairs of
different units are checked.
"""
from collections import deque

import numpy as np

UNITS = 3
DRAM_WORD = 8       # bytes: the narrowest bus row; stores of one row's parts are all the store unit's


class RaceError(ValueError):
    """Two instructions of different units touch the same row, one writing it, without a token between them."""


class _Space:
    """Per row: the last writer (unit, position) and each unit's last reader since."""

    def __init__(self, rows: int):
        self.writer_unit = np.full(rows, -1, dtype=np.int64)
        self.writer_position = np.full(rows, -1, dtype=np.int64)
        self.reader_position = np.full((UNITS, rows), -1, dtype=np.int64)


class RaceChecker:
    def __init__(self, spaces: dict[str, int], dram_bytes: int):
        self.spaces = {name: _Space(rows) for name, rows in spaces.items()}
        self.dram_written = [-1] * (dram_bytes // DRAM_WORD + 1)    # store-unit position of the last write
        self.dram_read = [-1] * (dram_bytes // DRAM_WORD + 1)       # load-unit position of the last read
        self.queues: dict[str, deque] = {}
        self.positions = [-1] * UNITS
        self.last_clock = [[-1] * UNITS for _ in range(UNITS)]     # clock of each unit's latest instruction
        self.unit = 0
        self.clock = [-1] * UNITS
        self.where = ""

    def issue(self, unit: int, popped: list[str], where: str) -> None:
        """An instruction of ``unit`` starts, after taking a token from each queue in ``popped``."""
        self.unit, self.where = unit, where
        self.positions[unit] += 1
        clock = list(self.last_clock[unit])
        if unit == 0:                # the load unit finishes each instruction before the next
            clock[0] = self.positions[0] - 1
        for queue in popped:
            clock = [max(a, b) for a, b in zip(clock, self.queues[queue].popleft())]
        self.clock = clock
        self.last_clock[unit] = clock

    def retire(self, pushed: list[str]) -> None:
        """The instruction finishes, giving a token to each queue in ``pushed``."""
        finished = list(self.clock)
        finished[self.unit] = self.positions[self.unit]
        for queue in pushed:
            self.queues.setdefault(queue, deque()).append(finished)

    def touch(self, space: str, rows, write: bool) -> None:
        """The instruction reads or writes ``rows`` (a slice or index array) of SRAM ``space``."""
        s, unit, clock = self.spaces[space], self.unit, np.array(self.clock)
        writers, positions = s.writer_unit[rows], s.writer_position[rows]
        other = (writers >= 0) & (writers != unit)
        if other.any() and (positions[other] > clock[writers[other]]).any():
            bad = np.flatnonzero(other & (positions > clock[np.maximum(writers, 0)]))[0]
            self._refuse(space, rows, bad, "written", int(writers[bad]), int(positions[bad]))
        if write:
            for reader in range(UNITS):
                if reader != unit:
                    late = s.reader_position[reader][rows] > clock[reader]
                    if late.any():
                        bad = np.flatnonzero(late)[0]
                        self._refuse(space, rows, bad, "read", reader, int(s.reader_position[reader][rows][bad]))
            s.writer_unit[rows], s.writer_position[rows] = unit, self.positions[unit]
            s.reader_position[:, rows] = -1
        else:
            s.reader_position[unit][rows] = self.positions[unit]

    def dram(self, address: int, size: int, write: bool) -> None:
        """A LOAD reads, or a STORE writes, DRAM bytes ``address`` .. ``address + size - 1``."""
        # A store's write must follow the load unit's last read of a word; a load's read, the last write.
        other, mine, other_unit, unit = (self.dram_read, self.dram_written, 0, 2) if write else \
            (self.dram_written, self.dram_read, 2, 0)
        done, position = self.clock[other_unit], self.positions[unit]
        # Words beyond DRAM are skipped here: the simulator refuses that access with its own bounds error.
        last = min((address + size - 1) // DRAM_WORD, len(other) - 1)
        for word in range(address // DRAM_WORD, last + 1):
            if other[word] > done:
                raise RaceError(f"{self.where}: {('reads', 'writes')[write]} DRAM {word * DRAM_WORD:#x} that "
                                f"{('store', 'load')[write]} instruction #{other[word]} {('writes', 'reads')[write]}, "
                                f"with no token between them")
            mine[word] = position

    def _refuse(self, space: str, rows, index: int, how: str, unit: int, position: int):
        from .program import UNIT_NAMES
        row = np.arange(len(self.spaces[space].writer_unit))[rows][index]
        raise RaceError(f"{self.where}: {space} row {row} was {how} by {UNIT_NAMES[unit]} instruction #{position} "
                        f"(that unit's count), and no token orders the two")
