"""The accelerator's integer arithmetic, defined once.

Everything that decides a bit of a result lives here: operand and accumulator
widths, the binary (XNOR-popcount) encoding, the accumulation rule, and the
numpy golden GEMM. The PE hardware takes its widths and mode encoding from this
module; tests, drivers and (later) the compiler take their reference results
from it.

Rules
-----
* int8 mode: operands are two's-complement int8; a MAC adds ``a * w`` to a
  32-bit accumulator that wraps modulo 2**32 (no saturation).
* binary mode: each 8-bit lane carries 8 binary values, bit 1 = +1 and
  bit 0 = -1. One lane-MAC adds ``sum_b a_b * w_b`` over the 8 bit positions,
  which the hardware computes as ``2 * popcount(xnor(a, w)) - 8``.
"""

import numpy as np
from amaranth.lib import enum as hdl_enum

__all__ = [
    "OPERAND_BITS", "ACC_BITS", "BINARY_VALUES_PER_LANE", "ArithMode",
    "wrap_acc", "binary_signs", "binary_lane_dot", "golden_gemm", "golden_depthwise", "golden_paired_depthwise",
    "neutral_padding",
    "random_operands", "INT32_MIN", "INT32_MAX", "INT8_MIN", "INT8_MAX", "MULTIPLIER_BITS", "MULTIPLIER_FRACTION_BITS",
    "MULTIPLIER_MIN", "MULTIPLIER_MAX",
    "SHIFT_BITS", "SHIFT_RANGE", "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier", "quantize_multiplier", "requantize", "binarize", "pack_bits",
    "store_rows", "stored_bytes", "Combine", "SCALE_BITS", "combine_rows",
]

OPERAND_BITS = 8
ACC_BITS = 32
BINARY_VALUES_PER_LANE = OPERAND_BITS

_LANE_MASK = (1 << OPERAND_BITS) - 1


class ArithMode(hdl_enum.Enum, shape=1):
    """Arithmetic of one operation; the encoding the hardware decodes."""
    INT8 = 0
    BINARY = 1


def wrap_acc(values) -> np.ndarray:
    """Reduce integers to the accumulator's two's-complement range (wrap, not saturate)."""
    values = np.asarray(values, dtype=np.int64)
    return ((values + (1 << (ACC_BITS - 1))) % (1 << ACC_BITS) - (1 << (ACC_BITS - 1))).astype(np.int32)


def binary_signs(lanes) -> np.ndarray:
    """Unpack 8-bit lanes (any integer dtype, read as their low 8 bits) into +1/-1 values.

    The last axis grows by a factor of 8; value ``b`` of a lane is bit ``b``.
    """
    lanes = np.asarray(lanes, dtype=np.int64) & _LANE_MASK
    bits = (lanes[..., None] >> np.arange(BINARY_VALUES_PER_LANE)) & 1
    return (2 * bits - 1).reshape(*lanes.shape[:-1], -1)


def binary_lane_dot(a, w) -> np.ndarray:
    """One binary lane-MAC, elementwise: ``2 * popcount(xnor(a, w)) - 8``."""
    agree = ~(np.asarray(a, dtype=np.int64) ^ np.asarray(w, dtype=np.int64)) & _LANE_MASK
    popcount = sum((agree >> b) & 1 for b in range(BINARY_VALUES_PER_LANE))
    return 2 * popcount - BINARY_VALUES_PER_LANE


def golden_gemm(a, w, mode: ArithMode) -> np.ndarray:
    """Reference ``a @ w`` for an (M, K) by (K, N) operand pair, as int32 accumulators.

    Binary mode multiplies the unpacked +1/-1 values, independently of the
    XNOR-popcount identity the hardware uses.
    """
    a = np.asarray(a, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"GEMM operands must be (M, K) and (K, N), not {a.shape} and {w.shape}")
    if mode == ArithMode.INT8:
        return wrap_acc(a @ w)
    if mode == ArithMode.BINARY:
        return wrap_acc(binary_signs(a) @ binary_signs(w.T).T)
    raise ValueError(f"Arithmetic mode must be an ArithMode, not {mode!r}")


def golden_depthwise(x, w, mode: ArithMode) -> np.ndarray:
    """Reference per-lane 1-D correlation (the array's depthwise mode) as int32 accumulators.

    ``x`` is (B, N) rows of N lanes, ``w`` (T, N) taps; row ``m`` of the
    (B - T + 1, N) result is ``sum_t x[m + t] * w[t]`` lane by lane (each lane
    a channel), with binary lanes multiplied as ``binary_lane_dot``.
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1] or x.shape[0] < w.shape[0]:
        raise ValueError(f"Depthwise operands must be (B, N) and (T, N) with B >= T, not {x.shape} and {w.shape}")
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[0], axis=0)     # (B - T + 1, N, T)
    taps = w.T[None]
    if mode == ArithMode.INT8:
        return wrap_acc((windows * taps).sum(axis=2))
    if mode == ArithMode.BINARY:
        return wrap_acc(binary_lane_dot(windows, taps).sum(axis=2))
    raise ValueError(f"Arithmetic mode must be an ArithMode, not {mode!r}")


def golden_paired_depthwise(primary, secondary, w) -> np.ndarray:
    """Reference paired depthwise correlation (``hdl.isa.COMPUTE``'s paired form) as int32 accumulators.

    ``primary`` and ``secondary`` are (B, N) rows, ``w`` (T, N) taps; row ``m`` of the (B - T + 1, N)
    result is ``secondary[m] * w[0] + sum_{t >= 1} primary[m + t] * w[t]`` lane by lane (int8).
    """
    primary, secondary, w = (np.asarray(v, dtype=np.int64) for v in (primary, secondary, w))
    if secondary.shape != primary.shape:
        raise ValueError(f"Paired depthwise streams must have one shape, not {primary.shape} and {secondary.shape}")
    later_taps = np.concatenate([np.zeros_like(w[:1]), w[1:]])
    result = golden_depthwise(primary, later_taps, ArithMode.INT8)
    return wrap_acc(result + secondary[:len(result)] * w[0])


def neutral_padding(mode: ArithMode) -> tuple[int, int]:
    """An (activation, weight) lane pair whose MAC adds exactly 0.

    Padding a reduction with zeros is neutral in int8 but not in binary, where
    no lane value means 0; 0x0F against 0x00 agrees on 4 of 8 bits: 2*4-8 = 0.
    """
    if mode == ArithMode.INT8:
        return 0, 0
    return 0x0F, 0x00


def random_operands(rng: np.random.Generator, m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random int8 operands (also valid as packed binary lanes) of shapes (M, K) and (K, N)."""
    low, high = -(1 << (OPERAND_BITS - 1)), 1 << (OPERAND_BITS - 1)
    return (rng.integers(low, high, size=(m, k), dtype=np.int64),
            rng.integers(low, high, size=(k, n), dtype=np.int64))


# --- Requantization: int32 accumulator -> int8, TFLite / gemmlowp semantics -------------
# with a 16-bit multiplier: TFLite's is Q0.31, whose 32 x 32-bit product takes four DSP blocks per
# lane (ECP5 18 x 18, iCE40 16 x 16); a Q0.15 multiplier takes two, and its relative rounding error
# (2**-15) is far below an int8 output's half step.

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT8_MIN, INT8_MAX = -(1 << (OPERAND_BITS - 1)), (1 << (OPERAND_BITS - 1)) - 1
MULTIPLIER_BITS = 16                   # two's-complement width of the multiplier the hardware keeps
MULTIPLIER_FRACTION_BITS = MULTIPLIER_BITS - 1   # quantized multipliers are Q0.15 in [2**14, 2**15)
MULTIPLIER_MIN, MULTIPLIER_MAX = -(1 << MULTIPLIER_FRACTION_BITS), (1 << MULTIPLIER_FRACTION_BITS) - 1
SHIFT_BITS = 6                         # two's-complement width of the stored shift
SHIFT_RANGE = range(-31, 31)           # power-of-two exponent applied with the multiplier


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul for an int32 ``a`` and a ``MULTIPLIER_BITS`` ``b``:
    round(a * b / 2**MULTIPLIER_FRACTION_BITS), ties away from zero.

    The only overflowing case, ``a == INT32_MIN`` and ``b == MULTIPLIER_MIN``, saturates to ``INT32_MAX``.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    product = a * b
    half = 1 << (MULTIPLIER_FRACTION_BITS - 1)
    nudge = np.where(product >= 0, half, 1 - half)
    total = product + nudge
    # C++ integer division truncates toward zero.
    quotient = np.sign(total) * (np.abs(total) >> MULTIPLIER_FRACTION_BITS)
    return np.where((a == INT32_MIN) & (b == MULTIPLIER_MIN), INT32_MAX, quotient).astype(np.int64)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: x / 2**exponent rounded to nearest, ties away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier: ``x * multiplier * 2**(shift - MULTIPLIER_FRACTION_BITS)``, rounded.

    A positive ``shift`` is applied as a left shift before the multiply; the
    shifted value wraps to int32 like the hardware's 32-bit datapath.
    """
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap_acc(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: ``real = multiplier * 2**(shift - MULTIPLIER_FRACTION_BITS)``, multiplier in
    [2**(MULTIPLIER_FRACTION_BITS - 1), 2**MULTIPLIER_FRACTION_BITS)."""
    if not np.isfinite(real_multiplier) or real_multiplier <= 0:
        raise ValueError(f"Requantization scale must be a positive finite number, not {real_multiplier!r}")
    fraction, exponent = np.frexp(real_multiplier)
    multiplier = int(round(fraction * (1 << MULTIPLIER_FRACTION_BITS)))
    if multiplier == 1 << MULTIPLIER_FRACTION_BITS:
        multiplier //= 2
        exponent += 1
    if exponent not in SHIFT_RANGE:
        raise ValueError(f"Requantization scale {real_multiplier!r} needs shift {exponent}; "
                         f"allowed shifts are {SHIFT_RANGE.start}..{SHIFT_RANGE.stop - 1}")
    return multiplier, int(exponent)


def requantize(acc, bias, multiplier, shift, zero_point, clamp_min=INT8_MIN, clamp_max=INT8_MAX) -> np.ndarray:
    """Accumulator to int8: ``clamp(MBQM(wrap(acc + bias), multiplier, shift) + zero_point)``.

    ``bias``, ``multiplier`` and ``shift`` broadcast per output channel (last
    axis); ReLU is ``clamp_min = zero_point``, ReLU6 also lowers ``clamp_max``.
    """
    if not INT8_MIN <= clamp_min <= clamp_max <= INT8_MAX:
        raise ValueError(f"Clamp bounds must satisfy {INT8_MIN} <= clamp_min <= clamp_max <= {INT8_MAX}, "
                         f"not {clamp_min}..{clamp_max}")
    total = wrap_acc(np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64))
    scaled = multiply_by_quantized_multiplier(total, multiplier, shift)
    return np.clip(scaled + np.asarray(zero_point, dtype=np.int64), clamp_min, clamp_max).astype(np.int8)


def binarize(acc, bias, flip) -> np.ndarray:
    """Sign activation of a binary layer: bit 1 (+1) where ``wrap(acc + bias) >= 0``, inverted where ``flip``.

    Batch norm folded into a binary layer is a per-channel threshold, stored
    as ``bias = -threshold``; a negative batch-norm scale reverses the
    comparison (``flip``).
    """
    total = wrap_acc(np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64))
    return ((total >= 0) != np.asarray(flip, dtype=bool)).astype(np.int64)


def pack_bits(bits) -> np.ndarray:
    """Pack 0/1 values along the last axis into int8 lanes, bit ``b`` of lane ``l`` = value ``8l + b``.

    The last axis is padded with zeros to a multiple of 8.
    """
    bits = np.asarray(bits, dtype=np.int64)
    pad = -bits.shape[-1] % BINARY_VALUES_PER_LANE
    bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (pad,), dtype=np.int64)], axis=-1)
    lanes = (bits.reshape(*bits.shape[:-1], -1, BINARY_VALUES_PER_LANE) << np.arange(BINARY_VALUES_PER_LANE)).sum(-1)
    return ((lanes + 128) % 256 - 128).astype(np.int8)


def store_rows(acc, bias, multiplier, shift, flip, mode: ArithMode, zero_point: int,
               clamp_min: int = INT8_MIN, clamp_max: int = INT8_MAX, channels: int | None = None) -> np.ndarray:
    """What the store path makes of accumulator rows ``acc`` (rows, C): (rows, C) int8 lanes.

    int8 mode: ``requantize``. Binary mode: ``binarize`` packed by ``pack_bits``
    into the first ``ceil(C / 8)`` lanes, the remaining lanes 0. Channels from
    ``channels`` on (default: all C) are forced to 0 (int8 0, binary bit 0),
    so a partial block of output channels stores deterministic padding.
    """
    acc = np.asarray(acc, dtype=np.int64)
    keep = np.arange(acc.shape[-1]) < (acc.shape[-1] if channels is None else channels)
    if mode == ArithMode.INT8:
        return np.where(keep, requantize(acc, bias, multiplier, shift, zero_point, clamp_min, clamp_max),
                        0).astype(np.int8)
    packed = pack_bits(binarize(acc, bias, flip) * keep)
    lanes = np.zeros(acc.shape, dtype=np.int8)
    lanes[..., :packed.shape[-1]] = packed[..., :acc.shape[-1]]
    return lanes


def stored_bytes(channels: int, mode: ArithMode) -> int:
    """Bytes a store writes per row for ``channels`` output channels."""
    return channels if mode == ArithMode.INT8 else -(-channels // BINARY_VALUES_PER_LANE)


SCALE_BITS = 16      # signed scale of an int8 row combined into the accumulator


class Combine(hdl_enum.Enum, shape=2):
    """How int8 rows loaded into the accumulator meet its contents (pooling, residual add).

    OVERWRITE: ``acc = x * scale``; ADD: ``acc = wrap(acc + x * scale)``;
    MAX: ``acc = max(acc, x * scale)``. A store then requantizes the result:
    average pooling is ADD over the window taps (scale 1) with the divisor in
    the requantization multiplier, max pooling is OVERWRITE then MAX (scale 1,
    borders padded with ``INT8_MIN``), and a residual add is OVERWRITE of one
    input and ADD of the other, each scaled to a common accumulator scale.
    """
    OVERWRITE = 0
    ADD = 1
    MAX = 2


def combine_rows(acc, rows, scale, combine: Combine) -> np.ndarray:
    """The accumulator after int8 ``rows`` are combined into it (``Combine``); ``acc`` is ignored by OVERWRITE.

    ``scale`` is one integer or one per lane (last axis): per-channel weights make
    ADD a depthwise multiply-accumulate.
    """
    scale = np.asarray(scale, dtype=np.int64)
    low, high = -(1 << (SCALE_BITS - 1)), (1 << (SCALE_BITS - 1)) - 1
    if scale.size and not (low <= scale.min() and scale.max() <= high):
        raise ValueError(f"Combine scale must be from {low} to {high}, not {scale.min()}..{scale.max()}")
    scaled = np.asarray(rows, dtype=np.int64) * scale
    combine = Combine(combine)
    if combine == Combine.OVERWRITE:
        return wrap_acc(scaled)
    acc = np.asarray(acc, dtype=np.int64)
    return wrap_acc(acc + scaled) if combine == Combine.ADD else wrap_acc(np.maximum(acc, scaled))
