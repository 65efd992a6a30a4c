"""One processing element of the systolic array, for either dataflow."""
from functools import partial

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import ArithSupport, ArrayConfig, Dataflow, refusable
from .dsp import registered_product
from .numerics import ACC_BITS, BINARY_VALUES_PER_LANE, OPERAND_BITS, ArithMode

__all__ = ["ProcessingElement", "activation_lane_layout", "weight_lane_layout", "lane_product", "logic_product",
           "row_tag_shape"]

OPERAND = signed(OPERAND_BITS)
ACCUMULATOR = signed(ACC_BITS)


def activation_lane_layout(config: ArrayConfig) -> data.StructLayout:
    """What travels left to right through a row of PEs with each activation.

    ``last`` closes a tile (OS: the PE hands its sum to the drain; WS: it
    frames the results); ``first`` (WS only) switches the PE to the weights
    preloaded in its shadow register; ``mode`` (``both`` arithmetic only)
    selects int8 or binary for this beat; ``depthwise`` (arrays with the
    depthwise mode) multiplies the column's channel instead of ``data``, and
    with ``secondary`` (paired arrays) the column's secondary channel.
    """
    fields = {"valid": 1, "last": 1, "data": OPERAND}
    if config.dataflow == Dataflow.WS:
        fields["first"] = 1
    if config.depthwise:
        fields["depthwise"] = 1
    if config.paired:
        fields["secondary"] = 1
    if config.arith == ArithSupport.BOTH:
        fields["mode"] = ArithMode
    return data.StructLayout(fields)


def row_tag_shape(config: ArrayConfig) -> unsigned:
    """Width of a WS preload row tag (at least 1 bit: Verilog has no zero-width vectors)."""
    return unsigned(max(1, (config.rows - 1).bit_length()))


def weight_lane_layout(config: ArrayConfig):
    """What travels top to bottom through a column of PEs.

    OS streams one weight per cycle; WS shifts preload weights tagged with the
    row whose shadow register keeps them.
    """
    if config.dataflow == Dataflow.OS:
        return OPERAND
    return data.StructLayout({"valid": 1, "row": row_tag_shape(config), "data": OPERAND})


def logic_product(m: Module, activation, weight, register=lambda value: value):
    """``activation * weight`` for int8 operands from logic: radix-4 Booth partial products.

    Synthesis maps a ``*`` to a DSP block when it can; these adders it cannot,
    so a PE built this way uses logic only. The weight's bit pairs recode to
    digits d_j = -2 w[2j+1] + w[2j] + w[2j-1] in -2..2 (w[-1] = 0), so
    ``a * w = sum_j d_j * a * 4**j``: four partial products P_j instead of
    eight. A negative digit's P_j is the one's complement of ``|d_j| * a``
    (-|d_j| * a - 1); its missing one (bit 2j) rides in the zero low bits of
    another operand. The sums are kept signals so that Yosys maps each to a
    carry chain instead of merging all into one multi-operand adder of plain
    LUTs (measured on ECP5: 85 LUT4 + 21 CCU2C per product, against about
    330 LUT4 for shift-and-add). ``register`` (pipelined arrays: a register) takes the two
    partial sums, so that each carry chain has a cycle of its own.
    """
    partials, negative = [], []
    for j in range(OPERAND_BITS // 2):
        low = weight[2 * j - 1] if j > 0 else Const(0, 1)
        mid, high = weight[2 * j], weight[2 * j + 1]
        one = mid ^ low
        two = (high & ~mid & ~low) | (~high & mid & low)
        magnitude = Mux(two, activation << 1, Mux(one, activation, 0))
        partials.append(Mux(high, ~magnitude, magnitude))
        negative.append(high)
    zero = Const(0, 1)

    def kept(value, name):
        signal = Signal(signed(2 * OPERAND_BITS + 2), name=name, attrs={"keep": 1})
        m.d.comb += signal.eq(value)
        return signal

    # Weights 4**0 + 4**2 (ones of P0 and P1 below P2), and 4**1 + 4**3 (one of P2 below P3).
    even = register(kept(partials[0] + Cat(negative[0], zero, negative[1], zero, partials[2]).as_signed(),
                         "booth_even"))
    odd = register(kept(partials[1] + Cat(zero, zero, negative[2], zero, partials[3]).as_signed(), "booth_odd"))
    return kept(even + Cat(zero, zero, odd).as_signed() + (register(negative[3]) << 6), "booth_product")


def lane_product(m: Module, config: ArrayConfig, multiplicand, recoded, mode, dsp: bool = True,
                 register=lambda value: value):
    """The signed contribution of one lane pair to the accumulator, per numerics' rules.

    ``register`` is applied halfway (pipelined arrays: the first product register). The product is
    symmetric in its operands; ``dsp`` False builds the int8 product from logic
    (``logic_product(m, multiplicand, recoded)``), which Booth-recodes ``recoded``: the PE passes
    there the operand that a multiplexer selects, so that the select is decoded once per digit.
    (ECP5, 16x16 OS PE with the depthwise mode: 163 LUT4; with the multiplexed operand as the
    multiplicand, whose every bit feeds every partial product, 190.)
    """
    products = {}
    if ArithMode.INT8 in config.modes:
        products[ArithMode.INT8] = (register(multiplicand * recoded) if dsp
                                    else logic_product(m, multiplicand, recoded, register))
    if ArithMode.BINARY in config.modes:
        agree = ~(multiplicand ^ recoded)
        popcount = sum(agree[bit] for bit in range(BINARY_VALUES_PER_LANE))
        binary_dot = Signal(signed(OPERAND_BITS.bit_length() + 1))
        m.d.comb += binary_dot.eq(2 * popcount - BINARY_VALUES_PER_LANE)
        products[ArithMode.BINARY] = register(binary_dot)
    product = Signal(signed(2 * OPERAND_BITS))
    if len(products) == 1:
        m.d.comb += product.eq(next(iter(products.values())))
    else:
        m.d.comb += product.eq(Mux(register(mode) == ArithMode.BINARY,
                                   products[ArithMode.BINARY], products[ArithMode.INT8]))
    return product


class ProcessingElement(wiring.Component):
    """A multiply-accumulate cell; its registers have no enable, as the array never stalls.

    Parameters
    ----------
    config : ArrayConfig
        The array this PE belongs to (dataflow and arithmetic).
    row : int
        The PE's row, which a WS PE compares with preload tags.
    col : int
        The PE's column (with ``row``, it decides a DSP or a logic multiplier, ``config.dsp_multiplier``).

    Members
    -------
    act_in, act_out : activation lane from the left, registered to the right.
    weight_in, weight_out : weight lane from above, registered downwards.
    psum_in, psum_out : (WS) partial sum from above, plus this PE's product, registered downwards.
    column_in : (depthwise mode) the column's channel, multiplied instead of ``act_in.data`` on depthwise beats
        (pipelined: a cycle early, like ``act_early``).
    column_secondary_in : (``pairs``: ``config.paired``, on WS row 0 only) the column's secondary channel,
        multiplied instead on depthwise beats flagged ``secondary`` (pipelined: a cycle early).
    act_early : (``config.early_operands``) ``act_in`` a cycle before it arrives, which selects the operand.
    weight_early : (``config.early_weights``) ``weight_in`` a cycle before it arrives.
    result : (OS) the finished dot product of the most recent tile, held until overwritten.
    """

    @refusable
    def __init__(self, config: ArrayConfig, row: int, col: int = 0):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"PE config must be an ArrayConfig, not {config!r}")
        if not isinstance(row, int) or not 0 <= row < config.rows:
            raise ValueError(f"PE row must be an integer from 0 to {config.rows - 1}, not {row!r}")
        if not isinstance(col, int) or not 0 <= col < config.cols:
            raise ValueError(f"PE column must be an integer from 0 to {config.cols - 1}, not {col!r}")
        self.config = config
        self.row = row
        self.col = col
        # (A paired WS tile's secondary stream meets stationary row 0 only.)
        self.pairs = config.paired and (config.dataflow == Dataflow.OS or row == 0)
        act, weight = activation_lane_layout(config), weight_lane_layout(config)
        members = {
            "act_in": In(act), "act_out": Out(act),
            "weight_in": In(weight), "weight_out": Out(weight),
        }
        if config.dataflow == Dataflow.WS:
            members.update({"psum_in": In(ACCUMULATOR), "psum_out": Out(ACCUMULATOR)})
        else:
            members["result"] = Out(ACCUMULATOR)
        if config.depthwise:
            members["column_in"] = In(OPERAND)
        if self.pairs:
            members["column_secondary_in"] = In(OPERAND)
        if config.early_operands:
            members["act_early"] = In(act)
        if config.early_weights:
            members["weight_early"] = In(weight)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        mode = self.act_in.mode if self.config.arith == ArithSupport.BOTH else None
        dsp = self.config.dsp_multiplier(self.row, self.col)

        m.d.sync += [self.act_out.eq(self.act_in), self.weight_out.eq(self.weight_in)]

        primitive = self.config.dsp_primitive if dsp else None
        operand = self.act_in.data
        operand_next = None
        if self.config.early_operands:
            operand_next = self._selected_operand(self.act_early)
        if self.config.depthwise and self.config.pipelined and primitive is None:
            # The operand selected a cycle early into a register of the PE's own, so that the multiplier
            # starts from it: on a 16x16 ECP5 core the column's channel, one register driving a whole
            # column, took 6.5 ns of routing in front of a Booth multiplier (63.7 MHz), and from a
            # register per PE the select did (66.2 MHz), 2026-12-05 #8.
            operand = Signal(OPERAND, name="operand")
            m.d.sync += operand.eq(operand_next)
        elif self.config.depthwise:
            operand = self._selected_operand(self.act_in)
        if self.config.dataflow == Dataflow.WS:
            shadow = Signal(OPERAND)
            active = Signal(OPERAND)
            # The first activation of a tile already multiplies with the new weights.
            weight = Mux(self.act_in.first, shadow, active)
            takes_weight = self.weight_in.valid & (self.weight_in.row == self.row)
            switches = self.act_in.valid & self.act_in.first
            if primitive is None:
                product = self._staged(m, lane_product(m, self.config, operand, weight, mode, dsp,
                                                       partial(self._staged, m)))
            else:
                # The weight the PE will multiply next: what the shadow and active registers load now.
                shadow_next = Mux(takes_weight, self.weight_in.data, shadow)
                active_next = Mux(switches, shadow, active)
                weight_next = Mux(self.act_early.first, shadow_next, active_next)
                product = self._fabric_stages(m, registered_product(m, operand_next, weight_next, primitive,
                                                                    "multiplier"))
            m.d.sync += self.psum_out.eq(self.psum_in + product)
            with m.If(takes_weight):
                m.d.sync += shadow.eq(self.weight_in.data)
            with m.If(switches):
                m.d.sync += active.eq(shadow)
        else:
            accumulator = Signal(ACCUMULATOR)
            if primitive is None:
                product = self._staged(m, lane_product(m, self.config, self.weight_in, operand, mode, dsp,
                                                       partial(self._staged, m)))
            else:
                product = self._fabric_stages(m, registered_product(m, self.weight_early, operand_next,
                                                                    primitive, "multiplier"))
            # The beat's flags wait for its product: one register per product register.
            valid, last = self.act_in.valid, self.act_in.last
            for _ in range(self.config.product_stages):
                valid, last = self._staged(m, valid), self._staged(m, last)
            total = Signal(ACCUMULATOR)
            m.d.comb += total.eq(accumulator + product)
            with m.If(valid):
                with m.If(last):
                    # Hand the finished sum to the drain and start the next tile at once.
                    m.d.sync += [self.result.eq(total), accumulator.eq(0)]
                with m.Else():
                    m.d.sync += accumulator.eq(total)
        return m

    def _selected_operand(self, lane):
        """What the PE multiplies for ``lane``'s beat: its data, or on a depthwise beat the column's channel
        (or secondary channel)."""
        if not self.config.depthwise:
            return lane.data
        column = self.column_in
        if self.pairs:
            column = Mux(lane.secondary, self.column_secondary_in, self.column_in)
        return Mux(lane.depthwise, column, lane.data)

    def _fabric_stages(self, m, dsp_product):
        """A DSP block's registered product through the product registers after its own.

        The block's output register is the PE's first product register, and the block's pipeline
        register is left out: with it as the first product register and the output register as the
        last, the 16x16 ECP5 core's worst path was a DSP output routed 8.2 ns to its PE's accumulator,
        placed 83 columns away (84.4 MHz, 2026-12-06); a fabric register splits that route.
        """
        for _ in range(self.config.product_stages - 1):
            dsp_product = self._staged(m, dsp_product)
        return dsp_product

    def _staged(self, m, value):
        """``value``, or (pipelined) its register."""
        if not self.config.pipelined:
            return value
        register = Signal(value.shape())
        m.d.sync += register.eq(value)
        return register
