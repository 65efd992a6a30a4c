"""The FPGA-oriented PE options (logic multipliers, mixed DSP/logic, pipelining, DSP primitives) stay bit-exact.

The array cases and checks are test_systolic_array's own (cycle counts included);
the accelerator case is test_accelerator's GEMM-program test, on a pipelined mixed array.
"""
import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator
from test_accelerator import test_gemm_programs_match_the_isa_simulator as gemm_programs_match_the_isa_simulator
from test_systolic_array import check, gemm_cases

from hdl.config import AcceleratorConfig, ArrayConfig, Multipliers
from hdl.numerics import INT8_MAX, INT8_MIN
from hdl.pe import logic_product
from sim.array_runner import run_gemms

# Each option in each dataflow, both arithmetic modes, few Verilator builds (each costs about a minute).
CONFIGS = [
    ArrayConfig(3, 5, "os", "int8", "lut"),
    ArrayConfig(5, 3, "ws", "both", "mixed", 4, pipelined=True),
    ArrayConfig(3, 4, "os", "both", "lut", pipelined=True),
    # The ECP5 DSP block with its registers (its model, sim/primitives.py), without and with the depthwise mode.
    ArrayConfig(5, 3, "ws", "int8", "mixed", 4, pipelined=True, depthwise=False, dsp_primitive="ecp5"),
    ArrayConfig(3, 4, "os", "int8", pipelined=True, depthwise=False, dsp_primitive="ecp5"),
]


def test_logic_product_is_exact_for_every_int8_pair():
    m = Module()
    a, w, p = Signal(signed(8)), Signal(signed(8)), Signal(signed(16))
    m.d.comb += p.eq(logic_product(m, a, w))
    wrong = []

    async def testbench(ctx):
        for x in range(INT8_MIN, INT8_MAX + 1):
            ctx.set(a, x)
            for y in range(INT8_MIN, INT8_MAX + 1):
                ctx.set(w, y)
                if ctx.get(p) != x * y:
                    wrong.append((x, y, ctx.get(p)))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    assert not wrong, f"{len(wrong)} wrong products, e.g. {wrong[:3]}"


def test_multiplier_options_are_validated_with_what_is_allowed():
    with pytest.raises(ValueError, match=r"Multipliers must be one of dsp, lut, mixed, not 'packed'"):
        ArrayConfig(2, 2, multipliers="packed")
    with pytest.raises(ValueError, match=r"DSP limit from 1 to 3 \(the PEs of a 2x2 array less one\), not None"):
        ArrayConfig(2, 2, multipliers="mixed")
    with pytest.raises(ValueError, match=r"DSP limit from 1 to 3 .*, not 4"):
        ArrayConfig(2, 2, multipliers="mixed", dsp_limit=4)
    with pytest.raises(ValueError, match=r"DSP limit applies only to mixed multipliers, not lut"):
        ArrayConfig(2, 2, multipliers="lut", dsp_limit=1)
    with pytest.raises(TypeError, match=r"pipelined must be True or False, not 1"):
        ArrayConfig(2, 2, pipelined=1)
    with pytest.raises(ValueError, match=r"DSP primitive must be one of ecp5, not 'dsp48'"):
        ArrayConfig(2, 2, pipelined=True, dsp_primitive="dsp48")
    with pytest.raises(ValueError, match=r"ecp5 DSP primitive needs a pipelined array"):
        ArrayConfig(2, 2, dsp_primitive="ecp5")
    with pytest.raises(ValueError, match=r"ecp5 DSP primitive needs int8 arithmetic, not both"):
        ArrayConfig(2, 2, arith="both", pipelined=True, dsp_primitive="ecp5")
    with pytest.raises(ValueError, match=r"ecp5 DSP primitive needs dsp or mixed multipliers, not lut"):
        ArrayConfig(2, 2, multipliers="lut", pipelined=True, dsp_primitive="ecp5")
    config = ArrayConfig(3, 4, "os", "int8", Multipliers.MIXED, 5, pipelined=True)
    assert config.name == "systolic_3x4_os_int8_dsp5_p"
    assert config.dsp_multipliers == 5 and config.dsp_multiplier(1, 0) and not config.dsp_multiplier(1, 1)
    assert ArrayConfig(3, 4, "os", "binary").dsp_multipliers == 0
    assert ArrayConfig(3, 4).name == "systolic_3x4_os_int8"      # the default's name (and Verilog) is unchanged


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_random_extreme_and_long_gemms_are_bit_exact(config, seed):
    rng = np.random.default_rng(seed)
    for index, outcome in enumerate(run_gemms(config, gemm_cases(config, rng))):
        check(config, outcome, seed, index)


@pytest.mark.parametrize("array", [ArrayConfig(4, 4, "os", "both", "mixed", 6, pipelined=True),
                                   ArrayConfig(4, 4, "ws", "int8", "mixed", 6, pipelined=True, dsp_primitive="ecp5")],
                         ids=lambda array: array.name)
def test_accelerator_with_a_pipelined_mixed_array_matches_the_isa_simulator(array, seed):
    gemm_programs_match_the_isa_simulator(AcceleratorConfig(array, spad_kib=1, acc_kib=1, bus_bits=128), seed)
