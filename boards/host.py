"""Host driver for the UART link of ``hdl.soc.HostLinkSoC``: load a program, start it, wait, read results.

The driver talks to any byte-stream ``transport`` with pyserial's blocking interface:
``write(data)`` and ``read(size)``, where ``read`` returns fewer bytes (possibly none) when its
timeout passes. On a board that is ``serial.Serial(port, baud, timeout=...)``; in simulation it
is ``sim.uart_model.SimTransport`` over a UART model driving the SoC's pins. The frame format,
the command and status codes and the info block all come from ``hdl.uart_bridge``.

::

    link = HostLink(serial.Serial("/dev/ttyUSB0", 115200, timeout=1))
    link.connect()                                  # reads and checks the info block
    result = link.run(image, program_addr, program_length)
    output = link.read_memory(region.address, region.size)
"""
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hdl import csr
from hdl.config import AcceleratorConfig
from hdl.csr import COUNTERS, ErrorCode, register
from hdl.uart_bridge import (
    HEADER,
    HEADER_BYTES,
    INFO_WORDS,
    MAX_WORDS,
    WORD_BYTES,
    Command,
    LinkInfo,
    Space,
    Status,
    space_bytes,
)

__all__ = ["Transport", "LinkError", "LinkTimeout", "RunResult", "HostLink", "CompiledProgram", "compatible"]


_COMMANDS = {(command.space, command.is_write): command for command in Command}


class Transport(Protocol):
    def write(self, data: bytes) -> int | None: ...
    def read(self, size: int) -> bytes: ...


class LinkError(RuntimeError):
    """The bridge answered a frame with a status other than OK (``status``), or with garbage."""

    def __init__(self, message: str, status: Status | None = None):
        super().__init__(message)
        self.status = status


class LinkTimeout(LinkError):
    """The transport's read timed out before the whole response arrived."""


@dataclass
class RunResult:
    done: bool
    error: ErrorCode | None
    counters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0        # wall time from START to the status that ended the run


def compatible(hardware: AcceleratorConfig, program: AcceleratorConfig) -> bool:
    """Whether a program compiled for ``program`` runs on ``hardware``: same array, memories and bus."""
    def key(config):
        array = config.array
        return (array.rows, array.cols, array.dataflow, array.arith, config.spad_kib, config.acc_kib,
                config.bus_bits, config.channel_rows)
    return key(hardware) == key(program)


@dataclass
class CompiledProgram:
    """What ``tools/compile.py`` wrote to a directory: the DRAM image and the layout map."""
    image: bytes
    program_addr: int
    program_length: int
    accelerator: str            # the array it was compiled for (``ArrayConfig.name``)
    bus_bytes: int
    tensors: dict[str, dict]    # name -> FeatureMap fields
    output: str

    @classmethod
    def from_directory(cls, directory: Path) -> "CompiledProgram":
        """Read ``image.bin`` and ``layout.json``; ValueError naming what is missing or malformed."""
        directory = Path(directory)
        try:
            image = (directory / "image.bin").read_bytes()
            layout = json.loads((directory / "layout.json").read_text())
            return cls(image, layout["program_address"], layout["program_length"], layout["accelerator"],
                       layout["bus_bytes"], layout["tensors"], layout["output"])
        except OSError as error:
            raise ValueError(f"{directory} is not a compile.py output directory: {error.strerror}: "
                             f"{error.filename}") from None
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{directory / 'layout.json'} is not a compile.py layout: {error!r}") from None

    def tensor_span(self) -> tuple[int, int]:
        """(first, end) byte addresses covering every tensor's channel blocks: what a run writes."""
        spans = []
        for fmap in self.tensors.values():
            size = fmap["height"] * fmap["width"] * fmap["row_stride"]
            blocks = fmap.get("block_addresses") or [fmap["address"] + b * size
                                                     for b in range(-(-fmap["channels"] // fmap["lanes"]))]
            spans += [(address, address + size) for address in blocks]
        return min(a for a, _ in spans), max(b for _, b in spans)


class HostLink:
    """Driver of one SoC over ``transport``.

    Parameters
    ----------
    transport : Transport
        A byte stream to the SoC's UART (pyserial-like, with a read timeout).
    chunk_words : int
        Words per frame for long transfers (1 to ``MAX_WORDS``); shorter frames cost 8 bytes
        of overhead each but lose less on an error.
    """

    def __init__(self, transport: Transport, *, chunk_words: int = 1024):
        if not isinstance(chunk_words, int) or not 1 <= chunk_words <= MAX_WORDS:
            raise ValueError(f"Chunk size must be an integer from 1 to {MAX_WORDS} words, not {chunk_words!r}")
        self.transport = transport
        self.chunk_words = chunk_words
        self.info: LinkInfo | None = None

    # --- frames ----------------------------------------------------------------------------
    def _read_exact(self, size: int) -> bytes:
        received = bytearray()
        while len(received) < size:
            chunk = self.transport.read(size - len(received))
            if not chunk:
                raise LinkTimeout(f"No answer from the host link: {len(received)} of {size} bytes received")
            received += chunk
        return bytes(received)

    def transfer(self, command: Command, address: int, count: int, payload: bytes = b"") -> bytes:
        """Send one frame and return the read data; LinkError unless the status is OK.

        No range checks here (the bridge makes them): ``read_words``/``write_memory`` are the checked API.
        """
        command = Command(command)
        if not 0 <= address < 1 << 32 or not 0 <= count <= MAX_WORDS:
            raise ValueError(f"A frame has a 32-bit address and 0 to {MAX_WORDS} words, not {address:#x}, {count}")
        if len(payload) != (WORD_BYTES * count if command.is_write else 0):
            raise ValueError(f"{command.name} of {count} words needs {WORD_BYTES * count if command.is_write else 0} "
                             f"payload bytes, not {len(payload)}")
        header = HEADER.const({"command": command, "address": address, "count": count}).as_value().value
        self.transport.write(header.to_bytes(HEADER_BYTES, "little") + payload)
        response = self._read_exact(1 if command.is_write else WORD_BYTES * count + 1)
        try:
            status = Status(response[-1])
        except ValueError:
            raise LinkError(f"{command.name} at {address:#x}: the bridge answered {response[-1]:#04x}, not a status "
                            f"(wrong baud rate, or out of step: call resync())") from None
        if status != Status.OK:
            raise LinkError(f"{command.name} of {count} words at {address:#x} failed: {status.name}", status)
        return response[:-1]

    def resync(self) -> bytes:
        """Wait until the line is quiet, dropping what arrives; returns the dropped bytes.

        The transport's read timeout must exceed the bridge's (``info.timeout_cycles`` clock
        cycles): the bridge then has abandoned any partial frame (answering TIMEOUT) and is
        waiting for a command.
        """
        dropped = bytearray()
        while chunk := self.transport.read(256):
            dropped += chunk
        return bytes(dropped)

    # --- words -----------------------------------------------------------------------------
    def _check_range(self, space: Space, address: int, size: int) -> None:
        limit = space_bytes(space, self.info.memory_bytes if self.info else 1 << 32)
        if address % WORD_BYTES or size < 0 or address < 0 or address + size > limit:
            raise ValueError(f"{space.name} access {address:#x}+{size} must be 4-byte aligned and within "
                             f"0..{limit:#x}")

    def read_words(self, space: Space, address: int, count: int) -> list[int]:
        self._check_range(space, address, WORD_BYTES * count)
        words = []
        for first in range(0, count, self.chunk_words):
            size = min(self.chunk_words, count - first)
            data = self.transfer(_COMMANDS[space, False], address + WORD_BYTES * first, size)
            words += [int.from_bytes(data[i:i + WORD_BYTES], "little") for i in range(0, len(data), WORD_BYTES)]
        return words

    def write_words(self, space: Space, address: int, words: list[int]) -> None:
        self._check_range(space, address, WORD_BYTES * len(words))
        for first in range(0, len(words), self.chunk_words):
            chunk = words[first:first + self.chunk_words]
            payload = b"".join(int(w).to_bytes(WORD_BYTES, "little") for w in chunk)
            self.transfer(_COMMANDS[space, True], address + WORD_BYTES * first, len(chunk), payload)

    # --- the SoC ---------------------------------------------------------------------------
    def connect(self, program_config: AcceleratorConfig | None = None) -> LinkInfo:
        """Read the info block; if ``program_config`` is given, check the SoC can run its programs."""
        self.info = LinkInfo.from_words(self.read_words(Space.INFO, 0, INFO_WORDS))
        if program_config is not None and not compatible(self.info.config, program_config):
            raise LinkError(f"The SoC was generated for {self.info.config}, the program for {program_config}")
        return self.info

    def check_program(self, program: CompiledProgram) -> None:
        """LinkError unless the connected SoC has the array and bus ``program`` was compiled for.

        (``layout.json`` does not record the scratchpad and accumulator sizes: those must match
        what ``compile.py`` was given.)
        """
        config = self.info.config
        if (program.accelerator, program.bus_bytes) != (config.array.name, config.bus_bytes):
            raise LinkError(f"The program was compiled for {program.accelerator} with a {program.bus_bytes}-byte bus; "
                            f"the SoC has {config.array.name} with a {config.bus_bytes}-byte bus")
        if len(program.image) > self.info.memory_bytes:
            raise LinkError(f"The {len(program.image)}-byte image does not fit the SoC's {self.info.memory_bytes}-byte "
                            f"memory (generate the SoC with a larger memory)")

    def read_memory(self, address: int, size: int) -> bytes:
        """``size`` bytes from ``address`` (any alignment)."""
        first = address - address % WORD_BYTES
        count = -(-(address + size - first) // WORD_BYTES)
        data = b"".join(w.to_bytes(WORD_BYTES, "little") for w in self.read_words(Space.MEMORY, first, count))
        return data[address - first:address - first + size]

    def write_memory(self, address: int, data: bytes) -> None:
        """Write ``data`` at ``address``; bytes of a partial first or last word are read back first, not clobbered."""
        first = address - address % WORD_BYTES
        end = address + len(data)
        last = end + -end % WORD_BYTES
        buffer = bytearray(last - first)
        if first != address:
            buffer[:WORD_BYTES] = self.read_memory(first, WORD_BYTES)
        if last != end:
            buffer[-WORD_BYTES:] = self.read_memory(last - WORD_BYTES, WORD_BYTES)
        buffer[address - first:end - first] = data
        self.write_words(Space.MEMORY, first, [int.from_bytes(buffer[i:i + WORD_BYTES], "little")
                                               for i in range(0, len(buffer), WORD_BYTES)])

    def read_register(self, name: str) -> int:
        return self.read_words(Space.CSR, register(name).offset, 1)[0]

    def write_register(self, name: str, value: int) -> None:
        self.write_words(Space.CSR, register(name).offset, [value])

    def load(self, image: bytes, address: int = 0, *, verify: bool = False) -> None:
        """Write a DRAM image (``quant.memory.MemoryImage.data``) to the SoC's memory; ``verify`` reads it back."""
        if self.info is not None and address + len(image) > self.info.memory_bytes:
            raise ValueError(f"The {len(image)}-byte image does not fit the SoC's {self.info.memory_bytes}-byte "
                             f"memory at {address:#x} (generate it with a larger memory)")
        self.write_memory(address, image)
        if verify and (back := self.read_memory(address, len(image))) != bytes(image):
            bad = next(i for i in range(len(image)) if back[i] != image[i])
            raise LinkError(f"Image read back differs from what was written, first at byte {address + bad:#x}")

    def start(self, program_addr: int, program_length: int, *, irq: bool = True) -> None:
        """Start the program at ``program_addr`` (at most ``program_length`` instructions)."""
        self.write_register("PROGRAM_ADDR", program_addr)
        self.write_register("PROGRAM_LENGTH", program_length)
        self.write_register("CONTROL", csr.Control.START | (csr.Control.IRQ_ENABLE if irq else 0))

    def status(self) -> int:
        return self.read_register("STATUS")

    def wait(self, timeout: float = 60.0) -> RunResult:
        """Poll STATUS until the run is done or failed; TimeoutError after ``timeout`` seconds."""
        start = time.monotonic()
        while True:
            status = self.status()
            if not status & csr.Status.BUSY and status & (csr.Status.DONE | csr.Status.ERROR):
                error = ErrorCode(self.read_register("ERROR_CODE")) if status & csr.Status.ERROR else None
                return RunResult(bool(status & csr.Status.DONE), error, seconds=time.monotonic() - start)
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"The accelerator is still running after {timeout} s (STATUS {status:#x})")

    def counters(self) -> dict[str, int]:
        """The performance counters of the last run (``hdl.csr.COUNTERS``), read in one frame."""
        first = register(COUNTERS[0]).offset
        words = self.read_words(Space.CSR, first, len(COUNTERS))
        return {name: words[(register(name).offset - first) // WORD_BYTES] for name in COUNTERS}

    def run(self, image: bytes, program_addr: int, program_length: int, *, timeout: float = 60.0,
            verify: bool = False) -> RunResult:
        """Load ``image`` at address 0, run its program, wait, and read the counters."""
        self.load(image, verify=verify)
        self.start(program_addr, program_length)
        result = self.wait(timeout)
        result.counters = self.counters()
        return result
