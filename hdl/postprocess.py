"""The store path's post-processing: int32 accumulator rows to int8 or packed binary rows.

Implements ``numerics.requantize`` and ``numerics.binarize`` + ``pack_bits``
bit for bit, on C lanes in parallel, as an 8-stage pipeline:

1. ``total = wrap32(acc + bias)``
2. ``shifted = wrap32(total << max(shift, 0))``
3-4. the partial products of ``shifted``'s signed high and unsigned low halves with
   ``multiplier`` (``MULTIPLIER_BITS``), each in a DSP block between its registers
   (``hdl.dsp.registered_product``)
5. ``product = shifted * multiplier``, the sum of the partial products
6. ``high = SaturatingRoundingDoublingHighMul(shifted, multiplier)`` from the product
7. RoundingDivideByPOT(high, max(-shift, 0)) as its quotient ``high >> right`` and its rounding bit
8. ``out = clamp(quotient + rounding bit + zero_point)``

In binary mode lane ``l`` of the output packs the sign bits of channels
``8l .. 8l+7`` (``numerics.pack_bits``); lanes past ``ceil(C / 8)`` are 0.
Channels from ``channels`` on are forced to 0 in both modes
(``numerics.store_rows``).

The pipeline never stalls (no register has a clock enable, as in the systolic
array): it takes a row in every cycle ``rows_in`` is valid and offers it
``STAGES`` cycles later, and ``rows_out`` has no ``ready``. The store unit
admits a row only while its output queue has room for every row in flight.
"""
from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import DspPrimitive, refusable
from .dsp import PRODUCT_LATENCY, registered_product
from .numerics import (ACC_BITS, BINARY_VALUES_PER_LANE, MULTIPLIER_BITS, MULTIPLIER_FRACTION_BITS, MULTIPLIER_MIN,
                       OPERAND_BITS, SHIFT_BITS, ArithMode)

__all__ = ["PostProcessor", "channel_params_layout", "output_params_layout",
           "accumulator_row_layout", "output_row_layout", "BANKS"]

BANKS = 2       # channel parameter sets, so consecutive STOREs overlap in the pipeline

SHIFT = signed(SHIFT_BITS)


def channel_params_layout() -> data.StructLayout:
    """Per output channel: requantization bias/multiplier/shift; ``flip`` for binary layers."""
    return data.StructLayout({"bias": signed(ACC_BITS), "multiplier": signed(MULTIPLIER_BITS),
                              "shift": SHIFT, "flip": 1})


def output_params_layout() -> data.StructLayout:
    """Per layer: output mode, zero point and clamp bounds (ReLU/ReLU6 are clamp bounds)."""
    operand = signed(OPERAND_BITS)
    return data.StructLayout({"mode": ArithMode, "zero_point": operand,
                              "clamp_min": operand, "clamp_max": operand})


def accumulator_row_layout(lanes: int) -> data.StructLayout:
    """A row in: its C accumulators, and the parameter bank that post-processes it."""
    return data.StructLayout({"data": data.ArrayLayout(signed(ACC_BITS), lanes), "last": 1, "bank": 1})


def output_row_layout(lanes: int) -> data.StructLayout:
    return data.StructLayout({"data": data.ArrayLayout(signed(OPERAND_BITS), lanes), "last": 1, "bank": 1})


class PostProcessor(wiring.Component):
    """Requantize or binarize accumulator rows; see the module documentation.

    Parameters
    ----------
    lanes : int
        Channels per row (the array's column count), 1 to 64.
    primitive : DspPrimitive or None
        The DSP block the partial products are formed in (``hdl.dsp.registered_product``).

    Members
    -------
    rows_in : In(stream.Signature(accumulator_row_layout(lanes), always_ready=True))
    rows_out : Out(stream.Signature(output_row_layout(lanes), always_ready=True))
    channel_params : In(data.ArrayLayout(data.ArrayLayout(channel_params_layout(), lanes), BANKS))
        Per bank; a bank is held stable while rows of it are in flight, so the rows of one
        STORE can follow another's through the pipeline with the other bank.
    params : In(output_params_layout())
        Held stable while rows are in flight.
    channels : In(data.ArrayLayout(range(lanes + 1), BANKS))
        Per bank: output channels kept.
    """

    STAGES = 6 + PRODUCT_LATENCY      # total, shifted, the partial products, their sum, high, quotient, clamp

    @refusable
    def __init__(self, lanes: int, primitive: DspPrimitive | None = None):
        if not isinstance(lanes, int) or not 1 <= lanes <= 64:
            raise ValueError(f"Post-processor lanes must be an integer from 1 to 64, not {lanes!r}")
        self.lanes = lanes
        self.primitive = primitive
        super().__init__({
            "rows_in": In(stream.Signature(accumulator_row_layout(lanes), always_ready=True)),
            "rows_out": Out(stream.Signature(output_row_layout(lanes), always_ready=True)),
            "channel_params": In(data.ArrayLayout(data.ArrayLayout(channel_params_layout(), lanes), BANKS)),
            "params": In(output_params_layout()),
            "channels": In(data.ArrayLayout(range(lanes + 1), BANKS)),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        # valid, last and the bank ride along the pipeline; each stage uses the bank of its row.
        framing = [Signal(3, name=f"framing_{stage}") for stage in range(self.STAGES)]
        m.d.sync += framing[0].eq(Cat(self.rows_in.valid, self.rows_in.payload.last, self.rows_in.payload.bank))
        m.d.sync += [framing[stage].eq(framing[stage - 1]) for stage in range(1, self.STAGES)]
        m.d.comb += [self.rows_out.valid.eq(framing[-1][0]), self.rows_out.payload.last.eq(framing[-1][1]),
                     self.rows_out.payload.bank.eq(framing[-1][2])]
        # Stage n computes its register from the row of stage n - 1 (stage 0: the input).
        banks = [self.rows_in.payload.bank, *(framing[stage][2] for stage in range(self.STAGES - 1))]

        def channel_of(stage, lane):
            return self.channel_params[banks[stage]][lane]

        def kept_of(stage, lane):
            return lane < self.channels[banks[stage]]

        sign_bits = Signal(lanes)
        requantized_lanes = []
        for lane in range(lanes):
            channel = [channel_of(stage, lane) for stage in range(self.STAGES)]
            total = Signal(signed(ACC_BITS), name=f"total_{lane}")
            shifted = Signal(signed(ACC_BITS), name=f"shifted_{lane}")
            high = Signal(signed(ACC_BITS), name=f"high_{lane}")
            sign_delay = [Signal(name=f"sign_{lane}_{stage}") for stage in range(self.STAGES - 1)]
            # The product is formed from registers: its multiplier is selected from the row's bank a stage
            # ahead, beside ``shifted`` (from the bank select through the multiplier was the 8x8 SoC's worst
            # path, 16.7 ns, 2026-12-06), and its partial products from 16-bit halves of ``shifted`` are
            # registered in and out of DSP blocks (a 32 x 16 product inferred from fabric registers was the
            # 4x4 SoC's, through two blocks and a carry chain). Their sum has a stage of its own, the
            # rounding of its high part the next.
            multiplier = Signal(signed(MULTIPLIER_BITS), name=f"multiplier_{lane}")
            half = ACC_BITS // 2
            high_part = registered_product(m, shifted[half:].as_signed(), multiplier, self.primitive,
                                           f"high_part_{lane}")
            low_part = registered_product(m, shifted[:half], multiplier, self.primitive, f"low_part_{lane}")
            product = Signal(signed(ACC_BITS + MULTIPLIER_BITS), name=f"product_{lane}")
            overflow = [Signal(name=f"overflow_{lane}_{stage}") for stage in range(PRODUCT_LATENCY + 1)]
            # gemmlowp nudges the product by +half (product >= 0) or 1 - half and divides truncating toward
            # zero; both cases equal floor((product + half) / 2**F), an increment of the product's top bits
            # (one carry chain of 34 bits instead of a 49-bit nudge, a sign select and a second 49-bit add).
            rounded_high = ((product >> (MULTIPLIER_FRACTION_BITS - 1)) + 1) >> 1
            # RoundingDivideByPOT(high, e) rounds up where the remainder high mod 2**e exceeds
            # 2**(e-1) - 1 + (high < 0): where bit e-1 of high is set and, for a negative high, a bit
            # below it too. The right shift and the masks of bit e-1 and of the bits below come from the
            # channel alone, so they are registered a stage ahead, beside ``high`` (two AND-OR trees
            # instead of a mask, an adder and a 32-bit compare: 4 lanes 3,616 LUT sites, not 4,017).
            right = Signal(range(1 << (SHIFT.width - 1)), name=f"right_{lane}")
            half_bit = Signal(ACC_BITS, name=f"half_bit_{lane}")
            below_half = Signal(ACC_BITS, name=f"below_half_{lane}")
            high_stage = self.STAGES - 2
            right_ahead = Mux(channel[high_stage - 1].shift < 0, -channel[high_stage - 1].shift, 0)[:SHIFT.width - 1]
            mask_ahead = Signal(ACC_BITS, name=f"mask_ahead_{lane}")
            m.d.comb += mask_ahead.eq((1 << right_ahead) - 1)
            past_half = ((high.as_unsigned() & half_bit).any()
                         & ((high >= 0) | (high.as_unsigned() & below_half).any()))
            # The shift and the rounding compare have a stage of their own, the sums and the clamp the next.
            quotient = Signal(signed(ACC_BITS), name=f"quotient_{lane}")
            round_up = Signal(name=f"round_up_{lane}")
            with_zero_point = Signal(signed(ACC_BITS + 2), name=f"with_zero_point_{lane}")
            m.d.comb += with_zero_point.eq(quotient + round_up + self.params.zero_point)
            clamped = Mux(with_zero_point < self.params.clamp_min, self.params.clamp_min,
                          Mux(with_zero_point > self.params.clamp_max, self.params.clamp_max,
                              with_zero_point))
            # The left shift is selected from the row's bank a stage ahead, beside ``total``: from the bank
            # select through the shifter was the 4x4 SoC's worst path (13.6 ns, 2026-12-06).
            left = Signal(range(1 << (SHIFT.width - 1)), name=f"left_{lane}")
            requantized = Signal(signed(OPERAND_BITS), name=f"requantized_{lane}")
            m.d.sync += [
                total.eq(self.rows_in.payload.data[lane] + channel[0].bias),
                left.eq(Mux(channel[0].shift > 0, channel[0].shift, 0)[:SHIFT.width - 1]),
                shifted.eq(total << left),
                sign_delay[0].eq(((total >= 0) ^ channel[1].flip) & kept_of(1, lane)),
                multiplier.eq(channel[1].multiplier),
                product.eq((high_part << half) + low_part),
                overflow[0].eq((shifted == -(1 << (ACC_BITS - 1))) & (multiplier == MULTIPLIER_MIN)),
                *(overflow[stage].eq(overflow[stage - 1]) for stage in range(1, len(overflow))),
                high.eq(Mux(overflow[-1], (1 << (ACC_BITS - 1)) - 1, rounded_high)),
                right.eq(right_ahead),
                half_bit.eq(mask_ahead & ~(mask_ahead >> 1)),
                below_half.eq(mask_ahead >> 1),
                quotient.eq(high >> right),
                round_up.eq(past_half),
                requantized.eq(Mux(kept_of(self.STAGES - 1, lane), clamped, 0)),
            ]
            m.d.sync += [sign_delay[stage].eq(sign_delay[stage - 1]) for stage in range(1, len(sign_delay))]
            m.d.comb += sign_bits[lane].eq(sign_delay[-1])
            requantized_lanes.append(requantized)

        binary = Signal()
        m.d.comb += binary.eq(self.params.mode == ArithMode.BINARY)
        for lane in range(lanes):
            packed = sign_bits[lane * BINARY_VALUES_PER_LANE:(lane + 1) * BINARY_VALUES_PER_LANE]
            m.d.comb += self.rows_out.payload.data[lane].eq(Mux(binary, packed, requantized_lanes[lane]))
        return m
