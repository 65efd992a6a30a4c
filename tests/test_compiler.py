"""Zoo nets compiled for the accelerator: the ISA simulator's tensors equal the golden model's, layer by layer.

Nets are small (width 0.25, 32x32 inputs) on 4x4 arrays with small memories,
so every layer tiles, chunks and double-buffers, and wide layers take several
passes through the channel memory.
"""
import numpy as np
import pytest
import torch

from hdl.config import AcceleratorConfig, ArrayConfig
from quant import golden
from quant.compiler import UnsupportedLayer, compile_graph
from quant.frontend import trace
from quant.isasim import IsaSimulator
from quant.ptq import calibrate, quantize, quantize_input
from quant.zoo import ZOO
from sim.fast_runner import run_fast


def small_net(name: str, seed: int):
    """(integer graph, one int8 input image) of a width-0.25 zoo net calibrated on random images."""
    torch.manual_seed(seed)
    model = ZOO[name](width=0.25, num_classes=10, in_channels=3).eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    graph = trace(model, (3, 32, 32))
    integer = quantize(graph, calibrate(graph, images))
    return integer, quantize_input(integer, images.numpy())[0]


def config(dataflow: str) -> AcceleratorConfig:
    # 6 channel rows hold 24 output channels: wider layers run in several fenced passes.
    return AcceleratorConfig(ArrayConfig(4, 4, dataflow, "int8"), spad_kib=2, acc_kib=4, bus_bits=64,
                             channel_rows=6)


@pytest.mark.parametrize("name, dataflow", [("squeezenet1_1", "ws"), ("squeezenet1_1", "os"),
                                            ("squeezenext23v5", "ws"), ("mobilenet_v2", "os")])
def test_every_tensor_matches_the_golden_model(name, dataflow, seed):
    graph, image = small_net(name, seed)
    expected = golden.run(graph, image[None])
    net = compile_graph(config(dataflow), graph, image)
    dram = bytearray(net.image.data)
    simulator = IsaSimulator(net.config, dram)
    simulator.run(net.program_address, len(net.program))
    # A token left in a queue would let a later pop pass early: the layers' fences must take them all.
    assert not any(simulator.tokens.values()), simulator.tokens
    for node in graph.nodes:
        got = net.read_tensor(dram, node.output)
        assert np.array_equal(got, expected[node.output][0]), f"{name} {dataflow}: {node.name} differs (seed {seed})"


def test_unsupported_layers_are_named(seed):
    graph, image = small_net("shufflenet_v2", seed)
    with pytest.raises(UnsupportedLayer, match="ChannelShuffle is not supported yet"):
        compile_graph(config("ws"), graph, image)
    graph, image = small_net("binarynet", seed)
    with pytest.raises(UnsupportedLayer, match="is binary"):
        compile_graph(config("ws"), graph, image)
    with pytest.raises(UnsupportedLayer, match="square array"):
        compile_graph(AcceleratorConfig(ArrayConfig(2, 4, "ws", "int8")), *small_net("squeezenet1_1", seed))


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_squeezenet_runs_bit_exact_in_rtl(dataflow, seed):
    """The whole net on the generated accelerator with the in-design DRAM model (issue 5's CI run)."""
    graph, image = small_net("squeezenet1_1", seed)
    net = compile_graph(config(dataflow), graph, image)
    dram = bytearray(net.image.data)
    IsaSimulator(net.config, dram).run(net.program_address, len(net.program))
    outcome = run_fast(net.config, bytes(net.image.data), net.program_address, len(net.program))
    assert outcome.done and outcome.error is None, outcome
    assert outcome.dram[:len(dram)] == bytes(dram)
    assert np.array_equal(net.read_tensor(outcome.dram, graph.output), golden.run(graph, image[None])[graph.output][0])
