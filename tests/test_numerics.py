"""The shared arithmetic rules: the golden GEMM against lane-by-lane definitions."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdl.numerics import (
    ACC_BITS,
    ArithMode,
    binary_lane_dot,
    binary_signs,
    golden_gemm,
    golden_paired_depthwise,
    neutral_padding,
    random_operands,
    wrap_acc,
)


def lane_by_lane(a, w, mode):
    """A deliberately naive GEMM: one MAC at a time, wrapping after each."""
    (m, k), n = a.shape, w.shape[1]
    out = np.zeros((m, n), dtype=np.int64)
    for i in range(m):
        for j in range(n):
            acc = 0
            for d in range(k):
                step = a[i, d] * w[d, j] if mode == ArithMode.INT8 else binary_lane_dot(a[i, d], w[d, j])
                acc = int(wrap_acc(acc + step))
            out[i, j] = acc
    return out


@settings(max_examples=60, deadline=None)
@given(mode=st.sampled_from(list(ArithMode)), m=st.integers(1, 5), k=st.integers(1, 12),
       n=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_golden_gemm_matches_mac_by_mac(mode, m, k, n, seed):
    a, w = random_operands(np.random.default_rng(seed), m, k, n)
    np.testing.assert_array_equal(golden_gemm(a, w, mode), lane_by_lane(a, w, mode))


def test_binary_encoding_bit_one_is_plus_one():
    np.testing.assert_array_equal(binary_signs([0b0000_0101]), [1, -1, 1, -1, -1, -1, -1, -1])
    assert binary_lane_dot(-1, -1) == 8          # 0xFF against 0xFF: all agree
    assert binary_lane_dot(0, -1) == -8          # all disagree
    assert golden_gemm([[0]], [[0]], ArithMode.BINARY)[0, 0] == 8


def test_accumulator_wraps_modulo_2_to_the_32():
    top = (1 << (ACC_BITS - 1)) - 1
    assert wrap_acc(top + 1) == -(1 << (ACC_BITS - 1))
    k = (1 << (ACC_BITS - 1)) // (128 * 128) + 1   # enough -128 * -128 products to overflow
    a = np.full((1, k), -128)
    assert golden_gemm(a, a.T, ArithMode.INT8)[0, 0] == int(wrap_acc(k * 128 * 128))
    assert golden_gemm(a, a.T, ArithMode.INT8)[0, 0] < 0


@pytest.mark.parametrize("mode", list(ArithMode))
def test_neutral_padding_adds_nothing(mode):
    act, weight = neutral_padding(mode)
    rng = np.random.default_rng(3)
    a, w = random_operands(rng, 4, 5, 3)
    padded_a = np.hstack([a, np.full((4, 2), act)])
    padded_w = np.vstack([w, np.full((2, 3), weight)])
    np.testing.assert_array_equal(golden_gemm(padded_a, padded_w, mode), golden_gemm(a, w, mode))


def test_golden_gemm_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"must be \(M, K\) and \(K, N\), not \(2, 3\) and \(4, 1\)"):
        golden_gemm(np.zeros((2, 3)), np.zeros((4, 1)), ArithMode.INT8)


def test_golden_paired_depthwise_matches_a_stride_2_window(seed):
    """A paired correlation of the even and odd columns of a row is its stride-2 3-wide correlation
    with the taps in the order 1, 0, 2 (``hdl.isa.COMPUTE``'s paired form)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (40, 5))
    w = rng.integers(-128, 128, (3, 5))
    outputs = (len(x) - 3) // 2 + 1
    direct = np.array([[sum(int(x[2 * i + dx, lane]) * int(w[dx, lane]) for dx in range(3)) for lane in range(5)]
                       for i in range(outputs)])
    primary = np.concatenate([np.zeros((1, 5), dtype=np.int64), x[0::2]])   # primary[n] = x[2n - 2]
    secondary = x[1::2][:len(primary)]
    secondary = np.concatenate([secondary, np.zeros((len(primary) - len(secondary), 5), dtype=np.int64)])
    got = golden_paired_depthwise(primary, secondary, w[[1, 0, 2]])
    np.testing.assert_array_equal(got[:outputs], direct)


def test_golden_paired_depthwise_rejects_streams_of_different_shapes():
    with pytest.raises(ValueError, match="one shape"):
        golden_paired_depthwise(np.zeros((4, 2)), np.zeros((3, 2)), np.zeros((3, 2)))
