"""cocotb bench for the whole accelerator: an AxiRam as DRAM, an AxiLiteMaster on the registers.

The job (JSON named by ``ACCEL_JOB``) lists runs: ``{"image", "program_addr",
"program_length", "backpressure", "seed", "reset_before", "reset_after"}``.
Each run loads its image (a file) into a fresh DRAM, resets the design unless
``reset_before`` is false (START alone must then recover from the previous
run, even a failed one), starts the program through the CSRs, waits for the
interrupt (DONE or ERROR) and records the status, error code, performance
counters and the final DRAM (``<dump>.<run>.bin``). With ``reset_after`` it
pulses ``rst`` that many cycles into the run and then runs the program again
from the start: the design must recover from a mid-program reset.
"""
import json
import logging
import os
import random
from itertools import cycle
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from hdl.csr import COUNTERS, Control, register


def _pauses(rng: random.Random, busy: float):
    return cycle([rng.random() < busy for _ in range(251)])


def _decode_errors(access, size: int):
    """AxiRam wraps addresses; make accesses beyond the DRAM fail, which it answers with SLVERR."""
    async def checked(address, *args):
        if address >= size:
            raise ValueError(f"address {address:#x} is beyond the {size}-byte DRAM")
        return await access(address, *args)
    return checked


async def _reset(dut):
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)


async def _start(dut, csr, run):
    await csr.write_dword(register("PROGRAM_ADDR").offset, run["program_addr"])
    await csr.write_dword(register("PROGRAM_LENGTH").offset, run["program_length"])
    await csr.write_dword(register("CONTROL").offset, Control.START | Control.IRQ_ENABLE)
    await ClockCycles(dut.clk, 2)      # START clears DONE/ERROR (and so the interrupt) a cycle later


async def _wait_for_irq(dut, limit: int) -> bool:
    if dut.irq.value:
        return True
    timeout = ClockCycles(dut.clk, limit)
    return await First(RisingEdge(dut.irq), timeout) is not timeout


@cocotb.test()
async def run_programs(dut):
    job = json.loads(Path(os.environ["ACCEL_JOB"]).read_text())
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi", bus_separator="__"), dut.clk, dut.rst, size=job["dram_size"])
    ram.read_if._read = _decode_errors(ram.read_if._read, job["dram_size"])
    ram.write_if._write = _decode_errors(ram.write_if._write, job["dram_size"])
    csr = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__"), dut.clk, dut.rst)
    for model in (ram.write_if, ram.read_if, csr.write_if, csr.read_if):
        model.log.setLevel(logging.WARNING)      # a line per burst would dominate the run time
    results = []
    for index, run in enumerate(job["runs"]):
        rng = random.Random(run.get("seed", index))
        busy = 0.4 if run.get("backpressure") else 0.0
        for channel in (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                        ram.read_if.ar_channel, ram.read_if.r_channel):
            channel.set_pause_generator(_pauses(rng, busy) if busy else None)
            if not busy:
                channel.pause = False     # clearing a generator keeps its last pause state
        image = Path(run["image"]).read_bytes()
        if run.get("reset_before", True) or index == 0:
            await _reset(dut)
        ram.write(0, image + bytes(job["dram_size"] - len(image)))
        await _start(dut, csr, run)
        if run.get("reset_after"):
            await ClockCycles(dut.clk, run["reset_after"])
            await _reset(dut)
            ram.write(0, image + bytes(job["dram_size"] - len(image)))
            await _start(dut, csr, run)
        finished = await _wait_for_irq(dut, job.get("max_cycles", 2_000_000))
        status = await csr.read_dword(register("STATUS").offset)
        outcome = {"finished": finished, "status": status,
                   "error_code": await csr.read_dword(register("ERROR_CODE").offset),
                   "counters": {name: await csr.read_dword(register(name).offset) for name in COUNTERS}}
        dump = f"{job['dump']}.{index}.bin"
        Path(dump).write_bytes(ram.read(0, job["dram_size"]))
        outcome["dram"] = dump
        results.append(outcome)
    Path(os.environ["ACCEL_RESULT"]).write_text(json.dumps(results))
