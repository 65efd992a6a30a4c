"""Registered products: a multiply between its operand registers and its product register.

Yosys maps a ``*`` to an ECP5 MULT18X18D without the block's registers, so a product
computed between fabric registers is a path from the fabric through the block and back
(about 4 ns in the block and 3 ns of routing each way on an ECP5-85F: 12.5 ns for a LOAD's
span product in a 4x4 SoC, 2026-12-06). ``registered_product`` instantiates the block
(``hdl.config.DspPrimitive``) with its input and output registers, so that the multiply
is a path inside it; without a primitive the same registers are fabric registers around a
``*``, with the same latency.
"""
from amaranth.hdl import ClockSignal, Instance, Module, Signal, Value, signed, unsigned

from .config import DspPrimitive

__all__ = ["registered_product", "PRODUCT_LATENCY", "DSP_OPERAND_BITS"]

PRODUCT_LATENCY = 2        # the operand registers, then the product register
DSP_OPERAND_BITS = 18      # MULT18X18D: 18-bit operands, each signed or unsigned


def registered_product(m: Module, a_next, b_next, primitive: DspPrimitive | None, name: str) -> Value:
    """``a * b`` of what ``a_next`` and ``b_next`` are now, PRODUCT_LATENCY cycles later.

    The operands are given as what operand registers would load, so the product's first register
    is the operand register (the block's input register with a primitive). Each operand must fit
    the block: at most 18 bits, signed or unsigned. The clock enables are tied high and the resets
    low: the product is for a pipeline that never stalls (a consumer keeps its own valid flags).
    """
    a_next, b_next = Value.cast(a_next), Value.cast(b_next)
    product_shape = (a_next * b_next).shape()
    product = Signal(product_shape, name=f"{name}_product")
    if primitive is None:
        a, b = Signal(a_next.shape(), name=f"{name}_a"), Signal(b_next.shape(), name=f"{name}_b")
        m.d.sync += [a.eq(a_next), b.eq(b_next), product.eq(a * b)]
        return product
    for operand in (a_next, b_next):
        if len(operand) > DSP_OPERAND_BITS:
            raise ValueError(f"A {primitive.cell} operand has at most {DSP_OPERAND_BITS} bits, not {len(operand)}")

    def port_shape(operand):
        return signed(DSP_OPERAND_BITS) if operand.shape().signed else unsigned(DSP_OPERAND_BITS)

    a, b = Signal(port_shape(a_next), name=f"{name}_a"), Signal(port_shape(b_next), name=f"{name}_b")
    block_product = Signal(2 * DSP_OPERAND_BITS, name=f"{name}_block_product")
    m.d.comb += [a.eq(a_next), b.eq(b_next), product.eq(block_product[:product_shape.width])]
    ports = {f"i_{port}{bit}": operand[bit] for port, operand in (("A", a), ("B", b))
             for bit in range(DSP_OPERAND_BITS)}
    ports.update({f"o_P{bit}": block_product[bit] for bit in range(len(block_product))})
    registered = {f"p_{register}_{field}": value for register in ("REG_INPUTA", "REG_INPUTB", "REG_OUTPUT")
                  for field, value in (("CLK", "CLK0"), ("CE", "CE0"), ("RST", "RST0"))}
    registered["p_REG_PIPELINE_CLK"] = "NONE"
    m.submodules[name] = Instance(
        primitive.cell, **registered, p_GSR="DISABLED",
        i_SIGNEDA=int(a_next.shape().signed), i_SIGNEDB=int(b_next.shape().signed), i_SOURCEA=0, i_SOURCEB=0,
        i_CLK0=ClockSignal(), i_CE0=1, i_RST0=0, **ports)
    return product
