"""Pooling, residual add and depthwise convolution on the accumulator path (COMBINE loads).

Programs from ``quant.vector`` run on the ISA simulator against direct numpy
formulations (window loops over a padded image), and on the RTL against the
ISA simulator's final DRAM.
"""
import numpy as np
import pytest

from hdl.config import AcceleratorConfig, ArrayConfig
from hdl.numerics import INT8_MIN, quantize_multiplier, requantize
from quant.depthwise import DepthwisePlan
from quant.isasim import IsaSimulator
from quant.vector import Window, compile_add, compile_depthwise, compile_pool, output_size
from sim.accelerator_runner import AcceleratorRun, accelerator_model, run_programs

# Small memories (64 accumulator rows) force several output-row tiles per channel block.
# Without the array's depthwise mode, so that depthwise convolutions take the accumulator path.
CONFIG = AcceleratorConfig(ArrayConfig(4, 4, "os", "int8", depthwise=False), spad_kib=1, acc_kib=1, bus_bits=128)
WINDOWS = [Window(3, 1, 1), Window(3, 2, 1), Window(2, 2, 0), Window(3, 2, 0), Window(1, 1, 0)]


def windows_of(x, window, pad_value):
    """(OH, OW, k*k, C): every window tap of every output pixel, borders filled with pad_value."""
    p, k, s = window.padding, window.kernel, window.stride
    padded = np.pad(x, ((p, p), (p, p), (0, 0)), constant_values=pad_value)
    oh, ow = output_size(x.shape[0], window), output_size(x.shape[1], window)
    return np.stack([padded[dy:dy + s * oh:s, dx:dx + s * ow:s] for dy in range(k) for dx in range(k)], axis=2)


def run_isa(compiled):
    dram = bytearray(compiled.image.data)
    IsaSimulator(compiled.config, dram).run(compiled.program_address, len(compiled.program))
    return bytes(dram)


def random_image(rng, height=9, width=7, channels=6):
    return rng.integers(-128, 128, size=(height, width, channels))


@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_max_pooling_is_the_window_maximum(window, seed):
    x = random_image(np.random.default_rng(seed))
    compiled = compile_pool(CONFIG, x, window, "max")
    assert np.array_equal(compiled.read_output(run_isa(compiled)), windows_of(x, window, INT8_MIN).max(axis=2))


@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_average_pooling_requantizes_the_window_sum(window, seed):
    x = random_image(np.random.default_rng(seed))
    compiled = compile_pool(CONFIG, x, window, "avg")
    multiplier, shift = quantize_multiplier(1 / window.kernel ** 2)
    expected = requantize(windows_of(x, window, 0).sum(axis=2), 0, multiplier, shift, 0)
    assert np.array_equal(compiled.read_output(run_isa(compiled)), expected)


def test_residual_add_requantizes_the_scaled_sum(seed):
    rng = np.random.default_rng(seed)
    a, b = random_image(rng), random_image(rng)
    ka, kb = int(rng.integers(-30000, 30000)), int(rng.integers(-30000, 30000))
    multiplier, shift = quantize_multiplier(1 / 40000)
    compiled = compile_add(CONFIG, a, b, ka, kb, multiplier, shift)
    expected = requantize(a * ka + b * kb, 0, multiplier, shift, 0)
    assert np.array_equal(compiled.read_output(run_isa(compiled)), expected)


@pytest.mark.parametrize("window", WINDOWS[:3], ids=str)
def test_depthwise_convolution_per_channel(window, seed):
    rng = np.random.default_rng(seed)
    x = random_image(rng)
    channels = x.shape[2]
    weights = rng.integers(-128, 128, size=(window.kernel, window.kernel, channels))
    bias = rng.integers(-3000, 3000, channels)
    multiplier, shift = map(np.array, zip(*(quantize_multiplier(s) for s in rng.uniform(1e-4, 1e-2, channels))))
    compiled = compile_depthwise(CONFIG, x, weights, window, bias, multiplier, shift)
    acc = (windows_of(x, window, 0) * weights.reshape(1, 1, -1, channels)).sum(axis=2)
    expected = requantize(acc, bias, multiplier, shift, 0)
    assert np.array_equal(compiled.read_output(run_isa(compiled)), expected)


def test_bad_windows_and_shapes_are_refused():
    with pytest.raises(ValueError, match="padding < kernel"):
        Window(2, 1, 2)
    with pytest.raises(ValueError, match="must be 'max' or 'avg'"):
        compile_pool(CONFIG, np.zeros((2, 2, 2)), Window(2), "min")
    with pytest.raises(ValueError, match="one shape"):
        compile_add(CONFIG, np.zeros((2, 2, 2)), np.zeros((2, 3, 2)), 1, 1, *quantize_multiplier(0.5))


def test_every_operation_is_bit_exact_in_rtl(seed):
    rng = np.random.default_rng(seed)
    x = random_image(rng, 6, 5, 6)
    weights = rng.integers(-128, 128, size=(3, 3, 6))
    scales = map(np.array, zip(*(quantize_multiplier(s) for s in rng.uniform(1e-4, 1e-2, 6))))
    programs = [compile_pool(CONFIG, x, Window(3, 2, 1), "max"), compile_pool(CONFIG, x, Window(2, 2, 0), "avg"),
                compile_add(CONFIG, x, random_image(rng, 6, 5, 6), 300, -200, *quantize_multiplier(1 / 500)),
                compile_depthwise(CONFIG, x, weights, Window(3, 1, 1), rng.integers(-3000, 3000, 6), *scales)]
    runs = [AcceleratorRun(bytes(p.image.data), p.program_address, len(p.program), backpressure=i % 2 == 1, seed=i)
            for i, p in enumerate(programs)]
    for program, outcome in zip(programs, run_programs(CONFIG, runs, accelerator_model(CONFIG))):
        expected = run_isa(program)
        assert outcome.done, outcome
        assert outcome.dram[:len(expected)] == expected


WS_CONFIG = AcceleratorConfig(ArrayConfig(4, 4, "ws", "int8"), spad_kib=1, acc_kib=1, bus_bits=128)


@pytest.mark.parametrize("config", [WS_CONFIG, AcceleratorConfig(ArrayConfig(3, 5, "ws", "int8"), spad_kib=1,
                                                                  acc_kib=1, bus_bits=64),
                                    AcceleratorConfig(ArrayConfig(4, 4, "os", "int8"), spad_kib=1, acc_kib=1),
                                    AcceleratorConfig(ArrayConfig(3, 5, "os", "int8"), spad_kib=1, acc_kib=1,
                                                      bus_bits=64)],
                         ids=lambda c: c.array.name)
@pytest.mark.parametrize("window", WINDOWS[:4] + [Window(5, 2, 2)], ids=str)
def test_depthwise_convolution_on_the_array(config, window, seed):
    """The array's depthwise mode (phases for strides, tiles of output rows) computes the same convolution."""
    rng = np.random.default_rng(seed)
    x = random_image(rng, 11, 13, 7)
    channels = x.shape[2]
    weights = rng.integers(-128, 128, size=(window.kernel, window.kernel, channels))
    bias = rng.integers(-3000, 3000, channels)
    multiplier, shift = map(np.array, zip(*(quantize_multiplier(s) for s in rng.uniform(1e-4, 1e-2, channels))))
    compiled = compile_depthwise(config, x, weights, window, bias, multiplier, shift, on_array=True)
    assert any(i.fields.get("depthwise") for i in compiled.program)
    acc = (windows_of(x, window, 0) * weights.reshape(1, 1, -1, channels)).sum(axis=2)
    expected = requantize(acc, bias, multiplier, shift, 0)
    assert np.array_equal(compiled.read_output(run_isa(compiled)), expected)


@pytest.mark.parametrize("rows", [8, 16])
@pytest.mark.parametrize("window", WINDOWS[:4] + [Window(5, 1, 2)], ids=str)
@pytest.mark.parametrize("width", [5, 13, 29])
def test_depthwise_stacks_window_rows_in_segments(rows, window, width, seed):
    """WS: narrow segments of the output rows let one COMPUTE take several window rows (stacks); the
    last segment's rows are stored one by one, the others' straddling rows overwritten by the next."""
    config = AcceleratorConfig(ArrayConfig(rows, rows, "ws", "int8"), spad_kib=rows // 2, acc_kib=rows // 2)
    rng = np.random.default_rng(seed)
    x = random_image(rng, 9, width, rows + 3)
    channels = x.shape[2]
    weights = rng.integers(-128, 128, size=(window.kernel, window.kernel, channels))
    bias = rng.integers(-3000, 3000, channels)
    multiplier, shift = map(np.array, zip(*(quantize_multiplier(s) for s in rng.uniform(1e-4, 1e-2, channels))))
    compiled = compile_depthwise(config, x, weights, window, bias, multiplier, shift, on_array=True)
    acc = (windows_of(x, window, 0) * weights.reshape(1, 1, -1, channels)).sum(axis=2)
    expected = requantize(acc, bias, multiplier, shift, 0)
    assert np.array_equal(compiled.read_output(run_isa(compiled)), expected)


def test_depthwise_plans_stack_and_segment():
    """The plan takes stacks and segments where they save beats, and whole rows where they cannot (paired
    COMPUTEs do not stack: a 3-wide stride-2 window takes one per window row, in whole rows)."""
    config = AcceleratorConfig(ArrayConfig(16, 16, "ws", "int8"))
    wide = DepthwisePlan(config, (3, 3), (1, 1), 56, 56)
    assert (wide.segment_width, wide.width, wide.stack, len(wide.segments)) == (4, 6, 3, 14)
    unpaired = AcceleratorConfig(ArrayConfig(16, 16, "ws", "int8", paired=False))
    strided = DepthwisePlan(unpaired, (3, 3), (2, 2), 56, 56)
    assert (strided.segment_width, strided.stack, [len(s) for s in strided.stacks]) == (7, 2, [1, 1])
    paired = DepthwisePlan(config, (3, 3), (2, 2), 56, 56)
    assert (paired.paired, paired.segment_width, paired.stack, [len(s) for s in paired.stacks]) == (True, 28, 1, [2, 1])
    assert DepthwisePlan(config, (3, 3), (1, 1), 56, 56)._layout(56)[-1] > 1.9 * wide._layout(4)[-1]
    for os_plan in (DepthwisePlan(AcceleratorConfig(ArrayConfig(16, 16, "os", "int8")), (3, 3), (1, 1), 56, 56),
                    DepthwisePlan(AcceleratorConfig(ArrayConfig(4, 4, "ws", "int8")), (3, 3), (1, 1), 56, 56)):
        assert (os_plan.segment_width, os_plan.stack, len(os_plan.segments)) == (56, 1, 1)


# The 8x8 WS accelerator is test_compiler's (one Verilator build for both files).
STACKING_CONFIG = AcceleratorConfig(ArrayConfig(8, 8, "ws", "both"), spad_kib=2, acc_kib=4, bus_bits=64,
                                    channel_rows=6)
RTL_CASES = {
    "ws": [((7, 9), Window(3, 2, 1)), ((7, 9), Window(2, 2, 0)), ((7, 9), Window(3, 2, 0))],
    "os": [((7, 9), Window(3, 2, 1)), ((7, 9), Window(2, 2, 0)), ((7, 9), Window(3, 2, 0))],
    # stacked window rows in three segments; paired COMPUTEs at stride 2 in whole rows (no stacks: stacks at
    # stride 2 are test_compiler's, on arrays without paired COMPUTEs); segments of one window row each
    "stacking": [((7, 9), Window(3, 1, 1)), ((7, 13), Window(3, 2, 0)), ((7, 13), Window(5, 1, 2))],
}


@pytest.mark.parametrize("case", RTL_CASES)
def test_depthwise_on_the_array_is_bit_exact_in_rtl(case, seed):
    """The array-mode programs (tokens, double buffering, phases, stacks, segments) in RTL, with AXI
    back-pressure; OS on an array without paired COMPUTEs (2 rows take a 3-wide window in phases anyway)."""
    config = STACKING_CONFIG if case == "stacking" else \
        AcceleratorConfig(ArrayConfig(2, 3, case, "both", paired=False if case == "os" else None), spad_kib=1,
                          acc_kib=1, bus_bits=64)
    rng = np.random.default_rng(seed)
    programs, channels = [], 10 if case == "stacking" else 5
    for size, window in RTL_CASES[case]:
        x = random_image(rng, *size, channels)
        weights = rng.integers(-128, 128, size=(window.kernel, window.kernel, channels))
        scales = map(np.array, zip(*(quantize_multiplier(s) for s in rng.uniform(1e-4, 1e-2, channels))))
        programs.append(compile_depthwise(config, x, weights, window, rng.integers(-3000, 3000, channels),
                                          *scales, on_array=True))
    if case == "stacking":
        plans = [DepthwisePlan(config, (w.kernel,) * 2, (w.stride,) * 2, output_size(h, w), output_size(wd, w))
                 for (h, wd), w in RTL_CASES[case]]
        assert [(plan.stack, len(plan.segments), plan.paired) for plan in plans] == \
            [(2, 3, False), (1, 1, True), (1, 2, False)]
    runs = [AcceleratorRun(bytes(p.image.data), p.program_address, len(p.program), backpressure=i % 2 == 0, seed=i)
            for i, p in enumerate(programs)]
    for program, outcome in zip(programs, run_programs(config, runs, accelerator_model(config))):
        expected = run_isa(program)
        assert outcome.done and outcome.error is None, outcome
        assert outcome.dram[:len(expected)] == expected


def test_depthwise_without_the_mode_runs_on_the_accumulator_path(seed):
    rng = np.random.default_rng(seed)
    x, weights = random_image(rng), rng.integers(-128, 128, size=(3, 3, 6))
    scales = [np.zeros(6, dtype=np.int64), *map(np.array, zip(*[quantize_multiplier(1e-3)] * 6))]
    for config in (CONFIG, AcceleratorConfig(ArrayConfig(4, 4, "ws", "int8", depthwise=False), spad_kib=1, acc_kib=1)):
        with pytest.raises(ValueError, match="has no depthwise mode"):
            compile_depthwise(config, x, weights, Window(3, 1, 1), *scales, on_array=True)
        compiled = compile_depthwise(config, x, weights, Window(3, 1, 1), *scales)
        assert not any(i.fields.get("depthwise") for i in compiled.program)
        assert any(i.fields.get("lane_scales") for i in compiled.program)
    with pytest.raises(ValueError, match="horizontal stride of 3"):
        compile_depthwise(WS_CONFIG, x, weights, Window(3, 3, 0), *scales, on_array=True)
