"""The FPGA boards the flow builds for, each defined once.

Device, package, speed grade and the board oscillator come from the
amaranth-boards platform; the resource totals (which amaranth-boards does not
carry) are from the Lattice data sheets and are what nextpnr reports as
available for the device.
"""
from dataclasses import dataclass

from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from hdl.config import DspPrimitive

__all__ = ["Board", "BOARDS", "board_choices", "FAMILY_CELLS", "NEXTPNR_CELLS"]

# Yosys / nextpnr cell types of each resource, per family. LUTs: a CCU2C carry cell fills two
# LUT4 sites and a DPR16X4 distributed RAM cell takes the LUT4s of a slice pair (so nextpnr's
# TRELLIS_COMB count is the comparable figure); on iCE40 the carry rides beside the LUT.
FAMILY_CELLS = {
    "ecp5": {
        "LUTs": {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 4},
        "FFs": {"TRELLIS_FF": 1},
        "DSPs": {"MULT18X18D": 1},
        "block RAMs": {"DP16KD": 1},
    },
    "ice40": {
        "LUTs": {"SB_LUT4": 1},
        "FFs": {name: 1 for name in ("SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFR", "SB_DFFS", "SB_DFFESR",
                                     "SB_DFFER", "SB_DFFES", "SB_DFFSS", "SB_DFFESS")},
        "DSPs": {"SB_MAC16": 1},
        "block RAMs": {"SB_RAM40_4K": 1},
        "SPRAMs": {"SB_SPRAM256KA": 1},
    },
}

# nextpnr's report names for the same resources. An iCE40 logic cell holds a LUT and an FF and
# nextpnr counts cells, so iCE40 FFs stay as synthesis counted them.
NEXTPNR_CELLS = {
    "ecp5": {"LUTs": "TRELLIS_COMB", "FFs": "TRELLIS_FF", "DSPs": "MULT18X18D", "block RAMs": "DP16KD"},
    "ice40": {"LUTs": "ICESTORM_LC", "DSPs": "ICESTORM_DSP", "block RAMs": "ICESTORM_RAM",
              "SPRAMs": "ICESTORM_SPRAM"},
}


# The UART host-link SoC on a board's USB-serial bridge, its interrupt on the first LED.
_UART_SOC_PINS = {"uart_rx": ("uart", 0, "rx"), "uart_tx": ("uart", 0, "tx"), "irq": ("led", 0, None)}


@dataclass(frozen=True)
class Board:
    """One board: its platform (device, package, oscillator) and its FPGA's resources.

    ``block_ram_bits`` is the data capacity of one block RAM in its widest
    configuration (ECP5 DP16KD: 512 x 36 = 18 Kbit; iCE40 SB_RAM40_4K: 256 x 16
    = 4 Kbit); ``default_clock_mhz`` is the accelerator clock the PLL makes
    from the oscillator, the target the timing report is held to.
    """
    name: str
    platform: type
    family: str
    resources: dict
    block_ram_bits: int
    block_ram_widths: tuple        # (depth, width) configurations of one block RAM
    default_clock_mhz: float
    soc_pins: dict | None = None   # hdl.soc.HostLinkSoC port -> (resource, number, subsignal); None: no UART

    @property
    def dsp_primitive(self) -> DspPrimitive | None:
        """The DSP block the array's DSP PEs can instantiate with its registers (``hdl.config.DspPrimitive``)."""
        return {"ecp5": DspPrimitive.ECP5}.get(self.family)

    @property
    def device(self) -> str:
        return self.platform.device

    @property
    def package(self) -> str:
        return self.platform.package

    @property
    def oscillator_mhz(self) -> float:
        return self.platform().default_clk_frequency / 1e6

    def nextpnr_device_options(self) -> list[str]:
        """Device and package options of nextpnr-<family>, from the amaranth platform's own tables."""
        platform = self.platform
        if self.family == "ecp5":
            return [platform._nextpnr_device_options[platform.device],
                    "--package", platform._nextpnr_package_options[platform.package].upper(),
                    "--speed", str(platform.speed)]
        return [platform._nextpnr_device_options[platform.device],
                "--package", platform.package.lower() + platform._nextpnr_package_options.get(platform.device, "")]


BOARDS = {board.name: board for board in [
    # LFE5U-85F: 83,640 LUT4 + 83,640 FFs, 156 MULT18X18D, 208 DP16KD (data sheet FPGA-DS-02012).
    Board("ulx3s", ULX3S_85F_Platform, "ecp5",
          {"LUTs": 83640, "FFs": 83640, "DSPs": 156, "block RAMs": 208},
          18 * 1024, ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)), 100.0,
          _UART_SOC_PINS),
    # LFE5U-25F: 24,288 LUT4 + 24,288 FFs, 28 MULT18X18D, 56 DP16KD. amaranth-boards gives the
    # OrangeCrab no UART (its host port is USB), so it has no pinned SoC top.
    Board("orangecrab", OrangeCrabR0_2_25FPlatform, "ecp5",
          {"LUTs": 24288, "FFs": 24288, "DSPs": 28, "block RAMs": 56},
          18 * 1024, ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)), 100.0),
    # iCE40UP5K: 5,280 logic cells (LUT4 + FF each), 8 SB_MAC16, 30 SB_RAM40_4K, 4 SB_SPRAM256KA
    # (data sheet FPGA-DS-02008); the UP5K's fabric runs at tens of MHz, hence 24 MHz (2x the oscillator).
    Board("icebreaker", ICEBreakerPlatform, "ice40",
          {"LUTs": 5280, "FFs": 5280, "DSPs": 8, "block RAMs": 30, "SPRAMs": 4},
          4 * 1024, ((4096, 1), (2048, 2), (1024, 4), (512, 8), (256, 16)), 24.0, _UART_SOC_PINS),
]}


def board_choices() -> list[str]:
    return list(BOARDS)
