"""The fast runner (accelerator + in-design DRAM model + SV sequencer, no Python per cycle) against the ISA simulator."""
import numpy as np
import pytest
from gemm_cases import random_layer
from test_accelerator import END, LOAD, STORE, fault_image, isa_reference

from hdl.config import AcceleratorConfig, ArrayConfig
from hdl.csr import ErrorCode
from hdl.isa import Instruction, Opcode
from quant.gemm import compile_gemm
from sim.fast_runner import fast_model, fast_top_name, fast_top_verilog, read_dump_hex, run_fast, write_image_hex
from sim.verilator import lint

CONFIGS = [
    AcceleratorConfig(ArrayConfig(4, 4, "os", "int8"), spad_kib=1, acc_kib=1, bus_bits=128),
    AcceleratorConfig(ArrayConfig(3, 4, "ws", "both"), spad_kib=1, acc_kib=1, bus_bits=64),
]


def config_id(config):
    return f"{config.array.name}_{config.bus_bits}b"


@pytest.mark.parametrize("bus_bytes", [8, 16])
def test_image_hex_round_trip(tmp_path, bus_bytes):
    image = bytes(range(256)) * 3 + b"\x7f"
    write_image_hex(tmp_path / "image.hex", image, bus_bytes)
    lines = (tmp_path / "image.hex").read_text().split()
    assert lines[0] == bytes(range(bus_bytes))[::-1].hex()       # word 0, little-endian
    assert read_dump_hex(tmp_path / "image.hex", bus_bytes) == image + bytes(-len(image) % bus_bytes)


def test_sources_lint_clean(tmp_path):
    path = tmp_path / "fast_top.sv"
    path.write_text(fast_top_verilog(CONFIGS[0]))
    lint(path, fast_top_name(CONFIGS[0]))


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_gemm_programs_match_the_isa_simulator(config, seed):
    rng = np.random.default_rng(seed)
    model = fast_model(config)
    # 300 > half a scratchpad: K chunks; 40x64x9 spans several output tiles.
    for index, ((m, k, n), latency) in enumerate([((1, 1, 1), 2), ((5, 7, 9), 2), ((9, 300, 5), 20),
                                                  ((40, 64, 9), 7)]):
        mode = config.array.modes[index % len(config.array.modes)]
        program = compile_gemm(config, random_layer(rng, m, k, n, mode))
        where = f"{config_id(config)} GEMM {(m, k, n)} ({mode.name}), read latency {latency}, seed {seed}"
        outcome = run_fast(config, bytes(program.image.data), program.program_region.address,
                           len(program.program), read_latency=latency, model=model)
        assert outcome.finished and outcome.done and outcome.error is None, f"{where}: {outcome}"
        expected, stats = isa_reference(config, program.image.data, program.program_region.address,
                                        len(program.program))
        image = outcome.dram[:len(expected)]
        differing = [i for i in range(len(expected)) if image[i] != expected[i]]
        assert not differing, f"{where}: {len(differing)} DRAM bytes differ, first at {differing[0]:#x}"
        assert not any(outcome.dram[len(expected):]), f"{where}: bytes written beyond the image"
        for got, want in zip(program.read_outputs(image), program.expected_outputs()):
            assert np.array_equal(got, want), where
        counters = outcome.counters
        assert counters["INSTRUCTIONS"] == stats.instructions, where
        assert counters["BYTES_WRITTEN"] == stats.bytes_written, where
        beats = sum(i.fields["beats"] for i in program.program if i.opcode == Opcode.COMPUTE)
        assert counters["ARRAY_BUSY"] == beats, where
        assert outcome.clock_cycles > counters["CYCLES"] > beats, where
        assert 0 < outcome.loop_seconds <= outcome.seconds, where


@pytest.mark.parametrize("code, program", [
    (ErrorCode.READ_RESPONSE, [Instruction(Opcode.LOAD, {**LOAD, "dram_addr": 4096 + 64}), END]),
    (ErrorCode.WRITE_RESPONSE, [Instruction(Opcode.STORE, {**STORE, "dram_addr": 4096 + 64}), END]),
], ids=["read", "write"])
def test_accesses_beyond_dram_answer_slverr(code, program):
    config = CONFIGS[0]
    image, address = fault_image(config, program)
    outcome = run_fast(config, image, address, len(program), dram_size=4096)
    assert outcome.finished and not outcome.done and outcome.error == code, outcome
    assert outcome.dram == image + bytes(4096 - len(image))


def test_no_interrupt_within_max_cycles_is_reported():
    config = CONFIGS[0]
    image, address = fault_image(config, [END])
    outcome = run_fast(config, image, address, 1, max_cycles=3)
    assert not outcome.finished


def test_dram_size_beyond_capacity_is_refused():
    config = CONFIGS[0]
    image, address = fault_image(config, [END])
    with pytest.raises(ValueError, match="capacity"):
        run_fast(config, image, address, 1, dram_size=32 << 20)
