"""Run programs on the generated accelerator in Verilator (cocotb + cocotbext-axi) from Python."""
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hdl.config import AcceleratorConfig
from hdl.csr import ErrorCode, Status
from hdl.generate import accelerator_name, generate_accelerator_verilog

from .verilator import BUILD_ROOT, VerilatorModel

__all__ = ["AcceleratorRun", "RunOutcome", "accelerator_model", "run_programs"]



@dataclass
class AcceleratorRun:
    """A program in a DRAM image, and how to run it."""
    image: bytes
    program_addr: int
    program_length: int
    backpressure: bool = False      # random stalls on every AXI channel of the DRAM model
    seed: int = 0
    reset_before: bool = True       # False: START alone follows the previous run
    reset_after: int = 0            # pulse rst this many cycles in, then run again


@dataclass
class RunOutcome:
    finished: bool
    done: bool
    error: ErrorCode | None
    counters: dict[str, int]
    dram: bytes = field(repr=False)


def accelerator_model(config: AcceleratorConfig) -> VerilatorModel:
    """The (cached) Verilator model of ``config``'s accelerator."""
    return VerilatorModel(generate_accelerator_verilog(config, collision_checks=True), accelerator_name(config)).build()


def run_programs(config: AcceleratorConfig, runs: list[AcceleratorRun], model: VerilatorModel | None = None,
                 dram_size: int | None = None) -> list[RunOutcome]:
    """Run each program on a fresh copy of its image in one simulation.

    DRAM is ``dram_size`` bytes (default: the largest image rounded up to 4 KiB);
    accesses beyond it get SLVERR.
    """
    model = model or accelerator_model(config)
    dram_size = dram_size or -(-max(len(run.image) for run in runs) // 4096) * 4096
    (BUILD_ROOT / "runs").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_ROOT / "runs", prefix=f"{model.toplevel}-") as workdir:
        workdir = Path(workdir)
        described = []
        for index, run in enumerate(runs):
            (workdir / f"image.{index}.bin").write_bytes(run.image)
            described.append({**vars(run), "image": str(workdir / f"image.{index}.bin")})
        job = {"dram_size": dram_size, "dump": str(workdir / "dram"), "runs": described}
        (workdir / "job.json").write_text(json.dumps(job))
        model.run("sim.accelerator_tb", {"ACCEL_JOB": str(workdir / "job.json"),
                                         "ACCEL_RESULT": str(workdir / "result.json")}, workdir)
        outcomes = []
        for raw in json.loads((workdir / "result.json").read_text()):
            error = bool(raw["status"] & Status.ERROR)
            outcomes.append(RunOutcome(raw["finished"], bool(raw["status"] & Status.DONE),
                                       ErrorCode(raw["error_code"]) if error else None, raw["counters"],
                                       Path(raw["dram"]).read_bytes()))
        return outcomes
