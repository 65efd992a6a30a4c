"""The analytic performance model (quant/perfmodel.py) against the RTL's performance counters, layer by layer.
OS at 4x4 and 8x8, WS at 8x8.

Each net is compiled for the accelerator, run one layer per program segment on the fast runner
(sim/net_runner.py: START clears the counters, so every layer's counters are its own) and
predicted by the model without simulation. Traffic, array-busy beats and instructions must be
equal, and every layer's cycles within ``TOLERANCE``: layers of the systolic array and those on the
accumulator path (depthwise, pooling, residual add) alike (README, "The performance model").
"""
import dataclasses
import itertools
import numpy as np
import pytest
import torch

from hdl.config import AcceleratorConfig, ArrayConfig
from hdl.isa import Instruction, Opcode, Target
from hdl.numerics import ArithMode, quantize_multiplier
from quant.compiler import compile_graph
from quant.frontend import trace
from quant.isasim import IsaError, IsaSimulator
from quant.memory import MemoryImage, pack_channel_records
from quant.perfmodel import predict_net, predict_program
from quant.ptq import calibrate, quantize, quantize_input
from quant.report import layer_figures
from quant.summary import summarize
from quant.vector import Window, compile_depthwise
from quant.zoo import ZOO
from sim.net_runner import layer_segments, run_layers
from test_compiler import PoolDepthwiseNet

TOLERANCE = 0.05
EXACT = ("BYTES_READ", "BYTES_WRITTEN", "ARRAY_BUSY", "INSTRUCTIONS")
# pool_depthwise: test_compiler's net of depthwise layers reading a pool's output folded (quant.depthwise.Fold).
CASES = [("squeezenet1_1", 4, "os"), ("mobilenet_v2", 4, "os"), ("squeezenet1_1", 8, "os"), ("mobilenet_v2", 8, "os"),
         ("squeezenet1_1", 8, "ws"), ("mobilenet_v2", 8, "ws"), ("pool_depthwise", 4, "os")]


def compiled(name: str, pe: int, dataflow: str = "os"):
    torch.manual_seed(0)
    if name == "pool_depthwise":
        model, shape = PoolDepthwiseNet().eval(), (3, 25, 27)
    else:
        model, shape = ZOO[name](width=0.25, num_classes=10, in_channels=3).eval(), (3, 32, 32)
    images = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    graph = trace(model, shape)
    integer = quantize(graph, calibrate(graph, images))
    x = np.asarray(quantize_input(integer, images[:1].numpy())[0])
    return compile_graph(AcceleratorConfig(ArrayConfig(pe, pe, dataflow, "int8")), integer, x)


@pytest.mark.parametrize("name,pe,dataflow", CASES, ids=[f"{name}-{pe}x{pe}-{df}" for name, pe, df in CASES])
def test_model_predicts_every_layer_of_the_rtl(name, pe, dataflow):
    net = compiled(name, pe, dataflow)
    outcome = run_layers(net)
    assert outcome.finished and outcome.done, outcome.error
    assert len(outcome.segments) == len(net.layers)
    ops = {summary.name: summary.op for summary in summarize(net)}
    misses = []
    for span, measured, predicted in zip(net.layers, outcome.segments, predict_net(net)):
        counters = predicted.counters()
        for counter in EXACT:
            assert counters[counter] == measured[counter], f"{name} {pe}x{pe} {dataflow} {span.name}: {counter}"
        error = predicted.cycles / measured["CYCLES"] - 1
        print(f"{span.name:28} {ops[span.name]:9} RTL {measured['CYCLES']:7} model {predicted.cycles:7} {error:+.1%}")
        if abs(error) > TOLERANCE:
            misses.append(f"{span.name} ({ops[span.name]}): RTL {measured['CYCLES']}, model {predicted.cycles}")
    assert not misses, f"{name} on {pe}x{pe} {dataflow}: " + "; ".join(misses)


def test_per_layer_segments_add_up_to_the_whole_program():
    """The layer programs write the same DRAM as the one program, and their traffic adds up to its traffic."""
    from sim.fast_runner import run_fast
    net = compiled("squeezenet1_1", 4)
    image, segments = layer_segments(net)
    whole = run_fast(net.config, image, net.program_address, len(net.program))
    layers = run_layers(net)
    size = len(net.image.data)
    assert whole.dram[:size] == layers.dram[:size]
    for counter in ("BYTES_WRITTEN", "ARRAY_BUSY"):
        assert whole.counters[counter] == layers.counters[counter], counter
    # Each layer adds one END (and its fetch) to the one program's instructions.
    assert layers.counters["INSTRUCTIONS"] == whole.counters["INSTRUCTIONS"] + len(net.layers) - 1
    whole_predicted = predict_program(net.config, net.program, program_address=net.program_address)
    assert abs(whole_predicted.cycles / whole.counters["CYCLES"] - 1) < TOLERANCE
    rows = layer_figures(net, layers.segments)
    assert sum(row.cycles for row in rows) == layers.counters["CYCLES"]


def test_a_token_no_earlier_instruction_pushed_is_refused():
    """A COMPUTE waiting for a LOAD's token that comes after it in program order would wait for ever in the
    hardware (in-order fetch and queues); the model refuses it, as the ISA simulator does."""
    config = AcceleratorConfig(ArrayConfig(4, 4, "ws", "int8"), spad_kib=1, acc_kib=1)
    program = [Instruction(Opcode.COMPUTE, {"beats": 4, "mode": ArithMode.INT8}, pop_prev=True),
               Instruction(Opcode.LOAD, {"target": Target.ACTIVATIONS, "rows": 4, "row_elems": 0}, push_next=True),
               Instruction(Opcode.END, {})]
    with pytest.raises(IsaError, match="instruction 0 waits for a load->compute token that no earlier"):
        predict_program(config, program)


def test_a_load_writing_alike_starts_while_the_last_one_drains():
    """The load unit takes a LOAD that writes rows as the last one does (a scratchpad, same row length and
    padding) while the last one's bursts drain, so the read channel idles no cycle between the two; a LOAD
    that writes otherwise waits until the last one has retired. The model times both as the RTL does, and
    both LOADs' data arrives intact, each in its own scratchpad: a COMPUTE of the first one's last rows
    (with the second one's first rows where it loads weights) and a STORE give the ISA simulator's DRAM."""
    from sim.fast_runner import run_fast
    config = AcceleratorConfig(ArrayConfig(4, 4, "os", "int8"), spad_kib=4, acc_kib=1)
    rng = np.random.default_rng(0)
    image = MemoryImage(config.bus_bytes)
    rows = image.place_rows("rows", rng.integers(-128, 128, size=(128, config.bus_bytes)))
    records = image.place_rows("records", pack_channel_records([0] * 4, [1 << 14] * 4, [-7] * 4, [0] * 4)
                               .reshape(1, -1), dtype="u1")
    out = image.allocate_rows("out", 4, config.bus_bytes)
    cycles, predicted = {}, {}
    # The second LOAD: into the activations or the weights, with the first one's padding or other padding.
    for second, pad_value in itertools.product((Target.ACTIVATIONS, Target.WEIGHTS), (0, 1)):
        first = Instruction(Opcode.LOAD, {"target": Target.ACTIVATIONS, "sram_addr": 0, "row_elems": 4,
                                          "dram_addr": rows.address, "rows": 64, "row_stride": rows.row_stride})
        then = Instruction(Opcode.LOAD, {"target": second, "sram_addr": 64 if second == Target.ACTIVATIONS else 0,
                                         "row_elems": 4, "dram_addr": rows.address + 64 * rows.row_stride,
                                         "rows": 64, "row_stride": rows.row_stride, "pad_value": pad_value})
        loads = [first, then, Instruction(Opcode.LOAD, {"target": Target.CHANNELS, "dram_addr": records.address,
                                                        "row_elems": 4, "rows": 1})]
        if second == Target.ACTIVATIONS:
            loads.append(Instruction(Opcode.LOAD, {"target": Target.WEIGHTS, "dram_addr": rows.address,
                                                   "row_elems": 4, "rows": 4, "row_stride": rows.row_stride}))
        loads[-1] = dataclasses.replace(loads[-1], push_next=True)
        program = [Instruction(Opcode.CONFIG, {"mode": ArithMode.INT8, "zero_point": 0, "clamp_min": -128,
                                               "clamp_max": 127}),
                   *loads,
                   Instruction(Opcode.COMPUTE, {"act_addr": 60, "beats": 4, "mode": ArithMode.INT8}, pop_prev=True,
                               push_next=True),
                   Instruction(Opcode.STORE, {"dram_addr": out.address, "rows": 4, "row_stride": out.row_stride,
                                              "channels": 4}, pop_prev=True),
                   Instruction(Opcode.END, {})]
        trial = MemoryImage(config.bus_bytes, bytearray(image.data), dict(image.regions))
        region = trial.place_program("program", program)
        outcome = run_fast(config, bytes(trial.data), region.address, len(program))
        assert outcome.done and outcome.error is None, outcome
        expected = bytearray(trial.data)
        IsaSimulator(config, expected).run(region.address, len(program))
        assert outcome.dram[:len(expected)] == bytes(expected)
        assert len(set(expected[out.address:out.address + out.size])) > 4       # not a constant output
        cycles[second, pad_value] = outcome.counters["CYCLES"]
        predicted[second, pad_value] = predict_program(config, program, program_address=region.address).cycles
    # The overlap saves the read channel's idle cycles between the two LOADs (6), in the RTL and in the model
    # (whose start-up of so short a program is 2 cycles long).
    for second in (Target.ACTIVATIONS, Target.WEIGHTS):
        alike, unlike = (second, 0), (second, 1)
        assert cycles[unlike] - cycles[alike] == predicted[unlike] - predicted[alike] == 6, (cycles, predicted)
    assert all(abs(predicted[key] - cycles[key]) <= 2 for key in cycles), (cycles, predicted)


def test_paired_depthwise_is_timed_from_its_beats():
    """A 3x3 stride-2 depthwise layer on 16x16 OS takes paired COMPUTEs (``quant.depthwise``: both phases of
    a window row in one chain of R-beat runs, a repeating COMPUTE); the model times each run from its beats
    like any OS depthwise COMPUTE (its secondary reader streams with the activation reader). (The utilization
    this gives is a benchmark figure: the README's, from tools/run.py.)"""
    config = AcceleratorConfig(ArrayConfig(16, 16, "os", "int8"))
    rng = np.random.default_rng(0)
    x, window = rng.integers(-128, 128, size=(56, 56, 32)), Window(3, 2, 1)
    scales = [quantize_multiplier(s) for s in rng.uniform(1e-4, 1e-2, 32)]
    program = compile_depthwise(config, x, rng.integers(-128, 128, (3, 3, 32)), window, rng.integers(-3000, 3000, 32),
                                np.array([m for m, _ in scales]), np.array([s for _, s in scales]), on_array=True)
    computes = [i.fields for i in program.program if i.opcode == Opcode.COMPUTE]
    assert computes and all(f["paired"] and f["beats"] == 16 for f in computes)
    predicted = predict_program(config, program.program, program_address=program.program_address)
    assert max(f["repeat"] for f in computes) > 0
    runs = sum(f["repeat"] + 1 for f in computes)
    assert predicted.array_busy == 16 * runs and predicted.instructions == len(program.program)
