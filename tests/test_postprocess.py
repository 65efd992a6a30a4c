# amaranth: UnusedElaboratable=no
"""The post-processing unit in Verilator, bit-exact against numerics.store_rows."""
import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.lib import data

from hdl.config import DspPrimitive
from hdl.generate import top_ports
from hdl.numerics import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    MULTIPLIER_FRACTION_BITS,
    MULTIPLIER_MAX,
    MULTIPLIER_MIN,
    SHIFT_RANGE,
    ArithMode,
    quantize_multiplier,
    store_rows,
)
from hdl.postprocess import (
    BANKS,
    PostProcessor,
    accumulator_row_layout,
    channel_params_layout,
    output_params_layout,
    output_row_layout,
)
from sim.play import play_streams
from sim.verilator import VerilatorModel


def random_params(rng, lanes, mode, realistic):
    if realistic:
        scales = rng.uniform(1e-6, 4.0, size=lanes)
        multipliers, shifts = map(np.array, zip(*(quantize_multiplier(s) for s in scales)))
    else:   # anything the fields can hold, including the saturating INT32_MIN * MULTIPLIER_MIN
        multipliers = rng.choice([MULTIPLIER_MIN, MULTIPLIER_MAX, 0, -1, 1 << (MULTIPLIER_FRACTION_BITS - 1)],
                                 size=lanes)
        multipliers = np.where(rng.random(lanes) < 0.5, multipliers,
                               rng.integers(MULTIPLIER_MIN, MULTIPLIER_MAX, lanes, endpoint=True))
        shifts = rng.integers(SHIFT_RANGE.start, SHIFT_RANGE.stop, size=lanes)
    low, high = sorted(int(v) for v in rng.integers(INT8_MIN, INT8_MAX + 1, size=2))
    return {
        "bias": rng.integers(-(1 << 24), 1 << 24, size=lanes) if realistic else rng.integers(INT32_MIN, INT32_MAX, lanes),
        "multiplier": multipliers, "shift": shifts, "flip": rng.integers(0, 2, size=lanes),
        "mode": mode, "zero_point": int(rng.integers(INT8_MIN, INT8_MAX + 1)),
        "clamp_min": low if rng.random() < 0.5 else INT8_MIN, "clamp_max": high if rng.random() < 0.5 else INT8_MAX,
    }


def random_rows(rng, count, lanes):
    rows = rng.integers(INT32_MIN, INT32_MAX, size=(count, lanes), endpoint=True)
    corners = rng.random((count, lanes)) < 0.15
    return np.where(corners, rng.choice([INT32_MIN, INT32_MAX, 0, -1, 1], size=(count, lanes)), rows)


# The 13-lane unit forms its products in the ECP5 DSP block's model (sim/primitives.py).
@pytest.mark.parametrize("lanes, primitive", [(3, None), (8, None), (13, DspPrimitive.ECP5)])
def test_post_processing_is_bit_exact(lanes, primitive, seed):
    rng = np.random.default_rng(seed)
    post = PostProcessor(lanes, primitive)
    model = VerilatorModel(verilog.convert(post, name=f"postprocess_{lanes}", ports=top_ports(post), emit_src=False),
                           f"postprocess_{lanes}").build()
    channels_layout = data.ArrayLayout(channel_params_layout(), lanes)
    runs, expected = [], []
    for index in range(8):
        mode = ArithMode.BINARY if index % 4 == 3 else ArithMode.INT8
        # Both banks hold parameters; each row picks one (the rows of consecutive STOREs interleave so).
        sets = [random_params(rng, lanes, mode, realistic=index % 2 == 0) for _ in range(BANKS)]
        params = sets[0]
        rows = random_rows(rng, 40, lanes)
        banks = rng.integers(0, BANKS, size=len(rows)) if index % 2 else np.full(len(rows), index // 2 % BANKS)
        channels = data.ArrayLayout(channels_layout, BANKS).const([[
            {name: int(chosen[name][lane]) for name in ("bias", "multiplier", "shift", "flip")}
            for lane in range(lanes)] for chosen in sets]).as_bits()
        output_params = output_params_layout().const(
            {name: params[name] for name in ("mode", "zero_point", "clamp_min", "clamp_max")}).as_bits()
        in_layout = accumulator_row_layout(lanes)
        beats = [in_layout.const({"data": [int(v) for v in row], "last": i == len(rows) - 1,
                                  "bank": int(banks[i])}).as_bits()
                 for i, row in enumerate(rows)]
        throttled = index >= 6
        kept = [lanes if index % 3 == 0 else int(rng.integers(0, lanes + 1)) for _ in range(BANKS)]
        runs.append({"inputs": {"rows_in": beats}, "output": "rows_out", "output_beats": len(rows),
                     "static": {"channel_params": channels, "params": output_params,
                                "channels": data.ArrayLayout(range(lanes + 1), BANKS).const(kept).as_bits()},
                     "seed": index,
                     "valid_probability": 0.5 if throttled else 1.0})
        want = np.array([store_rows(row[None], sets[b]["bias"], sets[b]["multiplier"], sets[b]["shift"],
                                    sets[b]["flip"], mode, params["zero_point"], params["clamp_min"],
                                    params["clamp_max"], kept[b])[0] for row, b in zip(rows, banks)])
        expected.append((want, params, banks))
    out_layout = output_row_layout(lanes)
    for index, (outcome, (want, params, banks)) in enumerate(zip(play_streams(model, runs), expected)):
        beats = [out_layout.from_bits(bits) for bits in outcome["outputs"]]
        got = np.array([list(beat.data) for beat in beats])
        assert [int(beat.last) for beat in beats] == [0] * (len(beats) - 1) + [1]
        assert [int(beat.bank) for beat in beats] == list(banks)
        mismatch = np.argwhere(got != want)
        assert mismatch.size == 0, (f"run {index} (seed {seed}), {len(mismatch)} lanes differ, first at "
                                    f"{tuple(mismatch[0])}: got {got[tuple(mismatch[0])]}, want "
                                    f"{want[tuple(mismatch[0])]}; params {params}")
        if index < 6:
            assert outcome["cycles"] == len(beats) + PostProcessor.STAGES     # one row per cycle


def test_lanes_are_validated():
    with pytest.raises(ValueError, match="lanes must be an integer from 1 to 64, not 0"):
        PostProcessor(0)
