"""Requantization rules (TFLite / gemmlowp, with a 16-bit multiplier) against a scalar transcription of the C++
reference."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdl.numerics import (
    INT32_MAX,
    INT32_MIN,
    MULTIPLIER_FRACTION_BITS,
    MULTIPLIER_MAX,
    MULTIPLIER_MIN,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    requantize,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)


def srdhm_scalar(a: int, b: int) -> int:
    """gemmlowp/fixedpoint.h, line by line with Python ints, for a MULTIPLIER_FRACTION_BITS fraction."""
    fraction = MULTIPLIER_FRACTION_BITS
    if a == INT32_MIN and b == MULTIPLIER_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << (fraction - 1)) if ab >= 0 else 1 - (1 << (fraction - 1))
    total = ab + nudge
    return int(total / (1 << fraction)) if abs(total) < (1 << 52) else \
        (abs(total) >> fraction) * (1 if total >= 0 else -1)


def rdbp_scalar(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


int32 = st.integers(INT32_MIN, INT32_MAX)
multipliers = st.integers(MULTIPLIER_MIN, MULTIPLIER_MAX)


@settings(max_examples=300, deadline=None)
@given(a=int32, b=multipliers)
def test_srdhm_matches_reference(a, b):
    assert saturating_rounding_doubling_high_mul(a, b) == srdhm_scalar(a, b)


@settings(max_examples=300, deadline=None)
@given(x=int32, exponent=st.integers(0, 31))
def test_rounding_divide_matches_reference(x, exponent):
    assert rounding_divide_by_pot(x, exponent) == rdbp_scalar(x, exponent)


def test_rounding_ties_go_away_from_zero():
    assert rounding_divide_by_pot(5, 1) == 3 and rounding_divide_by_pot(-5, 1) == -3
    assert rounding_divide_by_pot(4, 1) == 2 and rounding_divide_by_pot(-7, 2) == -2
    assert saturating_rounding_doubling_high_mul(INT32_MIN, MULTIPLIER_MIN) == INT32_MAX
    assert saturating_rounding_doubling_high_mul(INT32_MIN, MULTIPLIER_MAX) == INT32_MIN + (1 << 16)


HALF = 1 << (MULTIPLIER_FRACTION_BITS - 1)     # the multiplier of 0.5 x 2**shift


@pytest.mark.parametrize("real, expected", [(0.5, (HALF, 0)), (1.0, (HALF, 1)), (0.25, (HALF, -1)),
                                            (0.75, (3 * HALF // 2, 0))])
def test_quantize_multiplier(real, expected):
    assert quantize_multiplier(real) == expected


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), 2.0 ** -40])
def test_quantize_multiplier_rejects(bad):
    with pytest.raises(ValueError, match="Requantization scale"):
        quantize_multiplier(bad)


def test_requantize_is_within_one_lsb_of_float():
    rng = np.random.default_rng(5)
    acc = rng.integers(-(1 << 20), 1 << 20, size=(64, 8))
    bias = rng.integers(-5000, 5000, size=8)
    scales = rng.uniform(1e-5, 0.02, size=8)
    multipliers, shifts = zip(*(quantize_multiplier(s) for s in scales))
    got = requantize(acc, bias, np.array(multipliers), np.array(shifts), zero_point=-3)
    exact = np.clip(np.round((acc + bias) * scales) - 3, -128, 127)
    assert np.abs(got.astype(np.int64) - exact).max() <= 1


def test_requantize_clamps_for_relu6():
    got = requantize(np.array([-1000, 0, 50, 5000]), 0, *quantize_multiplier(0.1), zero_point=0,
                     clamp_min=0, clamp_max=60)
    np.testing.assert_array_equal(got, [0, 0, 5, 60])


def test_left_shift_multiplier():
    multiplier, shift = quantize_multiplier(3.0)
    assert shift == 2
    assert multiply_by_quantized_multiplier(1000, multiplier, shift) == 3000
