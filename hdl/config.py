"""The accelerator's generation parameters, validated once.

Every hardware unit, the CLI and (later) the compiler take an ``ArrayConfig``;
nothing else re-checks or re-derives these values.
"""
import enum
import re
from dataclasses import dataclass

from .numerics import ArithMode

__all__ = ["Dataflow", "ArithSupport", "ArrayConfig", "MAX_ARRAY_DIM", "parse_pe"]

MAX_ARRAY_DIM = 64


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

    Raises
    ------
    TypeError, ValueError
        When a parameter has the wrong type or value; the message says what is allowed.
    """
    rows: int
    cols: int
    dataflow: Dataflow = Dataflow.OS
    arith: ArithSupport = ArithSupport.INT8

    def __post_init__(self):
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"Array {name} must be an integer, not {value!r}")
            if not 1 <= value <= MAX_ARRAY_DIM:
                raise ValueError(f"Array {name} must be from 1 to {MAX_ARRAY_DIM}, not {value}")
        object.__setattr__(self, "dataflow", _coerce(Dataflow, self.dataflow, "Dataflow"))
        object.__setattr__(self, "arith", _coerce(ArithSupport, self.arith, "Arithmetic"))

    @classmethod
    def from_strings(cls, pe: str, dataflow: str, arith: str) -> "ArrayConfig":
        """Build from CLI-style text, e.g. ``("16x16", "os", "int8")``."""
        rows, cols = parse_pe(pe)
        return cls(rows, cols, dataflow, arith)

    @property
    def modes(self) -> tuple[ArithMode, ...]:
        return self.arith.modes

    @property
    def name(self) -> str:
        """A short identifier, usable as a Verilog module or directory name."""
        return f"systolic_{self.rows}x{self.cols}_{self.dataflow.value}_{self.arith.value}"

    @staticmethod
    def dataflow_choices() -> list[str]:
        return [member.value for member in Dataflow]

    @staticmethod
    def arith_choices() -> list[str]:
        return [member.value for member in ArithSupport]
