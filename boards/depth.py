"""Logic depth between registers in a synthesized ECP5 netlist: the paths that will limit the clock.

Place and route of a small SoC takes 5 to 15 minutes and reports one critical path. The paths
that limit the clock are already in Yosys' netlist as chains of logic between registers: on the
ECP5 each level is a LUT4 (0.24 ns) and a routed net (1.5 ns on average on the 4x4 SoC's
critical paths, 2026-12-07), so 100 MHz leaves room for about five levels. For every register,
block RAM and DSP input this finds the deepest chain ending there, counting as one level:

* a LUT4, and the PFUMX/L6MUX21 that join LUT4s into a wider LUT only through its select;
* entering a carry chain (its ripple from CIN to COUT runs on dedicated wires);
* a LUT RAM (TRELLIS_DPR16X4) read;

and, as the levels of the same delay: ``BLOCK_RAM_LEVELS`` for a block RAM's output without its
output register (DP16KD clock-to-out 5.83 ns in nextpnr), ``MULTIPLIER_LEVELS`` for a multiplier
without registers.
"""
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Depth", "DeepPath", "logic_depth", "register_name", "BLOCK_RAM_LEVELS", "MULTIPLIER_LEVELS"]

BLOCK_RAM_LEVELS = 3
MULTIPLIER_LEVELS = 2

# Per cell type: output port -> the inputs it depends on combinationally, and the levels each adds.
_LUT_INPUTS = {port: 1 for port in "ABCD"}
_CARRY_INPUTS = {f"{pin}{bit}": 1 for pin in "ABCD" for bit in "01"}
_COMBINATIONAL = {
    "LUT4": lambda port, cell: _LUT_INPUTS,
    "PFUMX": lambda port, cell: {"ALUT": 0, "BLUT": 0, "C0": 1},
    "L6MUX21": lambda port, cell: {"D0": 0, "D1": 0, "SD": 1},
    "CCU2C": lambda port, cell: {"CIN": 0, **_CARRY_INPUTS},
    "TRELLIS_DPR16X4": lambda port, cell: {f"RAD{bit}": 1 for bit in range(4)} if port.startswith("DO") else None,
    "MULT18X18D": lambda port, cell: None if _registered_multiplier(cell) else
        {name: MULTIPLIER_LEVELS for name in cell["port_directions"] if re.fullmatch(r"[AB]\d+", name)},
}
# Per cell type: whether an input is clocked into the cell, ending a path (not a clock, nor an input that
# reaches an output combinationally: a LUT RAM's read address, an unregistered multiplier's operands).
_ENDS_PATH = {
    "TRELLIS_FF": lambda port, cell: port in ("DI", "CE", "LSR", "M"),
    "TRELLIS_DPR16X4": lambda port, cell: port.startswith(("DI", "WAD", "WRE")),
    "DP16KD": lambda port, cell: not port.startswith("CLK"),
    "MULT18X18D": lambda port, cell: _registered_multiplier(cell) and not port.startswith("CLK"),
}
# A mapped cell's name is the register or net Yosys derived it from, plus a suffix of mapped cell types.
_MAPPED_SUFFIX = re.compile(r"(_(TRELLIS|LUT4|CCU2C|PFUMX|L6MUX21|DP16KD|MULT18X18D|SB_|DO[AB]?\d)\w*|\$\d+\w*|(\.\d+)+)$")


def _registered_multiplier(cell: dict) -> bool:
    return any(value != "NONE" for name, value in cell["parameters"].items() if name.startswith("REG_"))


def _start_levels(cell: dict) -> int:
    if cell["type"] == "DP16KD":
        return BLOCK_RAM_LEVELS if cell["parameters"].get("REGMODE_B", "NOREG") == "NOREG" else 0
    if cell["type"] == "MULT18X18D" and cell["parameters"].get("REG_OUTPUT_CLK", "NONE") == "NONE":
        return MULTIPLIER_LEVELS
    return 0


def register_name(cell_name: str) -> str:
    """The register (or memory) a mapped or placed cell was made from."""
    return _MAPPED_SUFFIX.sub("", cell_name.removeprefix("\\").removeprefix("design."))


@dataclass(frozen=True)
class DeepPath:
    levels: int
    start: str              # the register (or memory) the path starts from
    end: str                # the register (or memory) it ends at
    endpoints: int          # inputs of ``end`` (bits, enables) that deep from ``start``
    sources: tuple          # project source lines of the nets on the deepest one, in path order


class _Netlist:
    def __init__(self, netlist: dict):
        tops = [module for module in netlist["modules"].values() if module.get("attributes", {}).get("top")]
        if len(tops) != 1:
            raise ValueError(f"A netlist must have one top module, not {len(tops)}")
        self.cells = tops[0]["cells"]
        self.driver = {}
        for name, cell in self.cells.items():
            for port, bits in cell["connections"].items():
                if cell["port_directions"].get(port) == "output":
                    self.driver.update((bit, (name, port)) for bit in bits if isinstance(bit, int))
        self.sources = {}
        for netname in tops[0]["netnames"].values():
            source = netname.get("attributes", {}).get("src", "")
            for bit in netname["bits"]:
                if isinstance(bit, int) and source:
                    self.sources.setdefault(bit, source)
        self.arrival = {}       # bit -> (levels, the deepest input bit or None, the cell that drives it)

    def settle(self, bit):
        """Levels of logic before ``bit``, computed without recursion (carry chains run hundreds of cells)."""
        stack = [bit]
        while stack:
            current = stack[-1]
            if current in self.arrival:
                stack.pop()
                continue
            name, port = self.driver[current]
            cell = self.cells[name]
            combinational = _COMBINATIONAL.get(cell["type"], lambda port, cell: None)(port, cell)
            if combinational is None:
                self.arrival[current] = (_start_levels(cell), None, name)
                stack.pop()
                continue
            inputs = [(input_bit, levels) for input_port, levels in combinational.items()
                      for input_bit in cell["connections"].get(input_port, [])
                      if isinstance(input_bit, int) and input_bit in self.driver]
            waiting = [input_bit for input_bit, _ in inputs if input_bit not in self.arrival]
            if waiting:
                stack.extend(waiting)
                continue
            best = (0, None, name)
            for input_bit, levels in inputs:
                if self.arrival[input_bit][0] + levels > best[0]:
                    best = (self.arrival[input_bit][0] + levels, input_bit, name)
            self.arrival[current] = best
            stack.pop()
        return self.arrival[bit]

    def endpoints(self):
        for name, cell in self.cells.items():
            ends_path = _ENDS_PATH.get(cell["type"], lambda port, cell: False)
            for port, bits in cell["connections"].items():
                if cell["port_directions"].get(port) != "input" or not ends_path(port, cell):
                    continue
                for bit in bits:
                    if isinstance(bit, int) and bit in self.driver:
                        yield name, bit

    def path(self, bit):
        bits = []
        while bit is not None:
            bits.append(bit)
            bit = self.arrival[bit][1]
        return bits[::-1]


def _project_sources(sources: list[str], project_root: Path) -> tuple:
    lines = []
    for source in sources:
        for location in source.split("|"):
            file, _, line = location.partition(":")
            if file.startswith(str(project_root)) and "site-packages" not in file:
                entry = f"{Path(file).relative_to(project_root)}:{line.split('.')[0]}"
                if entry not in lines:
                    lines.append(entry)
    return tuple(lines)


@dataclass(frozen=True)
class Depth:
    paths: list             # the deepest DeepPaths, deepest first
    histogram: dict         # levels -> how many register inputs (bits, enables) end a path that deep


def logic_depth(netlist, count: int = 5, project_root: Path = Path(__file__).resolve().parent.parent) -> Depth:
    """The ``count`` deepest register-to-register paths of a Yosys ECP5 JSON netlist (a file or the parsed
    JSON), one per pair of start and end registers, and the depth of every register input."""
    design = _Netlist(json.loads(Path(netlist).read_text()) if isinstance(netlist, (str, Path)) else netlist)
    pairs = {}
    histogram = Counter()
    for name, bit in design.endpoints():
        levels = design.settle(bit)[0]
        histogram[levels] += 1
        path = design.path(bit)
        key = (register_name(design.arrival[path[0]][2]), register_name(name))
        deepest, endpoints, deepest_path = pairs.get(key, (-1, 0, None))
        pairs[key] = (levels, endpoints + 1, path) if levels > deepest else (deepest, endpoints + 1, deepest_path)
    ranked = sorted(pairs.items(), key=lambda item: (-item[1][0], item[0]))[:count]
    paths = [DeepPath(levels, start, end, endpoints,
                      _project_sources([design.sources.get(bit, "") for bit in path], project_root))
             for (start, end), (levels, endpoints, path) in ranked]
    return Depth(paths, dict(sorted(histogram.items())))
