"""The board PLL: the accelerator's ``sync`` clock made from the board oscillator.

nextpnr derives the output clock's constraint from the oscillator's.
``plan_pll`` picks the divider settings (as Project Trellis' ``ecppll`` and
IceStorm's ``icepll`` do: every legal setting, the closest output frequency
wins); ``PllClock`` instantiates the primitive (ECP5 ``EHXPLLL``, iCE40
``SB_PLL40_PAD``), drives the ``sync`` domain from it and holds ``sync`` in
reset until the PLL locks. Primitives cannot be simulated here: what is
checked is the plan (``tests/test_boards.py``) and that synthesis keeps one PLL
cell with these parameters.
"""
from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["PllPlan", "plan_pll", "PllClock"]

# Data sheet operating ranges, MHz: (input, phase detector, VCO, output).
_ECP5_RANGES = {"input": (8.0, 400.0), "pfd": (3.125, 400.0), "vco": (400.0, 800.0), "output": (3.125, 400.0)}
_ICE40_RANGES = {"input": (10.0, 133.0), "pfd": (10.0, 133.0), "vco": (533.0, 1066.0), "output": (16.0, 275.0)}
RANGES = {"ecp5": _ECP5_RANGES, "ice40": _ICE40_RANGES}


@dataclass(frozen=True)
class PllPlan:
    """One PLL setting: the primitive's parameters and the frequencies they give."""
    family: str
    input_mhz: float
    output_mhz: float
    vco_mhz: float
    parameters: dict


def _check(family: str, input_mhz: float, output_mhz: float) -> dict:
    if family not in RANGES:
        raise ValueError(f"PLL family must be one of {', '.join(RANGES)}, not {family!r}")
    ranges = RANGES[family]
    for name, value in (("input", input_mhz), ("output", output_mhz)):
        low, high = ranges[name]
        if not low <= value <= high:
            raise ValueError(f"{family} PLL {name} must be {low:g} to {high:g} MHz, not {value:g}")
    return ranges


def _inside(ranges: dict, name: str, value: float) -> bool:
    low, high = ranges[name]
    return low <= value <= high


def _preference(ranges: dict, out: float, wanted: float, vco: float) -> tuple[float, float]:
    """Closest output first; on ties the VCO nearest the middle of its range, away from the lock limits."""
    low, high = ranges["vco"]
    return round(abs(out - wanted), 6), abs(vco - (low + high) / 2)


def plan_pll(family: str, input_mhz: float, output_mhz: float) -> PllPlan:
    """The legal PLL setting whose output is closest to ``output_mhz`` (see ``_preference`` for ties)."""
    ranges = _check(family, input_mhz, output_mhz)
    best = None
    if family == "ecp5":
        # Feedback from CLKOP: out = in / CLKI_DIV * CLKFB_DIV, VCO = out * CLKOP_DIV.
        for input_div in range(1, 129):
            pfd = input_mhz / input_div
            if not _inside(ranges, "pfd", pfd):
                continue
            for feedback_div in range(1, 81):
                out = pfd * feedback_div
                if not _inside(ranges, "output", out):
                    continue
                for output_div in range(1, 129):
                    vco = out * output_div
                    if _inside(ranges, "vco", vco):
                        key = _preference(ranges, out, output_mhz, vco)
                        if best is None or key < best[0]:
                            best = (key, out, vco, {
                                "CLKI_DIV": input_div, "CLKFB_DIV": feedback_div, "CLKOP_DIV": output_div,
                                # Lattice's tools shift the primary output by half a cycle.
                                "CLKOP_CPHASE": output_div // 2, "CLKOP_FPHASE": 0})
    else:
        # SIMPLE feedback: out = in / (DIVR + 1) * (DIVF + 1) / 2**DIVQ, VCO = out * 2**DIVQ.
        for divr in range(16):
            pfd = input_mhz / (divr + 1)
            if not _inside(ranges, "pfd", pfd):
                continue
            for divf in range(128):
                vco = pfd * (divf + 1)
                if not _inside(ranges, "vco", vco):
                    continue
                for divq in range(1, 7):
                    out = vco / (1 << divq)
                    if _inside(ranges, "output", out):
                        key = _preference(ranges, out, output_mhz, vco)
                        if best is None or key < best[0]:
                            best = (key, out, vco, {"DIVR": divr, "DIVF": divf, "DIVQ": divq,
                                                      "FILTER_RANGE": _ice40_filter_range(pfd)})
    if best is None:
        raise ValueError(f"No {family} PLL setting makes {output_mhz:g} MHz from {input_mhz:g} MHz")
    _, out, vco, parameters = best
    return PllPlan(family, input_mhz, out, vco, parameters)


def _ice40_filter_range(pfd_mhz: float) -> int:
    """The loop filter setting for a phase detector frequency (iCE40 sysCLOCK PLL guide, as icepll)."""
    for limit, setting in ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5)):
        if pfd_mhz < limit:
            return setting
    return 6


class PllClock(Elaboratable):
    """Drives the ``sync`` domain at ``plan.output_mhz`` from the board clock resource ``clock_pin``.

    ``clock_pin`` is the platform's default clock requested with ``dir="-"``; the parent module
    defines the ``sync`` domain (Amaranth wants domains defined above their users).
    """

    def __init__(self, plan: PllPlan, clock_pin):
        self.plan = plan
        self.clock_pin = clock_pin

    def elaborate(self, platform):
        m = Module()
        locked = Signal()
        parameters = {f"p_{name}": value for name, value in self.plan.parameters.items()}
        if self.plan.family == "ecp5":
            buffer = m.submodules.clock_buffer = io.Buffer("i", self.clock_pin)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{self.plan.input_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{self.plan.output_mhz:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
                p_FEEDBK_PATH="CLKOP", **parameters,
                i_CLKI=buffer.i, i_CLKFB=ClockSignal("sync"), o_CLKOP=ClockSignal("sync"),
                i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
                i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
        else:
            # The PAD variant takes the oscillator pin directly, without an input buffer.
            m.submodules.pll = Instance(
                "SB_PLL40_PAD", p_FEEDBACK_PATH="SIMPLE", **parameters,
                io_PACKAGEPIN=self.clock_pin.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=ClockSignal("sync"), o_LOCK=locked)
        m.submodules.reset = ResetSynchronizer(~locked, domain="sync")
        return m
