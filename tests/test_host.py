"""The host driver (boards/host.py) against a scripted transport: framing, chunking, errors, polling.

The bridge itself answers the driver in test_soc.py; here a small Python stand-in answers
frames (decoded with the protocol's own ``HEADER`` layout), so the driver's own logic is
checked quickly, including answers the hardware should never give.
"""
import pytest

from boards.host import HostLink, LinkError, LinkTimeout
from hdl.config import AcceleratorConfig, ArrayConfig
from hdl.csr import ErrorCode, register
from hdl.csr import Status as RunStatus
from hdl.uart_bridge import HEADER, HEADER_BYTES, WORD_BYTES, Command, LinkInfo, Space, Status

CONFIG = AcceleratorConfig(ArrayConfig(2, 2, "os", "int8"), spad_kib=1, acc_kib=1, bus_bits=64)
INFO = LinkInfo(CONFIG, 256, 4, 160)


def _field(header: int, name: str) -> int:
    field = HEADER[name]
    return header >> field.offset & ((1 << field.width) - 1)


class FakeBridge:
    """Answers whole frames written to it; ``statuses`` scripts what STATUS reads return."""

    def __init__(self, statuses=(RunStatus.DONE,), error_code=0, tamper=None):
        self.memory = bytearray(range(256))
        self.registers = {register("ERROR_CODE").offset: error_code}
        self.statuses = list(statuses)
        self.frames = []
        self.sent = []                # each write() call's bytes
        self.pending = bytearray()
        self.answer = bytearray()
        self.tamper = tamper          # a function of the answer bytes, for broken links

    def write(self, data):
        self.sent.append(bytes(data))
        self.pending += data
        while len(self.pending) >= HEADER_BYTES:
            header = int.from_bytes(self.pending[:HEADER_BYTES], "little")
            command = Command(_field(header, "command"))
            address, count = _field(header, "address"), _field(header, "count")
            size = HEADER_BYTES + (WORD_BYTES * count if command.is_write else 0)
            if len(self.pending) < size:
                break
            payload = bytes(self.pending[HEADER_BYTES:size])
            del self.pending[:size]
            self.frames.append((command, address, count))
            answer = self._execute(command, address, count, payload)
            self.answer += self.tamper(answer) if self.tamper else answer
        return len(data)

    def _execute(self, command, address, count, payload):
        words = []
        for index in range(count):
            at = address + WORD_BYTES * index
            if command == Command.READ_INFO:
                words.append(INFO.words()[at // WORD_BYTES])
            elif command == Command.READ_MEMORY:
                words.append(int.from_bytes(self.memory[at:at + WORD_BYTES], "little"))
            elif command == Command.WRITE_MEMORY:
                self.memory[at:at + WORD_BYTES] = payload[WORD_BYTES * index:WORD_BYTES * (index + 1)]
            elif command == Command.READ_CSR and at == register("STATUS").offset:
                words.append(self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0])
            elif command == Command.READ_CSR:
                words.append(self.registers.get(at, 0))
            else:
                self.registers[at] = int.from_bytes(payload[WORD_BYTES * index:WORD_BYTES * (index + 1)], "little")
        return b"".join(w.to_bytes(WORD_BYTES, "little") for w in words) + bytes([Status.OK.value])

    def read(self, size):
        data = bytes(self.answer[:size])
        del self.answer[:size]
        return data


def test_frames_are_the_protocols_header_and_long_transfers_are_chunked():
    bridge = FakeBridge()
    link = HostLink(bridge, chunk_words=2)
    link.connect(program_config=CONFIG)
    assert link.read_words(Space.MEMORY, 8, 5) == [int.from_bytes(bytes(range(a, a + 4)), "little")
                                                   for a in range(8, 28, 4)]
    assert bridge.frames[-3:] == [(Command.READ_MEMORY, 8, 2), (Command.READ_MEMORY, 16, 2),
                                  (Command.READ_MEMORY, 24, 1)]
    header = HEADER.const({"command": Command.WRITE_CSR, "address": 0x0C, "count": 1}).as_value().value
    link.write_register("PROGRAM_LENGTH", 0x01020304)
    assert bridge.sent[-1] == header.to_bytes(HEADER_BYTES, "little") + bytes([4, 3, 2, 1])     # one write per frame


def test_partial_words_are_merged_not_clobbered():
    bridge = FakeBridge()
    link = HostLink(bridge)
    link.connect()
    link.write_memory(5, b"\xaa\xbb\xcc\xdd\xee\xff")       # bytes 5..10: partial words at both ends
    assert bridge.memory[:16] == bytes([0, 1, 2, 3, 4, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 11, 12, 13, 14, 15])
    assert link.read_memory(3, 5) == bytes([3, 4, 0xAA, 0xBB, 0xCC])


def test_wait_polls_until_done_or_error():
    link = HostLink(FakeBridge(statuses=[RunStatus.BUSY, RunStatus.BUSY, RunStatus.DONE]))
    result = link.wait(timeout=5)
    assert result.done and result.error is None
    link = HostLink(FakeBridge(statuses=[RunStatus.BUSY, RunStatus.ERROR], error_code=ErrorCode.SRAM_RANGE.value))
    result = link.wait(timeout=5)
    assert not result.done and result.error == ErrorCode.SRAM_RANGE
    with pytest.raises(TimeoutError, match="still running after 0.05 s"):
        HostLink(FakeBridge(statuses=[RunStatus.BUSY])).wait(timeout=0.05)


def test_run_loads_starts_and_reads_the_counters():
    bridge = FakeBridge(statuses=[RunStatus.BUSY, RunStatus.DONE])
    link = HostLink(bridge)
    link.connect()
    bridge.registers[register("CYCLES").offset] = 1234
    result = link.run(bytes(range(16, 48)), program_addr=64, program_length=3, verify=True)
    assert result.done and result.counters["CYCLES"] == 1234 and bridge.memory[:32] == bytes(range(16, 48))
    assert [bridge.registers[register(name).offset] for name in ("PROGRAM_ADDR", "PROGRAM_LENGTH", "CONTROL")] == \
        [64, 3, 0b11]


def test_failures_are_reported_not_hung():
    link = HostLink(FakeBridge(tamper=lambda answer: answer[:-1] + bytes([Status.BUS_ERROR.value])))
    with pytest.raises(LinkError, match="READ_CSR of 1 words at 0x4 failed: BUS_ERROR") as error:
        link.status()
    assert error.value.status == Status.BUS_ERROR
    with pytest.raises(LinkError, match="answered 0x00, not a status"):
        HostLink(FakeBridge(tamper=lambda answer: answer[:-1] + b"\x00")).status()
    with pytest.raises(LinkTimeout, match="2 of 5 bytes received"):
        HostLink(FakeBridge(tamper=lambda answer: answer[:2])).status()


def test_requests_are_checked_before_anything_is_sent():
    bridge = FakeBridge()
    link = HostLink(bridge)
    link.connect()
    frames = len(bridge.frames)
    with pytest.raises(ValueError, match="MEMORY access 0xfc\\+8 must be 4-byte aligned and within 0..0x100"):
        link.read_words(Space.MEMORY, 252, 2)
    with pytest.raises(ValueError, match="MEMORY access 0x2\\+4"):
        link.write_words(Space.MEMORY, 2, [1])
    with pytest.raises(ValueError, match="does not fit the SoC's 256-byte memory"):
        link.load(bytes(300))
    with pytest.raises(LinkError, match="generated for .* the program for"):
        link.connect(program_config=AcceleratorConfig(ArrayConfig(4, 4), spad_kib=1, acc_kib=1, bus_bits=64))
    with pytest.raises(ValueError, match="Chunk size must be an integer from 1 to 65535 words, not 0"):
        HostLink(bridge, chunk_words=0)
    assert len(bridge.frames) == frames + 1        # only the second connect's info read went out
