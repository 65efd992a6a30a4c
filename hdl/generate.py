"""Verilog generation for a configuration (what ``tools/gen.py`` writes)."""
from amaranth.back import verilog

from .accelerator import Accelerator
from .config import AcceleratorConfig, ArrayConfig
from .systolic_array import SystolicArray

__all__ = ["generate_verilog", "generate_accelerator_verilog", "accelerator_name"]


def generate_verilog(config: ArrayConfig) -> str:
    """Synthesizable Verilog of the array core alone; the top module is ``config.name``."""
    return verilog.convert(SystolicArray(config), name=config.name, emit_src=False)


def accelerator_name(config: AcceleratorConfig) -> str:
    """Top module name of the accelerator, e.g. ``accel_16x16_os_int8_128b``."""
    return f"accel_{config.array.name.removeprefix('systolic_')}_{config.bus_bits}b"


def generate_accelerator_verilog(config: AcceleratorConfig) -> str:
    """Synthesizable Verilog of the whole accelerator; the top module is ``accelerator_name(config)``."""
    return verilog.convert(Accelerator(config), name=accelerator_name(config), emit_src=False)
