"""One processing element of the systolic array, for either dataflow."""
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import ArithSupport, ArrayConfig, Dataflow
from .numerics import ACC_BITS, BINARY_VALUES_PER_LANE, OPERAND_BITS, ArithMode

__all__ = ["ProcessingElement", "activation_lane_layout", "weight_lane_layout", "lane_product",
           "row_tag_shape"]

OPERAND = signed(OPERAND_BITS)
ACCUMULATOR = signed(ACC_BITS)


def activation_lane_layout(config: ArrayConfig) -> data.StructLayout:
    """What travels left to right through a row of PEs with each activation.

    ``last`` closes a tile (OS: the PE hands its sum to the drain; WS: it
    frames the results); ``first`` (WS only) switches the PE to the weights
    preloaded in its shadow register; ``mode`` (``both`` arithmetic only)
    selects int8 or binary for this beat.
    """
    fields = {"valid": 1, "last": 1, "data": OPERAND}
    if config.dataflow == Dataflow.WS:
        fields["first"] = 1
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


def lane_product(m: Module, config: ArrayConfig, activation, weight, mode):
    """The signed contribution of one lane pair to the accumulator, per numerics' rules."""
    products = {}
    if ArithMode.INT8 in config.modes:
        products[ArithMode.INT8] = activation * weight
    if ArithMode.BINARY in config.modes:
        agree = ~(activation ^ weight)
        popcount = sum(agree[bit] for bit in range(BINARY_VALUES_PER_LANE))
        binary_dot = Signal(signed(OPERAND_BITS.bit_length() + 1))
        m.d.comb += binary_dot.eq(2 * popcount - BINARY_VALUES_PER_LANE)
        products[ArithMode.BINARY] = binary_dot
    product = Signal(signed(2 * OPERAND_BITS))
    if len(products) == 1:
        m.d.comb += product.eq(next(iter(products.values())))
    else:
        m.d.comb += product.eq(Mux(mode == ArithMode.BINARY,
                                   products[ArithMode.BINARY], products[ArithMode.INT8]))
    return product


class ProcessingElement(wiring.Component):
    """A multiply-accumulate cell; every register moves only while ``advance`` is high.

    Parameters
    ----------
    config : ArrayConfig
        The array this PE belongs to (dataflow and arithmetic).
    row : int
        The PE's row, which a WS PE compares with preload tags.

    Members
    -------
    advance : In(1)
        Clock enable shared by the whole array (low while the output is back-pressured).
    act_in, act_out : activation lane from the left, registered to the right.
    weight_in, weight_out : weight lane from above, registered downwards.
    psum_in, psum_out : (WS) partial sum from above, plus this PE's product, registered downwards.
    result : (OS) the finished dot product of the most recent tile, held until overwritten.
    """

    def __init__(self, config: ArrayConfig, row: int):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"PE config must be an ArrayConfig, not {config!r}")
        if not isinstance(row, int) or not 0 <= row < config.rows:
            raise ValueError(f"PE row must be an integer from 0 to {config.rows - 1}, not {row!r}")
        self.config = config
        self.row = row
        act, weight = activation_lane_layout(config), weight_lane_layout(config)
        members = {
            "advance": In(1),
            "act_in": In(act), "act_out": Out(act),
            "weight_in": In(weight), "weight_out": Out(weight),
        }
        if config.dataflow == Dataflow.WS:
            members.update({"psum_in": In(ACCUMULATOR), "psum_out": Out(ACCUMULATOR)})
        else:
            members["result"] = Out(ACCUMULATOR)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        mode = self.act_in.mode if self.config.arith == ArithSupport.BOTH else None

        with m.If(self.advance):
            m.d.sync += [self.act_out.eq(self.act_in), self.weight_out.eq(self.weight_in)]

        if self.config.dataflow == Dataflow.WS:
            shadow = Signal(OPERAND)
            active = Signal(OPERAND)
            # The first activation of a tile already multiplies with the new weights.
            weight = Mux(self.act_in.first, shadow, active)
            product = lane_product(m, self.config, self.act_in.data, weight, mode)
            with m.If(self.advance):
                m.d.sync += self.psum_out.eq(self.psum_in + product)
                with m.If(self.weight_in.valid & (self.weight_in.row == self.row)):
                    m.d.sync += shadow.eq(self.weight_in.data)
                with m.If(self.act_in.valid & self.act_in.first):
                    m.d.sync += active.eq(shadow)
        else:
            accumulator = Signal(ACCUMULATOR)
            product = lane_product(m, self.config, self.act_in.data, self.weight_in, mode)
            total = Signal(ACCUMULATOR)
            m.d.comb += total.eq(accumulator + product)
            with m.If(self.advance & self.act_in.valid):
                with m.If(self.act_in.last):
                    # Hand the finished sum to the drain and start the next tile at once.
                    m.d.sync += [self.result.eq(total), accumulator.eq(0)]
                with m.Else():
                    m.d.sync += accumulator.eq(total)
        return m
