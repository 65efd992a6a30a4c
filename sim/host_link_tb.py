"""cocotb bench for ``hdl.soc.HostLinkSoC``: the host driver (``boards.host.HostLink``) over a UART model.

Only the pins are driven: ``uart_rx`` by ``sim.uart_model.UartSource``, ``uart_tx`` read by a
``UartSink``; the driver runs in a bridge thread exactly as it would on a serial port. The job
(JSON named by ``HOST_LINK_JOB``) names a scenario and its arguments; what the scenario saw is
written as JSON to ``HOST_LINK_RESULT``, and the pytest side (``tests/test_soc.py``) judges it.

* ``program``: connect (read the info block), load a DRAM image, start its program, wait for
  DONE or ERROR by polling STATUS, read the counters and the requested memory ranges.
* ``cli``: ``tools/host.py`` itself with ``argv``, its serial port replaced by the UART model
  (a stand-in ``serial`` module); returns its exit code and output.
* ``protocol``: every response kind of the bridge (see ``hdl.uart_bridge``): word round trips
  in every space, partial-word writes, BAD_ADDRESS (unaligned, beyond a space, crossing its
  end), BUS_ERROR (unmapped and read-only registers), BAD_COMMAND with trailing garbage,
  TIMEOUT of a truncated header and of truncated write data, and that the link works after each.
"""
import importlib.util
import io
import json
import os
import random
import sys
import types
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles

from boards.host import HostLink, LinkError
from hdl.uart_bridge import HEADER, HEADER_BYTES, INFO_WORDS, WORD_BYTES, Command, Space, Status

from .uart_model import SimTransport, UartSink, UartSource

CLOCK_NS = 10
_TOOLS = Path(__file__).resolve().parent.parent / "tools"


def _cycles(dut):
    async def now():
        return get_sim_time("ns") // CLOCK_NS
    return resume(now)()


def _program(link: HostLink, job: dict, dut) -> dict:
    words = link.read_words(Space.INFO, 0, INFO_WORDS)
    link.connect()
    image = Path(job["image"]).read_bytes()
    marks = {"begin": _cycles(dut)}
    link.load(image)
    marks["loaded"] = _cycles(dut)
    link.start(job["program_addr"], job["program_length"])
    result = link.wait(timeout=job.get("timeout", 120.0))
    marks["finished"] = _cycles(dut)
    counters = link.counters()
    reads = [link.read_memory(address, size).hex() for address, size in job["reads"]]
    marks["read"] = _cycles(dut)
    return {"info": words, "done": result.done, "error": result.error.value if result.error else None,
            "counters": counters, "reads": reads, "irq": int(resume(_pin)(dut.irq)),
            "cycles": {name: marks[name] - marks["begin"] for name in marks},
            "link_bytes": {"written": link.transport.bytes_written, "read": link.transport.bytes_read}}


async def _pin(pin):
    return pin.value


def _status_of(action) -> str:
    try:
        action()
    except LinkError as error:
        return error.status.name if error.status else f"garbage: {error}"
    return Status.OK.name


def _raw(link: HostLink, command: int, address: int, count: int, payload: bytes = b"") -> bytes:
    header = HEADER.const({"command": Command.READ_INFO, "address": address, "count": count}).as_value().value
    frame = bytes([command]) + header.to_bytes(HEADER_BYTES, "little")[1:] + payload
    link.transport.write(frame)
    return link.transport.read(4096)


def _protocol(link: HostLink, job: dict, dut) -> dict:
    rng = random.Random(job["seed"])
    seen = {}
    info = link.connect()
    size = info.memory_bytes
    ends = {"first": 0, "middle": size // 2 - 12, "last": size - 8 * WORD_BYTES}
    for name, address in ends.items():
        words = [rng.getrandbits(32) for _ in range(8)]
        link.write_words(Space.MEMORY, address, words)
        seen[f"round trip at {name}"] = link.read_words(Space.MEMORY, address, 8) == words
    before = link.read_memory(64, 12)
    link.write_memory(65, b"\xaa\xbb\xcc\xdd\xee")       # partial first and last words
    seen["partial write"] = [before.hex(), link.read_memory(64, 12).hex()]
    seen["csr round trip"] = []
    for value in (0x1234_5678, 0):
        link.write_register("PROGRAM_ADDR", value)
        seen["csr round trip"].append(link.read_register("PROGRAM_ADDR"))

    # A read always returns count words and a status, so the host stays in step; a failed write writes nothing.
    last = link.read_words(Space.MEMORY, size - WORD_BYTES, 1)
    seen["read beyond memory"] = _status_of(lambda: link.transfer(Command.READ_MEMORY, size, 2))
    seen["read crossing the end"] = _status_of(lambda: link.transfer(Command.READ_MEMORY, size - WORD_BYTES, 2))
    seen["write crossing the end"] = _status_of(
        lambda: link.transfer(Command.WRITE_MEMORY, size - WORD_BYTES, 2, bytes(range(8))))
    seen["last word kept"] = link.read_words(Space.MEMORY, size - WORD_BYTES, 1) == last
    seen["unaligned read"] = _status_of(lambda: link.transfer(Command.READ_MEMORY, 2, 1))
    seen["info beyond its words"] = _status_of(lambda: link.transfer(Command.READ_INFO, 4 * INFO_WORDS - 4, 2))
    seen["csr beyond its space"] = _status_of(lambda: link.transfer(Command.READ_CSR, 0xFC, 2))
    seen["unmapped register read"] = _status_of(lambda: link.transfer(Command.READ_CSR, 0x14, 1))
    seen["read-only register write"] = _status_of(lambda: link.transfer(Command.WRITE_CSR, 0x04, 1, bytes(4)))
    seen["empty frame"] = _status_of(lambda: link.transfer(Command.READ_MEMORY, 0, 0))

    # Unknown commands: BAD_COMMAND at once, the rest of the frame dropped until the line is quiet.
    seen["bad commands"] = []
    for command in (0x00, 0x31, 0xFF):
        answer = _raw(link, command, 0, 1, bytes(rng.getrandbits(8) for _ in range(9)))
        seen["bad commands"].append(answer.hex())
        link.resync()
        seen["bad commands"].append(link.read_words(Space.INFO, 0, 1)[0] == info.words()[0])
    # Truncated frames: the bridge gives up after timeout_cycles of silence and answers TIMEOUT.
    header = HEADER.const({"command": Command.WRITE_MEMORY, "address": 0, "count": 2}).as_value().value
    header = header.to_bytes(HEADER_BYTES, "little")
    seen["truncated header"] = _raw_frame(link, header[:3]).hex()
    seen["truncated data"] = _raw_frame(link, header + bytes(5)).hex()
    seen["works after"] = link.read_words(Space.INFO, 0, INFO_WORDS) == list(info.words())
    seen["framing errors"] = link.transport.sink.framing_errors
    return seen


def _raw_frame(link: HostLink, frame: bytes) -> bytes:
    link.transport.write(frame)
    return link.transport.read(4096)


class _SerialPort:
    """The part of ``serial.Serial`` that tools/host.py uses, over the simulated UART."""

    def __init__(self, transport: SimTransport):
        self.transport = transport
        self.timeout = 1.0          # set by the tool in seconds; the transport's timeout is in cycles

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def reset_input_buffer(self):
        self.transport.sink.received.clear()

    def read(self, size):
        return self.transport.read(size)

    def write(self, data):
        return self.transport.write(data)


def _cli(link: HostLink, job: dict, dut) -> dict:
    serial = types.ModuleType("serial")
    serial.SerialException = OSError
    serial.Serial = lambda port, baud, timeout: _SerialPort(link.transport)
    sys.modules["serial"] = serial
    sys.path.insert(0, str(_TOOLS))
    spec = importlib.util.spec_from_file_location("host_cli", _TOOLS / "host.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            code = tool.main(job["argv"])
        except SystemExit as error:
            code = error.code
    return {"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


SCENARIOS = {"program": _program, "protocol": _protocol, "cli": _cli}


@cocotb.test()
async def host_link(dut):
    job = json.loads(Path(os.environ["HOST_LINK_JOB"]).read_text())
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    clocks_per_bit = job["clocks_per_bit"]
    source = UartSource(dut.uart_rx, dut.clk, clocks_per_bit)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 4)
    sink = UartSink(dut.uart_tx, dut.clk, clocks_per_bit)
    transport = SimTransport(source, sink, timeout_cycles=job["read_timeout_cycles"])
    seen = await bridge(SCENARIOS[job["scenario"]])(HostLink(transport, chunk_words=job.get("chunk_words", 256)),
                                                     job, dut)
    Path(os.environ["HOST_LINK_RESULT"]).write_text(json.dumps(seen))
