"""The generated systolic array in Verilator, bit-exact against the golden model.

One Verilator model per configuration (cached across runs by the Verilog's
hash); each test runs all its GEMMs in one simulation.
"""
import numpy as np
import pytest

from hdl.config import ArithSupport, ArrayConfig, Dataflow
from hdl.numerics import ArithMode, golden_depthwise, golden_gemm, golden_paired_depthwise, random_operands
from hdl.systolic_array import activation_beat_layout, result_beat_layout, stream_cycles, weight_beat_layout
from sim.array_runner import GemmCase, array_model, run_gemms
from sim.play import play_streams
from sim.array_stream import golden_tile

CONFIGS = [ArrayConfig(rows, cols, dataflow, arith)
           for rows, cols in [(2, 2), (3, 5), (8, 8)]
           for dataflow in Dataflow for arith in ArithSupport]
CONFIGS += [ArrayConfig(rows, cols, dataflow, "both")
            for rows, cols in [(1, 1), (5, 3)] for dataflow in Dataflow]


def extreme_operands(rng, mode, m, k, n):
    if mode == ArithMode.INT8:
        corners = np.array([-128, 127, 0, -1, 1])
        return [(np.full((m, k), -128), np.full((k, n), -128)),
                (np.full((m, k), 127), np.full((k, n), -128)),
                (rng.choice(corners, (m, k)), rng.choice(corners, (k, n)))]
    ones, zeros = -1, 0            # 0xFF and 0x00 as int8 lanes
    return [(np.full((m, k), ones), np.full((k, n), ones)),
            (np.full((m, k), ones), np.full((k, n), zeros)),
            (np.full((m, k), zeros), np.full((k, n), zeros)),
            (rng.choice([ones, zeros, 0x0F, 0x55], (m, k)), rng.choice([ones, zeros], (k, n)))]


def gemm_cases(config, rng):
    rows, cols = config.rows, config.cols
    cases = []
    for mode in config.modes:
        shapes = [(1, 1, 1), (rows + 1, 2 * rows + 1, cols + 1), (2 * rows + 3, 3 * rows + 2, 2 * cols - 1)]
        shapes += [tuple(int(rng.integers(1, 3 * limit + 4)) for limit in (rows, rows, cols))
                   for _ in range(3)]
        for shape in shapes:
            cases.append(GemmCase(*random_operands(rng, *shape), mode))
        for a, w in extreme_operands(rng, mode, rows + 2, rows + 3, cols + 1):
            cases.append(GemmCase(a, w, mode))
        long_k = 24 * rows + 7
        cases.append(GemmCase(*random_operands(rng, rows, long_k, cols), mode))
        cases.append(GemmCase(*random_operands(rng, 2 * rows + 1, 2 * rows + 3, cols + 2), mode,
                              seed=int(rng.integers(1 << 31)), valid_probability=0.6))
    return cases


def check(config, outcome, seed, index):
    case = outcome.case
    where = (f"{config.name} case {index} ({case.mode.name}, A {case.a.shape} @ W {case.w.shape}), "
             f"seed {seed}")
    for tile, partial in zip(outcome.streams.tiles, outcome.partials):
        expected = golden_tile(case.a, case.w, tile, case.mode)
        assert np.array_equal(partial, expected), f"{where}: tile {tile} differs:\n{partial}\nexpected\n{expected}"
    assert np.array_equal(outcome.product, golden_gemm(case.a, case.w, case.mode)), where
    if case.valid_probability == 1.0:
        expected_cycles = stream_cycles(config, len(outcome.streams.tiles), outcome.streams.beats_per_tile)
        assert outcome.cycles == expected_cycles, f"{where}: {outcome.cycles} cycles, formula {expected_cycles}"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_random_extreme_and_long_gemms_are_bit_exact(config, seed):
    rng = np.random.default_rng(seed)
    cases = gemm_cases(config, rng)
    for index, outcome in enumerate(run_gemms(config, cases)):
        check(config, outcome, seed, index)


@pytest.mark.parametrize("dataflow", list(Dataflow), ids=lambda d: d.value)
def test_steady_state_one_mac_per_pe_per_cycle(dataflow, seed):
    """A long stream of full tiles runs without a bubble: cycles = fill + beats + drain."""
    config = ArrayConfig(8, 8, dataflow, "both")
    rows, cols = config.rows, config.cols
    rng = np.random.default_rng(seed)
    if dataflow == Dataflow.OS:
        m, k, n = 2 * rows, 200, 2 * cols          # 4 output tiles, K = 200 beats each
    else:
        m, k, n = 200, 4 * rows, cols              # 4 weight tiles, M = 200 beats each
    (outcome,) = run_gemms(config, [GemmCase(*random_operands(rng, m, k, n), ArithMode.INT8)])
    check(config, outcome, seed, 0)
    tiles = len(outcome.streams.tiles)
    stream_beats = tiles * outcome.streams.beats_per_tile
    fill_and_drain = stream_cycles(config, tiles, outcome.streams.beats_per_tile) - stream_beats
    assert outcome.cycles == stream_beats + fill_and_drain
    # OS: skew across R + C - 1 PEs, R result rows, one readout register.
    # WS: the first R-beat weight preload, then the skew and the bottom row's register.
    assert fill_and_drain == 2 * rows + cols - 1
    utilization = m * k * n / (rows * cols * outcome.cycles)
    print(f"{config.name}: {outcome.cycles} cycles for {m}x{k}x{n}, utilization {utilization:.3f}")
    assert utilization >= stream_beats / (stream_beats + fill_and_drain) - 1e-9


def depthwise_and_gemm_tiles(config, rng, tiles=12):
    """Tiles, two of three depthwise: (depthwise, mode, activation beats, weight beats, kept result rows,
    secondary beats or None).

    WS weights are the R stationary rows; OS streams a weight row per beat, a depthwise tile's
    taps in its first T rows and 0 after them (int8: what the compute unit streams there). On
    arrays with paired depthwise tiles every other depthwise tile is paired (int8).
    """
    rows, cols = config.rows, config.cols
    cases = []
    for index in range(tiles):
        depthwise = index % 3 != 2
        if config.dataflow == Dataflow.WS:
            mode = ArithMode(int(rng.choice([m.value for m in config.modes])))
            beats = int(rng.integers(rows if depthwise else 1, 3 * rows + 6))
            w = rng.integers(-128, 128, (rows, cols))
            kept = beats - rows + 1 if depthwise else beats
        else:
            mode = ArithMode.INT8 if depthwise else ArithMode(int(rng.choice([m.value for m in config.modes])))
            beats = int(rng.integers(rows, 3 * rows + 6)) if depthwise else int(rng.integers(1, 3 * rows + 6))
            w = rng.integers(-128, 128, (beats, cols))
            kept = rows
            if depthwise:
                taps = int(rng.integers(1, rows + 1))
                w[taps:] = 0
                kept = min(rows, beats - taps + 1)
        x = rng.integers(-128, 128, (beats, rows))
        paired = depthwise and config.paired and index % 2 == 0
        if paired:
            mode = ArithMode.INT8
        cases.append((depthwise, mode, x, w, kept, rng.integers(-128, 128, x.shape) if paired else None))
    return cases


def expected_rows(config, depthwise, mode, x, w, kept, secondary):
    if not depthwise:
        return golden_gemm(x.T, w, mode) if config.dataflow == Dataflow.OS else golden_gemm(x, w, mode)

    def lanes(rows):
        columns = np.zeros((len(rows), config.cols), dtype=np.int64)
        columns[:, :min(config.rows, config.cols)] = rows[:, :config.cols]
        return columns

    taps = w[:len(x) - kept + 1]
    if secondary is not None:
        return golden_paired_depthwise(lanes(x), lanes(secondary), taps)[:kept]
    return golden_depthwise(lanes(x), taps, mode)[:kept]


# 3x5: columns beyond R multiply 0; 5x3: lanes beyond C unused; the pipelined array's extra stages
# and its operands selected a cycle early.
@pytest.mark.parametrize("config", [ArrayConfig(3, 5, dataflow, "both") for dataflow in Dataflow] +
                         [ArrayConfig(5, 3, dataflow, "both") for dataflow in Dataflow] +
                         [ArrayConfig(5, 3, dataflow, "both", "mixed", 4, pipelined=True) for dataflow in Dataflow] +
                         [ArrayConfig(3, 5, Dataflow.OS, "both", "lut", pipelined=True)] +
                         [ArrayConfig(3, 5, dataflow, "int8", "mixed", 9, pipelined=True, dsp_primitive="ecp5")
                          for dataflow in Dataflow],
                         ids=lambda c: c.name)
def test_depthwise_tiles_between_gemm_tiles_are_bit_exact(config, seed):
    """Depthwise beats correlate each column's channel with its taps, with input gaps between their
    tiles and anywhere in the GEMM tiles around them."""
    rng = np.random.default_rng(seed)
    act_layout, weight_layout = activation_beat_layout(config), weight_beat_layout(config)
    result_layout = result_beat_layout(config)
    os = config.dataflow == Dataflow.OS
    runs, plans = [], []
    for valid_probability in (1.0, 0.6):
        tiles = depthwise_and_gemm_tiles(config, rng)
        activations, weights = [], []
        # A depthwise tile's beats after its first come on consecutive cycles (OS: on both streams).
        gapless = {"activations": [], "weights": []}
        for depthwise, mode, x, w, _, secondary in tiles:
            if depthwise:
                gapless["activations"] += range(len(activations) + 1, len(activations) + len(x))
                if os:
                    gapless["weights"] += range(len(weights) + 1, len(weights) + len(w))
            weights += [weight_layout.const({"data": [int(v) for v in row]}).as_bits() for row in w]
            moded = {"mode": mode} if config.arith == ArithSupport.BOTH else {}
            for beat, row in enumerate(x):
                if config.paired:       # (OS: the tile's first beat; WS: every beat, for row 0)
                    moded["secondary"] = secondary is not None and (beat == 0 or not os)
                    moded["secondary_data"] = [int(v) for v in (secondary[beat] if secondary is not None
                                                                else rng.integers(-128, 128, len(row)))]
                activations.append(act_layout.const({"data": [int(v) for v in row], "last": beat == len(x) - 1,
                                                     "depthwise": depthwise, **moded}).as_bits())
        runs.append({"inputs": {"activations": activations, "weights": weights}, "output": "results",
                     "output_beats": len(tiles) * config.rows if os else len(activations),
                     "seed": int(rng.integers(1 << 31)),
                     "valid_probability": valid_probability, "gapless": gapless})
        plans.append(tiles)
    for run, tiles, outcome in zip(runs, plans, play_streams(array_model(config), runs)):
        beats = [result_layout.from_bits(bits) for bits in outcome["outputs"]]
        position = 0
        for index, (depthwise, mode, x, w, kept, secondary) in enumerate(tiles):
            result_rows = config.rows if os else len(x)
            tile_beats = beats[position:position + result_rows]
            position += result_rows
            assert [int(beat.last) for beat in tile_beats] == [0] * (result_rows - 1) + [1]
            expected = expected_rows(config, depthwise, mode, x, w, kept, secondary)
            got = np.array([list(beat.data) for beat in tile_beats[:kept]], dtype=np.int64)
            assert np.array_equal(got, expected), (
                f"{config.name} tile {index} (depthwise {depthwise}, paired {secondary is not None}, {mode.name}, "
                f"{len(x)} beats, valid "
                f"{run['valid_probability']}), seed {seed}:\n{got}\nexpected\n{expected}")
