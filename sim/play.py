"""Run stream-player jobs (``sim.stream_player``) on a Verilator model from ordinary Python."""
import json
import tempfile
from pathlib import Path

from .verilator import BUILD_ROOT, VerilatorModel

__all__ = ["play_streams"]


def play_streams(model: VerilatorModel, runs: list[dict]) -> list[dict]:
    """Play ``runs`` back to back in one simulation of ``model``; return one outcome per run.

    A run is ``{"inputs": {stream: [packed beats]}, "output": stream, "output_beats": n}``
    plus optional ``"static": {port: value}`` (driven before the run starts),
    ``"seed"``, ``"valid_probability"``, ``"ready_probability"`` (1.0 for an output without ready) and
    ``"gapless": {stream: [beat indices]}`` (each offered in the cycle after the beat before it is
    taken, without a random gap). An outcome is
    ``{"outputs": [packed beats], "cycles", "simulated_cycles", "seconds"}``.
    """
    (BUILD_ROOT / "runs").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_ROOT / "runs", prefix=f"{model.toplevel}-") as workdir:
        workdir = Path(workdir)
        job, result = workdir / "job.json", workdir / "result.json"
        job.write_text(json.dumps({"runs": runs}))
        model.run("sim.stream_player", {"STREAM_JOB": str(job), "STREAM_RESULT": str(result)}, workdir)
        return json.loads(result.read_text())
