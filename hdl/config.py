"""The accelerator's generation parameters, validated once.

Every hardware unit, the CLI and (later) the compiler take an ``ArrayConfig``;
nothing else re-checks or re-derives these values.
"""
import enum
import functools
import re
from dataclasses import dataclass

from .numerics import ArithMode

__all__ = ["Dataflow", "ArithSupport", "Multipliers", "DspPrimitive", "ArrayConfig", "AcceleratorConfig", "BUS_WIDTHS", "MAX_ARRAY_DIM",
           "MAX_MEMORY_ROWS", "parse_pe", "refusable"]

MAX_ARRAY_DIM = 64
MAX_MEMORY_ROWS = 1 << 16      # an on-chip memory's rows: instructions address them with 16 bits


def refusable(init):
    """For a component's ``__init__`` that validates its parameters: a component it refuses (raises for) was
    never a design, so Amaranth's warning about a design created but never elaborated is silenced for it."""
    @functools.wraps(init)
    def checked_init(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except Exception:
            self._MustUse__silence = True
            raise
    return checked_init


class Dataflow(enum.Enum):
    """Which operand stays in the PEs while the other streams through."""
    WS = "ws"   # weight stationary: weights preloaded, partial sums flow down
    OS = "os"   # output stationary: outputs accumulate in place, then drain


class ArithSupport(enum.Enum):
    """Which arithmetic modes the generated PEs implement."""
    INT8 = "int8"
    BINARY = "binary"
    BOTH = "both"       # mode chosen at run time, per operation

    @property
    def modes(self) -> tuple[ArithMode, ...]:
        return {
            ArithSupport.INT8: (ArithMode.INT8,),
            ArithSupport.BINARY: (ArithMode.BINARY,),
            ArithSupport.BOTH: (ArithMode.INT8, ArithMode.BINARY),
        }[self]


class Multipliers(enum.Enum):
    """How the int8 PEs' multipliers are built (binary lanes never use one).

    FPGA DSP blocks are fewer than the PEs of a large array (an ECP5-85F has
    156 MULT18X18D for a 16x16 array's 256 products), so a generated array
    can put the rest in logic.
    """
    DSP = "dsp"         # an ordinary product: synthesis maps it to a DSP block where it can
    LUT = "lut"         # shift-and-add partial products that synthesis cannot map to a DSP
    MIXED = "mixed"     # the first ``dsp_limit`` PEs (row-major) DSP, the others LUT


class DspPrimitive(enum.Enum):
    """An FPGA DSP block the DSP PEs instantiate, with its own registers.

    Yosys maps a ``*`` to an ECP5 MULT18X18D without its registers, so every product is a path
    from fabric registers through the block back to fabric (13.9 ns on a 16x16 ULX3S core,
    9.5 of them routing, 2026-12-05 #8). Instantiated with its registers as the PE's operand and
    product registers, the block's multiply is a register-to-register path inside it.
    Simulation uses ``sim/primitives.py``'s model of the block.
    """
    ECP5 = "ecp5"       # MULT18X18D, A, B and output registers on CLK0/CE0

    @property
    def cell(self) -> str:
        return {DspPrimitive.ECP5: "MULT18X18D"}[self]


def _choices(enum_type) -> str:
    return ", ".join(member.value for member in enum_type)


def _coerce(enum_type, value, what):
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except ValueError:
        raise ValueError(f"{what} must be one of {_choices(enum_type)}, not {value!r}") from None


_PE_PATTERN = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_pe(text: str) -> tuple[int, int]:
    """Parse an array shape written ``RxC`` (e.g. ``16x16``) into ``(rows, cols)``."""
    match = _PE_PATTERN.match(text)
    if not match:
        raise ValueError(f"PE array shape must be RxC with R and C from 1 to {MAX_ARRAY_DIM} "
                         f"(e.g. 16x16), not {text!r}")
    rows, cols = int(match[1]), int(match[2])
    for value in (rows, cols):
        if not 1 <= value <= MAX_ARRAY_DIM:
            raise ValueError(f"PE array shape must have R and C from 1 to {MAX_ARRAY_DIM}, "
                             f"not {text!r}")
    return rows, cols


@dataclass(frozen=True)
class ArrayConfig:
    """Shape, dataflow and arithmetic of a systolic array.

    Parameters
    ----------
    rows, cols : int
        Array height R and width C, each from 1 to ``MAX_ARRAY_DIM``.
    dataflow : Dataflow or str
        ``"ws"`` or ``"os"``.
    arith : ArithSupport or str
        ``"int8"``, ``"binary"`` or ``"both"``.
    multipliers : Multipliers or str
        ``"dsp"`` (default), ``"lut"`` or ``"mixed"``.
    dsp_limit : int or None
        With ``"mixed"`` only: how many PEs (row-major) get a DSP multiplier, 1 to R*C - 1.
    depthwise : bool or None
        Give the array its depthwise mode, chosen per COMPUTE: each column correlates its own
        channel with the taps of its weight lane (WS: R stationary taps; OS: the taps streamed
        with the tile, every row one output pixel; ``hdl.isa.COMPUTE``), at the cost of an
        operand multiplexer per PE. Default: on.
    pipelined : bool
        Register the input lanes at the array's edge and each PE's product halfway and before it
        is accumulated (``PIPELINE_STAGES`` more cycles of latency), so that no path runs from a
        stream handshake through a multiplier, nor through a whole logic multiplier, nor through a
        multiplier and a 32-bit adder: what an FPGA needs for 100 MHz.
    dsp_primitive : DspPrimitive or str or None
        Instantiate this FPGA DSP block (``"ecp5"``) with its registers in each DSP PE instead
        of a ``*``; needs ``pipelined`` and int8 arithmetic. Default: none.
    paired : bool or None
        (Arrays with the depthwise mode and int8 MACs) take paired depthwise COMPUTEs (``hdl.isa.COMPUTE``): a
        stride-2 window's even and odd columns in one COMPUTE, at the cost of a second activation
        read port, a third operand per PE (WS: per PE of row 0) and R (R - 1) / 2 lane registers.
        Default: on where the array can.

    Raises
    ------
    TypeError, ValueError
        When a parameter has the wrong type or value; the message says what is allowed.
    """
    rows: int
    cols: int
    dataflow: Dataflow = Dataflow.OS
    arith: ArithSupport = ArithSupport.INT8
    multipliers: Multipliers = Multipliers.DSP
    dsp_limit: int | None = None
    pipelined: bool = False
    depthwise: bool | None = None
    dsp_primitive: DspPrimitive | None = None
    paired: bool | None = None

    PRODUCT_STAGES = 2      # the product's registers: its halves (Booth sums; a DSP block's output register), then whole
    PIPELINE_STAGES = 1 + PRODUCT_STAGES     # with the edge register

    def __post_init__(self):
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"Array {name} must be an integer, not {value!r}")
            if not 1 <= value <= MAX_ARRAY_DIM:
                raise ValueError(f"Array {name} must be from 1 to {MAX_ARRAY_DIM}, not {value}")
        object.__setattr__(self, "dataflow", _coerce(Dataflow, self.dataflow, "Dataflow"))
        object.__setattr__(self, "arith", _coerce(ArithSupport, self.arith, "Arithmetic"))
        object.__setattr__(self, "multipliers", _coerce(Multipliers, self.multipliers, "Multipliers"))
        if not isinstance(self.pipelined, bool):
            raise TypeError(f"Array pipelined must be True or False, not {self.pipelined!r}")
        if self.depthwise is None:
            object.__setattr__(self, "depthwise", True)
        elif not isinstance(self.depthwise, bool):
            raise TypeError(f"Array depthwise must be True, False or None (the default: on), "
                            f"not {self.depthwise!r}")
        can_pair = self._can_pair()
        if self.paired is None:
            object.__setattr__(self, "paired", can_pair)
        elif not isinstance(self.paired, bool):
            raise TypeError(f"Array paired must be True, False or None (the default: on where the array can), "
                            f"not {self.paired!r}")
        elif self.paired and not can_pair:
            raise ValueError(f"Paired depthwise COMPUTEs need an array with the depthwise mode and int8 MACs, "
                             f"not depthwise {self.depthwise} with arith {self.arith.value}")
        if self.dsp_primitive is not None:
            object.__setattr__(self, "dsp_primitive", _coerce(DspPrimitive, self.dsp_primitive, "DSP primitive"))
            problem = self.dsp_primitive_problem(self.dsp_primitive)
            if problem is not None:
                raise ValueError(problem)
        pes = self.rows * self.cols
        if self.multipliers == Multipliers.MIXED:
            if (not isinstance(self.dsp_limit, int) or isinstance(self.dsp_limit, bool)
                    or not 1 <= self.dsp_limit < pes):
                raise ValueError(f"Mixed multipliers need a DSP limit from 1 to {pes - 1} "
                                 f"(the PEs of a {self.rows}x{self.cols} array less one), not {self.dsp_limit!r}")
        elif self.dsp_limit is not None:
            raise ValueError(f"A DSP limit applies only to mixed multipliers, not {self.multipliers.value}")

    @classmethod
    def from_strings(cls, pe: str, dataflow: str, arith: str, multipliers: str = "dsp",
                     dsp_limit: int | None = None, pipelined: bool = False,
                     depthwise: bool | None = None, dsp_primitive: str | None = None,
                     paired: bool | None = None) -> "ArrayConfig":
        """Build from CLI-style text, e.g. ``("16x16", "os", "int8")``."""
        rows, cols = parse_pe(pe)
        return cls(rows, cols, dataflow, arith, multipliers, dsp_limit, pipelined, depthwise, dsp_primitive, paired)

    @property
    def latency_stages(self) -> int:
        """Extra cycles between an input beat and its results that pipelining adds."""
        return self.PIPELINE_STAGES if self.pipelined else 0

    def dsp_multiplier(self, row: int, col: int) -> bool:
        """Whether PE (row, col) multiplies int8 lanes with an ordinary (DSP-mappable) product."""
        if self.multipliers == Multipliers.MIXED:
            return row * self.cols + col < self.dsp_limit
        return self.multipliers == Multipliers.DSP

    def dsp_primitive_problem(self, primitive: DspPrimitive) -> str | None:
        """Why this array cannot instantiate ``primitive`` in its DSP PEs, or None if it can."""
        if not self.pipelined:
            return (f"The {primitive.value} DSP primitive needs a pipelined array: "
                    "its registers are the PE's operand and product registers")
        if self.arith != ArithSupport.INT8:
            return f"The {primitive.value} DSP primitive needs int8 arithmetic, not {self.arith.value}"
        if self.multipliers == Multipliers.LUT:
            return f"The {primitive.value} DSP primitive needs dsp or mixed multipliers, not lut"
        return None

    @property
    def product_stages(self) -> int:
        """Registers between a PE's operands and its accumulator."""
        return self.PRODUCT_STAGES if self.pipelined else 0

    @property
    def early_operands(self) -> bool:
        """Whether PEs get their operands a cycle early, to register them: a pipelined array with
        the depthwise mode (the operand select) or a DSP primitive (its input registers)."""
        return self.pipelined and (self.depthwise or self.dsp_primitive is not None)

    def _can_pair(self) -> bool:
        """Whether the array could take paired COMPUTEs (int8 only): it has the depthwise mode and int8 MACs."""
        return self.depthwise and ArithMode.INT8 in self.modes

    @property
    def early_weights(self) -> bool:
        """Whether PEs get the streamed weight a cycle early: OS with a DSP primitive (its input register)."""
        return self.dsp_primitive is not None and self.dataflow == Dataflow.OS

    @property
    def dsp_multipliers(self) -> int:
        """How many int8 multipliers synthesis may map to DSP blocks (binary-only arrays have none)."""
        if ArithMode.INT8 not in self.modes:
            return 0
        return sum(self.dsp_multiplier(row, col) for row in range(self.rows) for col in range(self.cols))

    @property
    def modes(self) -> tuple[ArithMode, ...]:
        return self.arith.modes

    @property
    def name(self) -> str:
        """A short identifier, usable as a Verilog module or directory name."""
        suffix = {Multipliers.DSP: "", Multipliers.LUT: "_lut", Multipliers.MIXED: f"_dsp{self.dsp_limit}"}
        return (f"systolic_{self.rows}x{self.cols}_{self.dataflow.value}_{self.arith.value}"
                f"{suffix[self.multipliers]}{'_p' if self.pipelined else ''}"
                f"{'' if self.depthwise else '_nodw'}"
                f"{'_nopair' if self._can_pair() and not self.paired else ''}"
                f"{'' if self.dsp_primitive is None else '_' + self.dsp_primitive.value}")

    @staticmethod
    def dataflow_choices() -> list[str]:
        return [member.value for member in Dataflow]

    @staticmethod
    def arith_choices() -> list[str]:
        return [member.value for member in ArithSupport]

    @staticmethod
    def multipliers_choices() -> list[str]:
        return [member.value for member in Multipliers]

    @staticmethod
    def dsp_primitive_choices() -> list[str]:
        return [member.value for member in DspPrimitive]


BUS_WIDTHS = (64, 128)


@dataclass(frozen=True)
class AcceleratorConfig:
    """The whole accelerator: the array plus its memories and its DRAM bus.

    Parameters
    ----------
    array : ArrayConfig
    spad_kib : int
        Activation + weight scratchpad capacity in KiB (split evenly), 1 to 1024.
    acc_kib : int
        Accumulator SRAM capacity in KiB (int32 rows of C lanes), 1 to 1024.
    bus_bits : int
        AXI4 data width, 64 or 128.
    channel_rows : int
        Rows of the channel-parameter memory (C output channels each), 1 to 4096.
    """
    array: ArrayConfig
    spad_kib: int = 64
    acc_kib: int = 64
    bus_bits: int = 128
    channel_rows: int = 64

    def __post_init__(self):
        if not isinstance(self.array, ArrayConfig):
            raise TypeError(f"Accelerator array must be an ArrayConfig, not {self.array!r}")
        for name in ("spad_kib", "acc_kib"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1024:
                raise ValueError(f"{name} must be an integer from 1 to 1024, not {value!r}")
        if not isinstance(self.channel_rows, int) or not 1 <= self.channel_rows <= 4096:
            raise ValueError(f"channel_rows must be an integer from 1 to 4096, not {self.channel_rows!r}")
        if self.bus_bits not in BUS_WIDTHS:
            raise ValueError(f"Bus width must be one of {', '.join(map(str, BUS_WIDTHS))} bits, "
                             f"not {self.bus_bits!r}")
        for name, rows in (("activation scratchpad", self.act_rows), ("weight scratchpad", self.weight_rows),
                           ("accumulator", self.acc_rows)):
            if not self.array.rows <= rows <= MAX_MEMORY_ROWS:
                raise ValueError(f"The {name} holds {rows} rows with these sizes; it needs "
                                 f"{self.array.rows} to {MAX_MEMORY_ROWS} rows (change --spad-kib/--acc-kib)")

    @property
    def bus_bytes(self) -> int:
        return self.bus_bits // 8

    @property
    def act_rows(self) -> int:
        """Rows of R int8 lanes in the activation scratchpad."""
        return self.spad_kib * 512 // self.array.rows

    @property
    def weight_rows(self) -> int:
        """Rows of C int8 lanes in the weight scratchpad."""
        return self.spad_kib * 512 // self.array.cols

    @property
    def acc_rows(self) -> int:
        """Rows of C int32 lanes in the accumulator SRAM."""
        return self.acc_kib * 1024 // (4 * self.array.cols)
