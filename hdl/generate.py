"""Verilog generation for a configuration (what ``tools/gen.py`` writes)."""
from amaranth.back import verilog

from .config import ArrayConfig
from .systolic_array import SystolicArray

__all__ = ["generate_verilog"]


def generate_verilog(config: ArrayConfig) -> str:
    """Synthesizable Verilog of the array core; the top module is ``config.name``."""
    return verilog.convert(SystolicArray(config), name=config.name, emit_src=False)
