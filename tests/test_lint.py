"""The generated Verilog passes ``verilator --lint-only -Wall`` with only the documented waivers."""
import pytest

from hdl.config import AcceleratorConfig, ArithSupport, ArrayConfig, Dataflow
from hdl.generate import accelerator_name, generate_accelerator_verilog, generate_verilog
from sim.verilator import LINT_WAIVERS, lint

CONFIGS = [ArrayConfig(3, 5, dataflow, arith) for dataflow in Dataflow for arith in ArithSupport]
CONFIGS += [ArrayConfig(1, 1, dataflow, "both") for dataflow in Dataflow]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_lint_clean(config, tmp_path):
    source = tmp_path / f"{config.name}.v"
    source.write_text(generate_verilog(config))
    assert lint(source, config.name) == ""


@pytest.mark.parametrize("config", [
    AcceleratorConfig(ArrayConfig(2, 3, "os", "both"), spad_kib=1, acc_kib=1, bus_bits=64),
    AcceleratorConfig(ArrayConfig(3, 2, "ws", "int8"), spad_kib=1, acc_kib=1, bus_bits=128),
    AcceleratorConfig(ArrayConfig(2, 3, "os", "int8", paired=False), spad_kib=1, acc_kib=1, bus_bits=64),
], ids=accelerator_name)
def test_accelerator_lint_clean(config, tmp_path):
    source = tmp_path / "accelerator.v"
    source.write_text(generate_accelerator_verilog(config))
    assert lint(source, accelerator_name(config)) == ""


def test_every_waiver_has_a_reason():
    assert all(len(reason) > 10 for reason in LINT_WAIVERS.values())
