"""Run ``sim/host_link_tb.py`` scenarios on a Verilator model of ``hdl.soc.HostLinkSoC`` from Python."""
import json
import tempfile
from pathlib import Path

from hdl.soc import HostLinkSoC, generate_soc_verilog, soc_name
from hdl.uart import FRAME_BITS

from .verilator import BUILD_ROOT, VerilatorModel

__all__ = ["soc_model", "run_host_scenario"]


def soc_model(soc: HostLinkSoC) -> VerilatorModel:
    """The (cached) Verilator model of ``soc``."""
    return VerilatorModel(generate_soc_verilog(soc), soc_name(soc.config, soc.memory_kib)).build()


def run_host_scenario(soc: HostLinkSoC, scenario: str, model: VerilatorModel | None = None, **job) -> dict:
    """Run one scenario of ``sim.host_link_tb`` (``"program"``, ``"cli"`` or ``"protocol"``) and return what it saw.

    ``job`` holds the scenario's arguments (``program``: ``image`` bytes, ``program_addr``,
    ``program_length``, ``reads`` as (address, size) pairs; ``cli``: ``argv`` of tools/host.py;
    ``protocol``: ``seed``).
    """
    model = model or soc_model(soc)
    info = soc.info
    (BUILD_ROOT / "runs").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_ROOT / "runs", prefix=f"{model.toplevel}-") as workdir:
        workdir = Path(workdir)
        if "image" in job:
            (workdir / "image.bin").write_bytes(bytes(job["image"]))
            job["image"] = str(workdir / "image.bin")
        # The driver's reads must outlast the bridge's timeout, so that resync() finds the bridge idle.
        job.update(scenario=scenario, clocks_per_bit=info.clocks_per_bit,
                   read_timeout_cycles=2 * info.timeout_cycles + 2 * FRAME_BITS * info.clocks_per_bit)
        (workdir / "job.json").write_text(json.dumps(job))
        model.run("sim.host_link_tb", {"HOST_LINK_JOB": str(workdir / "job.json"),
                                       "HOST_LINK_RESULT": str(workdir / "result.json")}, workdir)
        return json.loads((workdir / "result.json").read_text())
