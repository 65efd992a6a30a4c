"""The whole accelerator in Verilator with cocotbext-axi: final DRAM bit-exact with the ISA simulator."""
import numpy as np
import pytest
from gemm_cases import random_layer

from hdl.config import AcceleratorConfig, ArrayConfig
from hdl.csr import ErrorCode
from hdl.isa import HEADER, Instruction, Opcode, Target
from hdl.isa import LOAD as LOAD_LAYOUT
from hdl.numerics import ArithMode
from quant.gemm import compile_gemm
from quant.isasim import IsaError, IsaSimulator
from quant.memory import INSTRUCTION_BYTES, MemoryImage
from sim.accelerator_runner import AcceleratorRun, accelerator_model, run_programs

CONFIGS = [
    AcceleratorConfig(ArrayConfig(2, 3, "os", "both"), spad_kib=1, acc_kib=1, bus_bits=64),
    AcceleratorConfig(ArrayConfig(2, 3, "ws", "both"), spad_kib=1, acc_kib=1, bus_bits=64),
    AcceleratorConfig(ArrayConfig(4, 4, "os", "int8"), spad_kib=1, acc_kib=1, bus_bits=128),
    AcceleratorConfig(ArrayConfig(3, 4, "ws", "binary"), spad_kib=1, acc_kib=1, bus_bits=128),
]


def config_id(config):
    return f"{config.array.name}_{config.bus_bits}b"


def isa_reference(config, image: bytes, program_addr: int, length: int):
    dram = bytearray(image)
    stats = IsaSimulator(config, dram).run(program_addr, length)
    return bytes(dram), stats


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_gemm_programs_match_the_isa_simulator(config, seed):
    rng = np.random.default_rng(seed)
    shapes = [(1, 1, 1), (5, 7, 9), (9, 300, 5), (33, 6, 7)]     # 300 > half a scratchpad: K chunks
    compiled, runs = [], []
    for index, (m, k, n) in enumerate(shapes):
        mode = config.array.modes[index % len(config.array.modes)]
        program = compile_gemm(config, random_layer(rng, m, k, n, mode))
        compiled.append(program)
        runs.append(AcceleratorRun(bytes(program.image.data), program.program_region.address, len(program.program),
                                   backpressure=index % 2 == 1, seed=index))
    for index, (program, outcome) in enumerate(zip(compiled, run_programs(config, runs, accelerator_model(config)))):
        where = f"{config_id(config)} GEMM {shapes[index]} ({program.layer.mode.name}), seed {seed}"
        assert outcome.finished and outcome.done and outcome.error is None, f"{where}: {outcome}"
        expected, stats = isa_reference(config, program.image.data, program.program_region.address,
                                        len(program.program))
        image = outcome.dram[:len(expected)]
        differing = [i for i in range(len(expected)) if image[i] != expected[i]]
        assert not differing, (f"{where}: {len(differing)} DRAM bytes differ, first at {differing[0]:#x} "
                               f"(regions {[(r.name, r.address) for r in program.image.regions.values()]})")
        for got, want in zip(program.read_outputs(image), program.expected_outputs()):
            assert np.array_equal(got, want), where
        counters = outcome.counters
        assert counters["INSTRUCTIONS"] == stats.instructions
        assert counters["BYTES_WRITTEN"] == stats.bytes_written
        beats = sum(i.fields["beats"] for i in program.program if i.opcode == Opcode.COMPUTE)
        assert counters["ARRAY_BUSY"] == beats
        assert counters["BYTES_READ"] >= stats.bytes_read and counters["CYCLES"] > beats
        assert 0 < counters["COMPUTE_STARVED"] < counters["CYCLES"] - beats     # waits at least for the first fetch


def fault_image(config, program):
    image = MemoryImage(config.bus_bytes)
    image.allocate("data", 256)
    region = image.place_program("program", program)
    return bytes(image.data), region.address


LOAD = {"target": Target.ACTIVATIONS, "sram_addr": 0, "dram_addr": 0, "row_elems": 2, "rows": 2,
        "row_stride": 16, "blocks": 1, "block_stride": 0, "pad_before": 0, "pad_after": 0, "pad_value": 0}
STORE = {"acc_addr": 0, "channel_row": 0, "dram_addr": 0, "channels": 3, "rows": 1, "row_stride": 16,
         "blocks": 1, "block_stride": 0}
END = Instruction(Opcode.END, {})
DRAM_BYTES = 4096
FAULTS = [
    (ErrorCode.ILLEGAL_OPCODE, None),
    (ErrorCode.READ_RESPONSE, [Instruction(Opcode.LOAD, {**LOAD, "dram_addr": DRAM_BYTES + 64}), END]),
    (ErrorCode.WRITE_RESPONSE, [Instruction(Opcode.STORE, {**STORE, "dram_addr": DRAM_BYTES + 64}), END]),
    (ErrorCode.SRAM_RANGE, [Instruction(Opcode.LOAD, {**LOAD, "sram_addr": 65535}), END]),
    (ErrorCode.SRAM_RANGE, [Instruction(Opcode.LOAD, {**LOAD, "sram_addr": 200, "groups": 2, "sram_gap": 53}),
                            END]),     # rows 200, 201, 255, 256 of 256
    (ErrorCode.SRAM_RANGE, [Instruction(Opcode.LOAD, {**LOAD, "target": Target.COMBINE, "lane_scales": 1,
                                                      "scale_row": 4000}), END]),
    (ErrorCode.SRAM_RANGE, [Instruction(Opcode.STORE, {**STORE, "acc_addr": CONFIGS[0].acc_rows - 1, "rows": 2}),
                            END]),     # the accumulator's last row and one past it
    (ErrorCode.SRAM_RANGE, [Instruction(Opcode.STORE, {**STORE, "acc_addr": 65535}), END]),
    (ErrorCode.SRAM_RANGE, [Instruction(Opcode.STORE, {**STORE, "channels": 0}), END]),   # no byte of a row
    (ErrorCode.PROGRAM_OVERRUN, [Instruction(Opcode.SYNC, {}), Instruction(Opcode.SYNC, {})]),
    (ErrorCode.ILLEGAL_FIELD, [Instruction(Opcode.COMPUTE, {"act_addr": 0, "weight_addr": 0, "acc_addr": 0,
                                                            "beats": 3, "accumulate": 0, "mode": ArithMode.INT8}),
                               END]),      # CONFIGS[0] is OS with R = 2: beats must be a multiple of 2
    (ErrorCode.ILLEGAL_FIELD, "undefined combine"),
    (ErrorCode.ILLEGAL_FIELD, [Instruction(Opcode.COMPUTE, {"act_addr": 0, "weight_addr": 0, "acc_addr": 0,
                                                            "beats": 4, "mode": ArithMode.INT8, "depthwise": 1}),
                               END]),      # an OS depthwise COMPUTE needs 1 to R taps
    (ErrorCode.ILLEGAL_FIELD, [Instruction(Opcode.COMPUTE, {"act_addr": 0, "weight_addr": 0, "acc_addr": 0,
                                                            "beats": 2, "mode": ArithMode.INT8, "depthwise": 1,
                                                            "taps": 1, "paired": 1}),
                               END]),      # paired needs act_stride_log2 1
    (ErrorCode.SRAM_RANGE, [Instruction(Opcode.COMPUTE, {"act_addr": CONFIGS[0].act_rows - 4, "weight_addr": 0,
                                                         "acc_addr": 0, "beats": 2, "mode": ArithMode.INT8,
                                                         "depthwise": 1, "taps": 1, "paired": 1,
                                                         "act_stride_log2": 1}),
                            END]),     # rows act_rows - 4 and - 2, secondary rows - 1 and + 1
    (ErrorCode.ILLEGAL_FIELD, [Instruction(Opcode.COMPUTE, {"act_addr": 0, "weight_addr": 0, "acc_addr": 0,
                                                            "beats": 2, "mode": ArithMode.INT8, "repeat": 1}),
                               END]),      # only OS depthwise COMPUTEs repeat
    (ErrorCode.SRAM_RANGE, [Instruction(Opcode.COMPUTE, {"act_addr": CONFIGS[0].act_rows - 4, "weight_addr": 0,
                                                         "acc_addr": 0, "beats": 2, "mode": ArithMode.INT8,
                                                         "depthwise": 1, "taps": 1, "repeat": 2}),
                            END]),     # runs of 2 rows from act_rows - 4: the third's past the scratchpad
    (ErrorCode.SRAM_RANGE, [Instruction(Opcode.COMPUTE, {"act_addr": 0, "weight_addr": 0,
                                                         "acc_addr": CONFIGS[0].acc_rows - 4, "beats": 2,
                                                         "mode": ArithMode.INT8, "depthwise": 1, "taps": 1,
                                                         "repeat": 2}), END]),   # its third run's results
    (ErrorCode.SRAM_RANGE, [Instruction(Opcode.COMPUTE, {"act_addr": 0, "weight_addr": 0, "acc_addr": 0,
                                                         "beats": 40, "mode": ArithMode.INT8,
                                                         "act_stride_log2": 3}), END]),   # rows 0, 8, .. 312 of 256
    (ErrorCode.SRAM_RANGE, [Instruction(Opcode.COMPUTE, {"act_addr": 0, "weight_addr": CONFIGS[0].weight_rows - 1,
                                                         "acc_addr": 0, "beats": 2, "mode": ArithMode.INT8}),
                            END]),     # OS: a weight row per beat, the last one past the scratchpad
    (ErrorCode.SRAM_RANGE, [Instruction(Opcode.COMPUTE, {"act_addr": 0, "weight_addr": 0,
                                                         "acc_addr": CONFIGS[0].acc_rows - 1, "beats": 2,
                                                         "mode": ArithMode.INT8}), END]),   # R = 2 result rows
]


def undefined_combine_image(config):
    """A COMBINE LOAD whose combine field holds 3, which ``Combine`` does not define."""
    image, address = fault_image(config, [Instruction(Opcode.LOAD, {**LOAD, "target": Target.COMBINE}), END])
    bits = int.from_bytes(image[address:address + INSTRUCTION_BYTES], "little")
    offset = HEADER.size + LOAD_LAYOUT["combine"].offset
    bits |= 3 << offset
    return image[:address] + bits.to_bytes(INSTRUCTION_BYTES, "little") + image[address + INSTRUCTION_BYTES:], address


def test_faults_stop_cleanly_and_the_next_program_runs(seed):
    config = CONFIGS[0]
    rng = np.random.default_rng(seed)
    good = compile_gemm(config, random_layer(rng, 3, 5, 4, ArithMode.INT8))
    good_run = AcceleratorRun(bytes(good.image.data), good.program_region.address, len(good.program),
                              reset_before=False)
    runs, expected = [], []
    for code, program in FAULTS:
        if program is None:        # an opcode the ISA does not define, written as raw bytes
            image, address = fault_image(config, [END])
            image = bytearray(image)
            image[address] = 7
            image = bytes(image)
        elif isinstance(program, str):
            image, address = undefined_combine_image(config)
            program = [None, END]
            with pytest.raises(IsaError, match="combine holds an undefined value"):
                isa_reference(config, image + bytes(DRAM_BYTES - len(image)), address, len(program))
        else:
            image, address = fault_image(config, program)
            with pytest.raises(IsaError):     # the reference refuses the same programs
                isa_reference(config, image + bytes(DRAM_BYTES - len(image)), address, len(program))
        runs += [AcceleratorRun(image, address, len(program or [END])), good_run]
        expected += [code, None]
    # A reset in the middle of a program, then the program again from the start.
    runs.append(AcceleratorRun(bytes(good.image.data), good.program_region.address, len(good.program),
                               reset_after=40))
    expected.append(None)
    good_dram, _ = isa_reference(config, good.image.data, good.program_region.address, len(good.program))
    outcomes = run_programs(config, runs, accelerator_model(config), dram_size=DRAM_BYTES)
    for index, (outcome, code) in enumerate(zip(outcomes, expected)):
        assert outcome.finished, f"run {index}: no interrupt (hung)"
        if code is None:
            assert outcome.done and outcome.error is None, f"run {index}: {outcome.error}"
            assert outcome.dram[:len(good_dram)] == good_dram, f"run {index}: DRAM differs after recovery"
        else:
            assert not outcome.done and outcome.error == code, f"run {index}: expected {code}, got {outcome.error}"


def test_paired_computes_are_int8_only_on_ws():
    """WS depthwise COMPUTEs may be binary, paired ones not: the RTL stops with ILLEGAL_FIELD where the ISA
    simulator refuses it, and runs the same COMPUTE in int8."""
    config = CONFIGS[1]         # WS 2x3, int8 and binary
    assert config.array.paired and config.array.dataflow.value == "ws"
    runs = []
    for mode in (ArithMode.BINARY, ArithMode.INT8):
        image, address = fault_image(config, [
            Instruction(Opcode.COMPUTE, {"act_addr": 0, "weight_addr": 0, "acc_addr": 0, "beats": 4, "mode": mode,
                                         "depthwise": 1, "paired": 1, "act_stride_log2": 1}), END])
        if mode == ArithMode.BINARY:
            with pytest.raises(IsaError, match="a paired COMPUTE must be int8 depthwise"):
                isa_reference(config, image + bytes(DRAM_BYTES - len(image)), address, 2)
        else:
            isa_reference(config, image + bytes(DRAM_BYTES - len(image)), address, 2)
        runs.append(AcceleratorRun(image, address, 2))
    refused, taken = run_programs(config, runs, accelerator_model(config), dram_size=DRAM_BYTES)
    assert refused.finished and not refused.done and refused.error == ErrorCode.ILLEGAL_FIELD, refused
    assert taken.done and taken.error is None, taken
