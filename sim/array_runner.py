"""Run GEMMs on a generated systolic array in Verilator and decode the results."""
from dataclasses import dataclass

import numpy as np

from hdl.config import ArrayConfig
from hdl.generate import generate_verilog
from hdl.numerics import ArithMode

from .array_stream import GemmStreams, decode_gemm, encode_gemm
from .play import play_streams
from .verilator import VerilatorModel

__all__ = ["GemmCase", "GemmOutcome", "array_model", "run_gemms"]


@dataclass
class GemmCase:
    """One GEMM to run, with optional random input gaps (the array's results have no back-pressure)."""
    a: np.ndarray
    w: np.ndarray
    mode: ArithMode
    seed: int = 0
    valid_probability: float = 1.0


@dataclass
class GemmOutcome:
    case: GemmCase
    streams: GemmStreams
    product: np.ndarray
    partials: list[np.ndarray]
    cycles: int                 # first input accepted to last result, inclusive
    simulated_cycles: int       # every clock cycle the run simulated
    sim_seconds: float          # wall time of the cycle loop alone


def array_model(config: ArrayConfig) -> VerilatorModel:
    """The (cached) Verilator model of ``config``'s array."""
    return VerilatorModel(generate_verilog(config), config.name).build()


def run_gemms(config: ArrayConfig, cases: list[GemmCase], model: VerilatorModel | None = None) -> list[GemmOutcome]:
    """Run ``cases`` back to back in one simulation; return the decoded outcomes."""
    model = model or array_model(config)
    all_streams = [encode_gemm(config, case.a, case.w, case.mode) for case in cases]
    runs = [{
        "inputs": {"activations": streams.activations, "weights": streams.weights},
        "output": "results",
        "output_beats": streams.result_beats,
        "seed": case.seed,
        "valid_probability": case.valid_probability,
    } for case, streams in zip(cases, all_streams)]
    outcomes = play_streams(model, runs)
    decoded = []
    for case, streams, outcome in zip(cases, all_streams, outcomes):
        product, partials = decode_gemm(streams, outcome["outputs"])
        decoded.append(GemmOutcome(case, streams, product, partials, outcome["cycles"],
                                   outcome["simulated_cycles"], outcome["seconds"]))
    return decoded
