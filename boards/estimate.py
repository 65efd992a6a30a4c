"""What a design needs of an FPGA, estimated from its RTLIL in seconds, before synthesis.

Synthesis and place and route of a large array take tens of minutes; a design
that cannot fit should fail at once with the estimate. The estimate reads the
``$mul`` and ``$mem_v2`` cells Amaranth emits:

* multipliers: each non-constant product takes ceil(A/w) * ceil(B/w) DSP
  blocks of w x w bits (ECP5 MULT18X18D: 18, iCE40 SB_MAC16: 16), as Yosys'
  ``mul2dsp`` splits it; products by constants become shifts and adds. An
  instantiated DSP block (``hdl.config.DspPrimitive``) is one multiplier.
* block RAMs: each memory of at least ``_MIN_BLOCK_RAM_BITS`` (a ``$mem_v2``
  cell, or a ``memory`` with ``$memrd_v2``/``$memwr_v2`` port cells) takes the
  cheapest (depth, width) tiling of one block RAM, once per read port (one
  write and one read port per block), times its write ports. A memory written
  in bytes (write-enable granularity a multiple of 8) has a 9-bit slot per byte
  in the 9-, 18- and 36-bit configurations of an ECP5 DP16KD, as Yosys maps it,
  so a 36-bit block holds 32 bits of it.
"""
import math
import re
from dataclasses import dataclass

from . import rtlil
from .board import Board

__all__ = ["Needs", "DeclaredMemory", "estimate_needs", "block_ram_fifos", "fit_problems", "synthesis_overruns"]

# Memories smaller than this stay in LUT RAM or flip-flops (Yosys' memory_libmap picks them so).
_MIN_BLOCK_RAM_BITS = 2048

_DSP_WIDTH = {"ecp5": 18, "ice40": 16}

_CONST = re.compile(r"^\d+'[01xz-]+$")
_SIGNAL_BITS = re.compile(r"(\\\S+)(?: \[(\d+)(?::(\d+))?\])?")


@dataclass(frozen=True)
class Needs:
    """Estimated DSP blocks and block RAMs of a design on one board's family."""
    dsps: int
    block_rams: int
    multipliers: int            # non-constant products
    memory_bits: int            # bits in memories large enough for block RAM


# Block-RAM data widths made of 9-bit bytes, each with its own write enable (ECP5 DP16KD: 9, 18, 36).
_BYTE_SLOT_BITS = 9


def _blocks(depth: int, width: int, board: Board, write_granularity: int | None = None) -> int:
    """Block RAMs of the cheapest tiling of a depth x width memory written ``write_granularity`` bits at a
    time (None: whole words)."""
    def bits_per_block(block_width):
        if write_granularity and write_granularity < width and write_granularity % 8 == 0 \
                and block_width % _BYTE_SLOT_BITS == 0:
            return block_width // _BYTE_SLOT_BITS * 8
        return block_width
    return min(math.ceil(width / bits_per_block(w)) * math.ceil(depth / d) for d, w in board.block_ram_widths)


def estimate_needs(rtlil_text: str, board: Board) -> Needs:
    """Estimate a design's DSPs and block RAMs on ``board`` from the RTLIL Amaranth emitted."""
    dsp_width = _DSP_WIDTH[board.family]
    dsps = multipliers = block_rams = memory_bits = 0
    for cell in rtlil.cells(rtlil_text):
        p = cell.parameters
        if cell.kind == "$mul":
            operands = dict(re.findall(r"connect \\([AB]) (.*)", cell.connects))
            if any(_CONST.match(operands.get(port, "").strip()) for port in "AB"):
                continue
            multipliers += 1
            dsps += math.ceil(int(p["A_WIDTH"]) / dsp_width) * math.ceil(int(p["B_WIDTH"]) / dsp_width)
        elif cell.kind == "$mem_v2":
            memory_bits, block_rams = _add_memory(memory_bits, block_rams, int(p["SIZE"]), int(p["WIDTH"]),
                                                  int(p["RD_PORTS"]), int(p["WR_PORTS"]), board)
    if board.dsp_primitive is not None:
        instances = len(re.findall(rf"^\s*cell \\{board.dsp_primitive.cell} ", rtlil_text, re.M))
        multipliers += instances
        dsps += instances
    for memory in _declared_memories(rtlil_text):
        memory_bits, block_rams = _add_memory(memory_bits, block_rams, memory.depth, memory.width,
                                              memory.reads, memory.writes, board, memory.write_granularity)
    return Needs(dsps, block_rams, multipliers, memory_bits)


@dataclass(frozen=True)
class DeclaredMemory:
    """A memory as Amaranth declares it: a ``memory`` in a module, with separate port cells."""
    module: str
    name: str
    width: int
    depth: int
    reads: int
    writes: int
    registered_reads: bool      # every read port is clocked (block RAM can only read so)
    write_granularity: int      # bits per write enable (the finest of its write ports)

    def block_rams(self, board: Board) -> int:
        """Block RAMs of ``board`` the memory takes (its cheapest tiling, for one read and one write port)."""
        return _blocks(self.depth, self.width, board, self.write_granularity)

    @property
    def selection(self) -> str:
        """The memory as a Yosys selection (before the design is flattened)."""
        return f"{self.module}/m:{self.name}"


def _write_enables(connects: str) -> int:
    """How many distinct signal bits drive a write port's EN (Amaranth repeats each enable over its granule)."""
    enable = re.search(r"connect \\EN (.*)", connects)
    bits = set()
    for name, high, low in _SIGNAL_BITS.findall(enable.group(1) if enable else ""):
        high = int(high) if high else 0
        bits.update((name, bit) for bit in range(int(low) if low else high, high + 1))
    return max(1, len(bits))


def _declared_memories(rtlil_text: str):
    for module_name, module in rtlil.modules(rtlil_text):
        ports = {}
        for cell in rtlil.cells(module):
            if cell.kind in ("$memrd_v2", "$memwr_v2"):
                reads, writes, registered, granularity = ports.get(cell.memory, (0, 0, True, None))
                if cell.kind == "$memwr_v2":
                    width = int(cell.parameters["WIDTH"])
                    granularity = min(granularity or width, width // _write_enables(cell.connects))
                ports[cell.memory] = (reads + (cell.kind == "$memrd_v2"), writes + (cell.kind == "$memwr_v2"),
                                      registered and (cell.kind == "$memwr_v2"
                                                      or cell.parameters.get("CLK_ENABLE") == "1"), granularity)
        for memory in rtlil.memories(module):
            reads, writes, registered, granularity = ports.get(memory.name, (1, 1, False, None))
            yield DeclaredMemory(module_name, memory.name, memory.width, memory.depth, reads, writes,
                                 registered, granularity or memory.width)


def block_ram_fifos(rtlil_text: str, board: Board, spare_block_rams: int) -> list[DeclaredMemory]:
    """The small memories (FIFOs) to put in ``spare_block_rams`` block RAMs instead of LUT RAM, widest first.

    On ECP5 a memory below ``_MIN_BLOCK_RAM_BITS`` goes to LUT RAM, where each 16 x 4 bits
    (TRELLIS_DPR16X4) takes six LUT sites whatever the depth: the accelerator's FIFOs, 3 to 8
    deep and up to 512 bits wide, then fill 2,586 LUT sites of a 16x16 SoC. Only memories read
    through a register, one read and one write port, fit a block RAM.
    """
    chosen = []
    candidates = [memory for memory in _declared_memories(rtlil_text)
                  if memory.depth * memory.width < _MIN_BLOCK_RAM_BITS and memory.registered_reads
                  and memory.reads == memory.writes == 1]
    for memory in sorted(candidates, key=lambda memory: -memory.width):
        blocks = memory.block_rams(board)
        if blocks <= spare_block_rams:
            chosen.append(memory)
            spare_block_rams -= blocks
    return chosen


def _add_memory(memory_bits: int, block_rams: int, depth: int, width: int, reads: int, writes: int,
                board: Board, write_granularity: int | None = None) -> tuple[int, int]:
    """The totals with one more memory: block RAM tiles once per read port, times its write ports."""
    if depth * width < _MIN_BLOCK_RAM_BITS:
        return memory_bits, block_rams
    blocks = _blocks(depth, width, board, write_granularity)
    return memory_bits + depth * width, block_rams + blocks * max(1, reads) * max(1, writes)


def fit_problems(needs: Needs, board: Board) -> list[str]:
    """Why a design with ``needs`` cannot fit ``board`` (empty when it may)."""
    problems = []
    if needs.dsps > board.resources["DSPs"]:
        problems.append(f"needs about {needs.dsps} DSP blocks ({needs.multipliers} multipliers) but "
                        f"{board.device} has {board.resources['DSPs']}")
    if needs.block_rams > board.resources["block RAMs"]:
        problems.append(f"needs about {needs.block_rams} block RAMs ({needs.memory_bits // 8192} KiB of memories) "
                        f"but {board.device} has {board.resources['block RAMs']}")
    return problems


def synthesis_overruns(counts: dict[str, int], board: Board) -> list[str]:
    """The resources a synthesized design (``synth.synthesize`` counts) exceeds on ``board`` as counted.

    On ECP5 the flow checks the logic again after nextpnr has packed it (``flow.packing_overruns``),
    which can take 10% more LUT sites than Yosys counts."""
    return [f"{resource} {used} > {board.resources[resource]}" for resource, used in counts.items()
            if used > board.resources[resource]]
