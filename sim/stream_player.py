"""A cocotb test that plays packed beats into a design's streams and records its output.

It knows nothing about GEMMs: the job (a JSON file named by ``STREAM_JOB``)
lists runs, each with beats for some input streams, the output stream's name
and how many output beats to wait for, plus optional values for static ports
(held during the run), random valid gaps (except before beats named gapless)
and ready back-pressure (``sim.play.play_streams`` documents the format). Results (output beats and cycle counts) go to the JSON
file named by ``STREAM_RESULT``; the caller checks them against the golden model.

Streams are Amaranth ports flattened as ``<name>__valid``, ``<name>__ready``
and ``<name>__payload``; a stream without ``ready`` (``always_ready``) takes
every valid beat. Inputs are driven after the falling clock edge and
handshakes are sampled in the read-only phase before the rising edge.
"""
import json
import os
import random
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly


def _port(dut, stream: str, signal: str):
    return getattr(dut, f"{stream}__{signal}")


def _ready(dut, stream: str):
    """The stream's ready port, or None for an ``always_ready`` stream (which has none)."""
    return getattr(dut, f"{stream}__ready", None)


async def _play(dut, run: dict) -> dict:
    rng = random.Random(run.get("seed", 0))
    valid_probability = run.get("valid_probability", 1.0)
    ready_probability = run.get("ready_probability", 1.0)
    inputs = {name: [int(beat) for beat in beats] for name, beats in run["inputs"].items()}
    gapless = {name: set(run.get("gapless", {}).get(name, ())) for name in inputs}
    output, expected = run["output"], run["output_beats"]
    out_ready = _ready(dut, output)
    if out_ready is None and ready_probability != 1.0:
        raise ValueError(f"output {output!r} has no ready, so ready_probability must be 1.0, not {ready_probability}")
    position = dict.fromkeys(inputs, 0)
    offering = dict.fromkeys(inputs, False)
    received, cycle, first_accept, last_output = [], 0, None, None
    max_cycles = run.get("max_cycles", 100_000 + 100 * sum(map(len, inputs.values())))
    for port, value in run.get("static", {}).items():
        getattr(dut, port).value = int(value)

    ports = {name: (_port(dut, name, "valid"), _ready(dut, name), _port(dut, name, "payload"))
             for name in inputs}
    out_valid, out_payload = _port(dut, output, "valid"), _port(dut, output, "payload")
    driven_valid = dict.fromkeys(inputs, None)
    driven_beat = dict.fromkeys(inputs, None)
    driven_ready = None
    start = time.perf_counter()
    while len(received) < expected:
        await FallingEdge(dut.clk)
        # Writes are slow in cocotb (wide payloads especially): only write what changed.
        for name, beats in inputs.items():
            # A beat once offered stays offered until taken (stream rule).
            if not offering[name] and position[name] < len(beats):
                offering[name] = position[name] in gapless[name] or rng.random() < valid_probability
            valid, _, payload = ports[name]
            if driven_valid[name] != offering[name]:
                valid.value = driven_valid[name] = int(offering[name])
            if offering[name] and driven_beat[name] != position[name]:
                payload.value = beats[position[name]]
                driven_beat[name] = position[name]
        ready = rng.random() < ready_probability
        if driven_ready != ready and out_ready is not None:
            out_ready.value = int(ready)
            driven_ready = ready
        await ReadOnly()
        for name in inputs:
            input_ready = ports[name][1]
            if offering[name] and (input_ready is None or input_ready.value):
                position[name] += 1
                offering[name] = False
                first_accept = cycle if first_accept is None else first_accept
        if ready and out_valid.value:
            received.append(out_payload.value.to_unsigned())
            last_output = cycle
        cycle += 1
        if cycle > max_cycles:
            raise TimeoutError(f"{len(received)} of {expected} output beats after {cycle} cycles; "
                               f"inputs taken: {position}")
    await FallingEdge(dut.clk)
    for name in inputs:
        _port(dut, name, "valid").value = 0
    return {"outputs": received, "cycles": last_output - first_accept + 1,
            "simulated_cycles": cycle, "seconds": time.perf_counter() - start}


@cocotb.test()
async def play_streams(dut):
    job = json.loads(Path(os.environ["STREAM_JOB"]).read_text())
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for run in job["runs"]:
        for name in run["inputs"]:
            _port(dut, name, "valid").value = 0
        out_ready = _ready(dut, run["output"])
        if out_ready is not None:
            out_ready.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    outcomes = [await _play(dut, run) for run in job["runs"]]
    Path(os.environ["STREAM_RESULT"]).write_text(json.dumps(outcomes))
