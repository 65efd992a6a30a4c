"""The host-link SoC in Verilator, driven only through its UART pins by the host driver (``boards.host``).

A UART model in the cocotb bench (``sim/host_link_tb.py``, 4 clocks per bit) carries the
driver's frames; compiled programs are loaded over the link, started, polled until done and
their outputs read back over the link, then compared byte for byte with the ISA simulator
and with the golden model. One model serves every test (about 3.5 minutes to build under
load, cached in build/sim/ afterwards).
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gemm_cases import random_layer
from torch import nn

from boards.host import CompiledProgram, compatible
from hdl.config import AcceleratorConfig, ArrayConfig
from hdl.isa import Opcode
from hdl.numerics import ArithMode
from hdl.soc import HostLinkSoC, generate_soc_verilog, soc_name
from hdl.uart_bridge import LinkInfo, Status
from quant import golden
from quant.compiler import compile_graph
from quant.frontend import trace
from quant.gemm import compile_gemm
from quant.isasim import IsaSimulator
from quant.ptq import calibrate, quantize, quantize_input
from sim.soc_runner import run_host_scenario, soc_model
from sim.verilator import lint

CONFIG = AcceleratorConfig(ArrayConfig(2, 2, "os", "int8"), spad_kib=1, acc_kib=1, bus_bits=64)
SOC = HostLinkSoC(CONFIG, memory_kib=8, clocks_per_bit=4, timeout_bytes=4, collision_checks=True)


@pytest.fixture(scope="module")
def model():
    return soc_model(SOC)


def isa_reference(image: bytes, program_addr: int, length: int):
    dram = bytearray(image)
    stats = IsaSimulator(CONFIG, dram).run(program_addr, length)
    return bytes(dram), stats


def run_over_the_link(model, image: bytes, program_addr: int, length: int, reads: list[tuple[int, int]]):
    seen = run_host_scenario(SOC, "program", model, image=image, program_addr=program_addr, program_length=length,
                             reads=reads)
    print(f"over the link: {seen['link_bytes']}, simulated cycles {seen['cycles']}, counters {seen['counters']}")
    assert LinkInfo.from_words(seen["info"]) == SOC.info and compatible(SOC.info.config, CONFIG)
    assert seen["done"] and seen["error"] is None and seen["irq"] == 1, seen
    return seen, [bytes.fromhex(data) for data in seen["reads"]]


def test_compiled_gemm_over_the_uart_matches_the_isa_simulator(model, seed):
    rng = np.random.default_rng(seed)
    program = compile_gemm(CONFIG, random_layer(rng, 5, 7, 9, ArithMode.INT8))
    image = bytes(program.image.data)
    expected, stats = isa_reference(image, program.program_region.address, len(program.program))
    seen, outputs = run_over_the_link(model, image, program.program_region.address, len(program.program),
                                      [(region.address, region.size) for region in program.outputs])
    dram = bytearray(image)
    for region, data in zip(program.outputs, outputs):
        assert data == expected[region.address:region.address + region.size], f"{region.name} (seed {seed})"
        dram[region.address:region.address + region.size] = data
    for got, want in zip(program.read_outputs(bytes(dram)), program.expected_outputs()):
        assert np.array_equal(got, want)
    counters = seen["counters"]
    assert counters["INSTRUCTIONS"] == stats.instructions
    assert counters["BYTES_WRITTEN"] == stats.bytes_written
    assert counters["ARRAY_BUSY"] == sum(i.fields["beats"] for i in program.program if i.opcode == Opcode.COMPUTE)
    assert counters["BYTES_READ"] >= stats.bytes_read


def tiny_net(seed: int):
    """Conv 3x3 + ReLU, max pool, conv 1x1 + ReLU, global average pool, linear: every path of the accelerator."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    images = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    graph = trace(model, (3, 4, 4))
    integer = quantize(graph, calibrate(graph, images))
    return integer, quantize_input(integer, images.numpy())[0]


def write_compiled(directory: Path, net, graph, accelerator: str | None = None) -> None:
    """The image.bin and layout.json that tools/compile.py writes (the fields tools/host.py reads)."""
    (directory / "image.bin").write_bytes(bytes(net.image.data))
    (directory / "layout.json").write_text(json.dumps({
        "accelerator": accelerator or CONFIG.array.name, "bus_bytes": CONFIG.bus_bytes,
        "program_address": net.program_address, "program_length": len(net.program),
        "image_bytes": len(net.image.data), "tensors": {name: vars(fmap) for name, fmap in net.feature_maps.items()},
        "input": graph.input, "output": graph.output}))


def test_compiled_net_through_tools_host_matches_the_isa_simulator_and_golden_model(model, seed, tmp_path):
    graph, x = tiny_net(seed)
    net = compile_graph(CONFIG, graph, x)
    image = bytes(net.image.data)
    expected, stats = isa_reference(image, net.program_address, len(net.program))
    write_compiled(tmp_path, net, graph)
    seen = run_host_scenario(SOC, "cli", model, argv=["--port", "sim", "run", str(tmp_path)])
    print(seen["stderr"])
    assert seen["code"] == 0, seen
    board = (tmp_path / "board.bin").read_bytes()
    first, end = CompiledProgram.from_directory(tmp_path).tensor_span()
    assert first < end and board[first:end] == expected[first:end], f"tensors differ from the ISA simulator's ({seed})"
    assert board == expected, "the board image is the loaded image with the tensors read back"
    reference = golden.run(graph, x[None])
    for node in graph.nodes:
        assert np.array_equal(net.read_tensor(board, node.output), reference[node.output][0]), node.name
    printed = dict(line.split() for line in seen["stdout"].replace(",", "").splitlines())
    assert int(printed["INSTRUCTIONS"]) == stats.instructions
    assert int(printed["BYTES_WRITTEN"]) == stats.bytes_written


def test_tools_host_refuses_a_program_for_another_array(model, seed, tmp_path):
    graph, x = tiny_net(seed)
    write_compiled(tmp_path, compile_graph(CONFIG, graph, x), graph, accelerator="systolic_4x4_os_int8")
    seen = run_host_scenario(SOC, "cli", model, argv=["--port", "sim", "run", str(tmp_path)])
    assert seen["code"] == 1 and not (tmp_path / "board.bin").exists()
    assert seen["stderr"] == ("host.py: error: The program was compiled for systolic_4x4_os_int8 with a 8-byte bus; "
                              "the SoC has systolic_2x2_os_int8 with a 8-byte bus\n")


def test_bridge_protocol_over_the_pins(model, seed):
    seen = run_host_scenario(SOC, "protocol", model, seed=seed)
    assert all(seen[f"round trip at {where}"] for where in ("first", "middle", "last"))
    before, after = (bytes.fromhex(h) for h in seen["partial write"])
    assert after == before[:1] + b"\xaa\xbb\xcc\xdd\xee" + before[6:]
    assert seen["csr round trip"] == [0x1234_5678, 0]
    for what in ("read beyond memory", "read crossing the end", "write crossing the end", "unaligned read",
                 "info beyond its words", "csr beyond its space"):
        assert seen[what] == Status.BAD_ADDRESS.name, what
    assert seen["last word kept"]
    assert seen["unmapped register read"] == seen["read-only register write"] == Status.BUS_ERROR.name
    assert seen["empty frame"] == Status.OK.name
    # Each unknown command: exactly one BAD_COMMAND byte, then (after resync) the link works.
    assert seen["bad commands"] == [f"{Status.BAD_COMMAND.value:02x}", True] * 3
    assert seen["truncated header"] == seen["truncated data"] == f"{Status.TIMEOUT.value:02x}"
    assert seen["works after"] and seen["framing errors"] == 0


def test_soc_verilog_lints_clean(tmp_path):
    """The SoC top (accelerator, memory, UART, bridge) passes verilator -Wall with only the project's waivers."""
    path = tmp_path / "soc.v"
    verilog = generate_soc_verilog(SOC)
    assert f"module {soc_name(CONFIG, SOC.memory_kib)}(clk, rst, uart_tx, irq, uart_rx);" in verilog
    path.write_text(verilog)
    lint(path, soc_name(CONFIG, SOC.memory_kib))
