"""GEMM programs (quant.gemm) on the ISA simulator agree with the golden model; illegal programs are refused."""
import numpy as np
import pytest
from gemm_cases import random_layer

from hdl.config import AcceleratorConfig, ArrayConfig
from hdl.isa import Instruction, Opcode, Target
from hdl.numerics import ArithMode
from quant.gemm import compile_gemm
from quant.isasim import IsaError, IsaSimulator
from quant.memory import MemoryImage
from quant.races import RaceError


def run(compiled):
    dram = bytearray(compiled.image.data)
    stats = IsaSimulator(compiled.config, dram).run(compiled.program_region.address, len(compiled.program))
    return dram, stats


@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("shape", [(2, 2), (3, 5), (4, 4)])
@pytest.mark.parametrize("bus_bits", [64, 128])
def test_gemm_programs_match_golden(dataflow, shape, bus_bits, seed):
    rng = np.random.default_rng(seed)
    # Small memories force K/M chunking, many ping-pong steps and both accumulator halves.
    config = AcceleratorConfig(ArrayConfig(*shape, dataflow, "both"), spad_kib=1, acc_kib=1, bus_bits=bus_bits)
    for mode in ArithMode:
        for m, k, n in [(1, 1, 1), (7, 9, 11), (23, 300, 6), (40, 17, 3)]:
            compiled = compile_gemm(config, random_layer(rng, m, k, n, mode))
            dram, stats = run(compiled)
            for block, (got, want) in enumerate(zip(compiled.read_outputs(dram), compiled.expected_outputs())):
                assert np.array_equal(got, want), f"{mode.name} {(m, k, n)} block {block}, seed {seed}"
            assert stats.by_opcode["END"] == 1 and stats.macs >= m * k * n


def program_on(config, program):
    image = MemoryImage(config.bus_bytes)
    image.allocate("data", 256)
    region = image.place_program("program", program)
    return IsaSimulator(config, image.data), region


CONFIG = AcceleratorConfig(ArrayConfig(2, 2, "os", "int8"), spad_kib=1, acc_kib=1, bus_bits=64)
LOAD = {"target": Target.ACTIVATIONS, "sram_addr": 0, "dram_addr": 0, "row_elems": 2, "rows": 1,
        "row_stride": 8, "blocks": 1, "block_stride": 0, "pad_before": 0, "pad_after": 0, "pad_value": 0}


@pytest.mark.parametrize("program, message", [
    ([Instruction(Opcode.COMPUTE, {"act_addr": 0, "weight_addr": 0, "acc_addr": 0, "beats": 1, "accumulate": 0,
                                   "mode": ArithMode.INT8}, pop_prev=True)],
     "waits for a load->compute token that no earlier instruction pushed"),
    ([Instruction(Opcode.LOAD, {**LOAD, "sram_addr": 256})], "activation scratchpad rows 256..256 are outside its 256 rows"),
    ([Instruction(Opcode.LOAD, {**LOAD, "dram_addr": 4})], "not a multiple of the 8-byte bus width"),
    ([Instruction(Opcode.LOAD, {**LOAD, "row_elems": 3})], "row_elems 3 exceeds the 2 lanes"),
    ([Instruction(Opcode.LOAD, LOAD, push_prev=True)], "the load unit has no prev neighbour"),
    ([Instruction(Opcode.COMPUTE, {"act_addr": 0, "weight_addr": 0, "acc_addr": 0, "beats": 1, "accumulate": 0,
                                   "mode": ArithMode.BINARY})], "mode BINARY is not generated"),
    ([Instruction(Opcode.SYNC, {})], "no END within"),
    ([Instruction(Opcode.COMPUTE, {"act_addr": 0, "weight_addr": 0, "acc_addr": 0, "beats": 3, "accumulate": 0,
                                   "mode": ArithMode.INT8})], "OS beats 3 is not a multiple of the array's 2 rows"),
])
def test_illegal_programs_are_refused(program, message):
    simulator, region = program_on(CONFIG, program)
    with pytest.raises(IsaError, match=message):
        simulator.run(region.address, len(program))


def test_illegal_opcode_is_refused():
    image = MemoryImage(8)
    image.allocate("program", 32)
    image.write(0, bytes([6]))
    with pytest.raises(IsaError, match="instruction 0: Illegal opcode 6"):
        IsaSimulator(CONFIG, image.data).run(0, 1)


ACT_LOAD = {**LOAD, "rows": 2}
OS_COMPUTE = {"act_addr": 0, "weight_addr": 0, "acc_addr": 0, "beats": 2, "accumulate": 0, "mode": ArithMode.INT8}
STORE = {"acc_addr": 0, "channel_row": 0, "dram_addr": 64, "rows": 2, "row_stride": 8, "blocks": 1,
         "block_stride": 0, "channels": 2}


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("case, message", [
    # A LOAD refilling rows a COMPUTE reads (write after read) needs the compute's token back.
    ("reload", "activations row 0 was read by compute instruction #0"),
    # A STORE of the COMPUTE's results (read after write) needs its compute->store token.
    ("store", "accumulators row 0 was written by compute instruction #0"),
    # A LOAD of what a STORE wrote to DRAM needs a token chain store -> compute -> load.
    ("dram", "reads DRAM 0x40 that store instruction #0 writes"),
])
def test_unordered_accesses_are_refused(case, message, ordered):
    """The simulator runs in program order, where each case computes the right values; the hardware's
    units run concurrently, so without the tokens (``ordered`` false) the program is refused."""
    load = Instruction(Opcode.LOAD, ACT_LOAD, push_next=True)
    if case == "reload":
        program = [load, Instruction(Opcode.COMPUTE, OS_COMPUTE, pop_prev=True, push_prev=ordered),
                   Instruction(Opcode.LOAD, ACT_LOAD, pop_next=ordered)]
    elif case == "store":
        program = [load, Instruction(Opcode.COMPUTE, OS_COMPUTE, pop_prev=True, push_next=ordered),
                   Instruction(Opcode.STORE, STORE, pop_prev=ordered)]
    else:
        program = [load, Instruction(Opcode.COMPUTE, OS_COMPUTE, pop_prev=True, push_next=True),
                   Instruction(Opcode.STORE, STORE, pop_prev=True, push_prev=ordered),
                   Instruction(Opcode.SYNC, {}, pop_next=ordered, push_prev=ordered),
                   Instruction(Opcode.LOAD, {**ACT_LOAD, "dram_addr": 64}, pop_next=ordered)]
    simulator, region = program_on(CONFIG, program + [Instruction(Opcode.END, {})])
    if ordered:
        simulator.run(region.address, len(program) + 1)
    else:
        with pytest.raises(RaceError, match=message):
            simulator.run(region.address, len(program) + 1)
