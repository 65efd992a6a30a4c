"""Verilog generation for a configuration (what ``tools/gen.py`` writes)."""
from amaranth.back import verilog
from amaranth.hdl import Const, Value
from amaranth.lib import wiring

from .accelerator import Accelerator
from .config import AcceleratorConfig, ArrayConfig
from .systolic_array import SystolicArray

__all__ = ["generate_verilog", "generate_accelerator_verilog", "accelerator_name", "top_ports"]


def top_ports(component: wiring.Component) -> list:
    """``component``'s signals as the ports of a top module (names ``<stream>__<member>``, as Amaranth gives them).

    Amaranth 0.5 takes only signals as ports, not the constant ``ready`` of an ``always_ready``
    stream (the array's ``results``), so a conversion of such a component names its ports with this.
    """
    values = (Value.cast(value) for _, _, value in component.signature.flatten(component))
    return [value for value in values if not isinstance(value, Const)]


def generate_verilog(config: ArrayConfig) -> str:
    """Synthesizable Verilog of the array core alone; the top module is ``config.name``."""
    array = SystolicArray(config)
    return verilog.convert(array, name=config.name, ports=top_ports(array), emit_src=False)


def accelerator_name(config: AcceleratorConfig) -> str:
    """Top module name of the accelerator, e.g. ``accel_16x16_os_int8_128b``."""
    return f"accel_{config.array.name.removeprefix('systolic_')}_{config.bus_bits}b"


def generate_accelerator_verilog(config: AcceleratorConfig, *, collision_checks: bool = False) -> str:
    """Synthesizable Verilog of the whole accelerator; the top module is ``accelerator_name(config)``.

    ``collision_checks`` adds the simulation's assertions (``Accelerator``), which Verilator checks with
    ``--assert`` but Yosys' Verilog front end does not read."""
    return verilog.convert(Accelerator(config, collision_checks=collision_checks), name=accelerator_name(config),
                           emit_src=False)
