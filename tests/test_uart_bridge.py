"""The UART bridge's protocol at the byte-stream level in Amaranth's simulator, with the real CSR block and memory.

Every response kind of ``hdl.uart_bridge``: word round trips in each space, BAD_ADDRESS,
BUS_ERROR, BAD_COMMAND followed by garbage, TIMEOUT of truncated frames, and that the next
frame works after each. The pin-level version with the host driver is ``tests/test_soc.py``.
"""
import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hdl.config import AcceleratorConfig, ArrayConfig
from hdl.csr import CsrBlock, register
from hdl.soc import BlockRamMemory, HostLinkSoC
from hdl.uart_bridge import HEADER, HEADER_BYTES, INFO_MAGIC, INFO_WORDS, Command, LinkInfo, Status, UartBridge

CONFIG = AcceleratorConfig(ArrayConfig(3, 5, "ws", "both"), spad_kib=2, acc_kib=4, bus_bits=128, channel_rows=7)
MEMORY_BYTES = 256
TIMEOUT = 40
INFO = LinkInfo(CONFIG, MEMORY_BYTES, 4, TIMEOUT)


class _Harness(Elaboratable):
    def __init__(self):
        self.bridge = UartBridge(INFO)
        self.csr = CsrBlock()
        self.memory = BlockRamMemory(size_bytes=MEMORY_BYTES, bus_bits=CONFIG.bus_bits, collision_checks=True)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge, m.submodules.csr, m.submodules.memory = self.bridge, self.csr, self.memory
        wiring.connect(m, self.bridge.csr, self.csr.bus)
        wiring.connect(m, self.bridge.memory, self.memory.lite)
        return m


def frame(command, address, count, words=()):
    header = HEADER.const({"command": Command(command), "address": address, "count": count}).as_value().value
    return header.to_bytes(HEADER_BYTES, "little") + b"".join(w.to_bytes(4, "little") for w in words)


def exchange(pieces, *, back_pressure=False, seed=0):
    """Send each (bytes, idle cycles after) piece, one byte per cycle at most; return every byte answered."""
    dut = _Harness()
    rng = random.Random(seed)
    answer = bytearray()
    state = {"sent": False}

    async def send(ctx):
        for data, gap in pieces:
            for byte in data:
                ctx.set(dut.bridge.rx.payload, byte)
                ctx.set(dut.bridge.rx.valid, 1)
                await ctx.tick().until(dut.bridge.rx.ready)
                ctx.set(dut.bridge.rx.valid, 0)
            if gap:
                await ctx.tick().repeat(gap)
        await ctx.tick().repeat(4 * TIMEOUT)
        state["sent"] = True

    async def receive(ctx):
        while True:
            ctx.set(dut.bridge.tx.ready, not back_pressure or rng.random() < 0.3)
            _, _, valid, ready, payload = await ctx.tick().sample(dut.bridge.tx.valid, dut.bridge.tx.ready,
                                                                    dut.bridge.tx.payload)
            if valid and ready:
                answer.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(send)
    sim.add_testbench(receive, background=True)
    sim.run()
    assert state["sent"]
    return bytes(answer)


def words_of(data):
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]


OK, BAD_ADDRESS, BUS_ERROR = (bytes([s.value]) for s in (Status.OK, Status.BAD_ADDRESS, Status.BUS_ERROR))


@pytest.mark.parametrize("back_pressure", [False, True], ids=["ready", "back-pressure"])
def test_words_round_trip_in_every_space(back_pressure, seed):
    rng = random.Random(seed)
    data = [rng.getrandbits(32) for _ in range(MEMORY_BYTES // 4)]
    answer = exchange([
        (frame(Command.WRITE_MEMORY, 0, len(data), data), 0),
        (frame(Command.READ_MEMORY, 0, len(data)), 0),
        (frame(Command.WRITE_MEMORY, 20, 3, [1, 2, 3]), 0),           # words within wide rows (lanes 1..3)
        (frame(Command.READ_MEMORY, 16, 5), 0),
        (frame(Command.WRITE_CSR, register("PROGRAM_ADDR").offset, 2, [0xDEADBEEF, 77]), 0),
        (frame(Command.READ_CSR, register("PROGRAM_ADDR").offset, 2), 0),
        (frame(Command.READ_INFO, 0, INFO_WORDS), 0),
        (frame(Command.READ_MEMORY, 0, 0), 0),
    ], back_pressure=back_pressure, seed=seed)
    full = 4 * len(data) + 1
    assert answer[:1] == OK
    assert words_of(answer[1:full]) == data and answer[full:full + 1] == OK
    rest = answer[full + 1:]
    assert rest[:1] == OK
    assert words_of(rest[1:21]) == [data[4], 1, 2, 3, data[8]] and rest[21:22] == OK
    assert rest[22:23] == OK
    assert words_of(rest[23:31]) == [0xDEADBEEF, 77] and rest[31:32] == OK
    info = rest[32:32 + 4 * INFO_WORDS]
    assert LinkInfo.from_words(words_of(info)) == INFO
    assert rest[32 + 4 * INFO_WORDS:] == OK + OK          # the info status, then the empty frame's


def test_bad_addresses_keep_the_host_in_step_and_write_nothing():
    answer = exchange([
        (frame(Command.WRITE_MEMORY, MEMORY_BYTES - 4, 1, [0x11111111]), 0),
        (frame(Command.WRITE_MEMORY, MEMORY_BYTES - 4, 2, [0x22222222, 0x33333333]), 0),   # crosses the end
        (frame(Command.READ_MEMORY, MEMORY_BYTES - 4, 2), 0),
        (frame(Command.READ_MEMORY, 2, 1), 0),                                              # unaligned
        (frame(Command.WRITE_MEMORY, 0xFFFFFFFC, 2, [5, 6]), 0),                            # wraps 32 bits
        (frame(Command.READ_INFO, 4 * INFO_WORDS - 4, 2), 0),
        (frame(Command.READ_CSR, 0xFC, 2), 0),
        (frame(Command.READ_MEMORY, MEMORY_BYTES - 4, 1), 0),
    ])
    assert answer == (OK + BAD_ADDRESS + bytes(8) + BAD_ADDRESS + bytes(4) + BAD_ADDRESS + BAD_ADDRESS +
                      bytes(8) + BAD_ADDRESS + bytes(8) + BAD_ADDRESS + (0x11111111).to_bytes(4, "little") + OK)


def test_bus_errors_are_reported_after_the_whole_frame():
    status, error_code = register("STATUS").offset, register("ERROR_CODE").offset
    answer = exchange([
        (frame(Command.READ_CSR, status, 4), 0),                 # STATUS, PROGRAM_ADDR, PROGRAM_LENGTH, ERROR_CODE
        (frame(Command.READ_CSR, error_code, 2), 0),             # ERROR_CODE, then the unmapped 0x14
        (frame(Command.WRITE_CSR, status, 2, [1, 9]), 0),        # read-only STATUS, then PROGRAM_ADDR
        (frame(Command.READ_CSR, register("PROGRAM_ADDR").offset, 1), 0),
    ])
    assert answer == bytes(16) + OK + bytes(8) + BUS_ERROR + BUS_ERROR + (9).to_bytes(4, "little") + OK


@pytest.mark.parametrize("command", [0x00, 0x12, 0x31, 0xFF])
def test_unknown_command_is_answered_at_once_and_the_rest_of_its_frame_dropped(command, seed):
    rng = random.Random(seed)
    garbage = bytes([command]) + bytes(rng.getrandbits(8) for _ in range(20))
    answer = exchange([(garbage, TIMEOUT + 2), (frame(Command.READ_INFO, 0, 1), 0)])
    assert answer == bytes([Status.BAD_COMMAND.value]) + INFO_MAGIC.to_bytes(4, "little") + OK


def test_truncated_frames_time_out():
    write = frame(Command.WRITE_MEMORY, 8, 2, [0xAABBCCDD, 0x11223344])
    answer = exchange([
        (write[:4], TIMEOUT + 2),                 # a header cut short
        (write[:HEADER_BYTES + 6], TIMEOUT + 2),  # the second word cut short; the first is written
        (write[:HEADER_BYTES + 4], TIMEOUT - 8),  # gaps shorter than the timeout are fine
        (write[HEADER_BYTES + 4:], 0),
        (frame(Command.READ_MEMORY, 8, 2), 0),
    ])
    timeout = bytes([Status.TIMEOUT.value])
    assert answer == timeout + timeout + OK + (0xAABBCCDD).to_bytes(4, "little") + (0x11223344).to_bytes(4, "little") + OK


def test_link_info_round_trip_and_refusals():
    assert LinkInfo.from_words(INFO.words()) == INFO
    with pytest.raises(ValueError, match="Not an accelerator host link"):
        LinkInfo.from_words([0] * INFO_WORDS)
    with pytest.raises(ValueError, match="protocol version 9 is not the supported 1"):
        LinkInfo.from_words([INFO_MAGIC, 9, *INFO.words()[2:]])
    with pytest.raises(ValueError, match="memory_bytes must be an integer from 1 to 2\\*\\*32 - 1, not 0"):
        LinkInfo(CONFIG, 0, 4, 10)
    with pytest.raises(TypeError, match="Bridge info must be a LinkInfo"):
        UartBridge(CONFIG)


def test_soc_parameters_are_validated():
    with pytest.raises(ValueError, match="SoC memory must be an integer from 1 to 1024 KiB, not 0"):
        HostLinkSoC(CONFIG, memory_kib=0, clocks_per_bit=4)
    with pytest.raises(ValueError, match="SoC memory must be an integer from 1 to 1024 KiB, not 2048"):
        HostLinkSoC(CONFIG, memory_kib=2048, clocks_per_bit=4)
    with pytest.raises(ValueError, match="Clocks per bit must be at least 4, not 2"):
        HostLinkSoC(CONFIG, clocks_per_bit=2)
    with pytest.raises(ValueError, match="SoC timeout must be an integer from 1 to 65535 byte times, not 0"):
        HostLinkSoC(CONFIG, clocks_per_bit=4, timeout_bytes=0)
    with pytest.raises(ValueError, match="SoC timeout of 65535 byte times at 10000 clocks per bit exceeds 2\\*\\*32"):
        HostLinkSoC(CONFIG, clocks_per_bit=10_000, timeout_bytes=0xFFFF)
    with pytest.raises(TypeError, match="SoC config must be an AcceleratorConfig"):
        HostLinkSoC(CONFIG.array, clocks_per_bit=4)
    with pytest.raises(ValueError, match="Memory size must be a positive multiple of 16 bytes, not 100"):
        BlockRamMemory(size_bytes=100, bus_bits=128)


