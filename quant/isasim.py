"""The Python ISA simulator: the functional reference the RTL's final DRAM image must match.

Instructions execute one at a time in program order, with the numerics of
``hdl.numerics``. Dependency tokens are counted as the hardware's queues
would; a program must be *sequentially consistent*: each pop is matched by a
push earlier in program order (programs from ``quant.gemm`` are), so program
order is one of the interleavings the concurrent hardware may take, and every
correctly synchronized interleaving gives the same DRAM image. Whether a program
is correctly synchronized is checked as it runs (``quant.races``, on unless
``check_races`` is false): a ``RaceError`` names two accesses no token orders.
"""
from dataclasses import dataclass, field

import numpy as np

from hdl.config import AcceleratorConfig, Dataflow
from hdl.isa import (CHANNEL_RECORD_BYTES, PAIRED_SECONDARY_OFFSET, Instruction, Opcode, Target, decode,
                     os_depthwise_results, target_element_bytes)
from hdl.numerics import (ArithMode, combine_rows, golden_depthwise, golden_gemm, golden_paired_depthwise, store_rows,
                          stored_bytes, wrap_acc)
from hdl.walker import row_addresses, sram_rows

from .memory import AXI_BOUNDARY, INSTRUCTION_BYTES, unpack_channel_records
from .program import UNIT_NAMES, unit_of
from .races import RaceChecker

__all__ = ["IsaError", "IsaSimulator", "RunStats", "TOKEN_QUEUES"]

# Queues are named producer->consumer; (unit, flag) -> the queue the flag refers to.
_QUEUES = {
    ("load", "push_next"): "load->compute", ("compute", "pop_prev"): "load->compute",
    ("compute", "push_prev"): "compute->load", ("load", "pop_next"): "compute->load",
    ("compute", "push_next"): "compute->store", ("store", "pop_prev"): "compute->store",
    ("store", "push_prev"): "store->compute", ("compute", "pop_next"): "store->compute",
}
TOKEN_QUEUES = tuple(dict.fromkeys(_QUEUES.values()))


class IsaError(ValueError):
    """An illegal program: the message names the instruction and what is wrong."""


@dataclass
class RunStats:
    instructions: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    macs: int = 0
    by_opcode: dict = field(default_factory=dict)


class IsaSimulator:
    """Architectural state of one accelerator and an interpreter for its programs."""

    def __init__(self, config: AcceleratorConfig, dram: bytearray, check_races: bool = True):
        self.config = config
        self.dram = dram
        rows, cols = config.array.rows, config.array.cols
        self.activations = np.zeros((config.act_rows, rows), dtype=np.int64)
        self.weights = np.zeros((config.weight_rows, cols), dtype=np.int64)
        self.accumulators = np.zeros((config.acc_rows, cols), dtype=np.int64)
        self.channels = np.zeros((config.channel_rows, cols, CHANNEL_RECORD_BYTES), dtype=np.uint8)
        self.output = {"mode": ArithMode.INT8, "zero_point": 0, "clamp_min": -128, "clamp_max": 127}
        self.tokens = dict.fromkeys(set(_QUEUES.values()), 0)
        self.stats = RunStats()
        # Refuses programs whose tokens leave two units' accesses to a row unordered (``quant.races``).
        self.races = RaceChecker({"activations": config.act_rows, "weights": config.weight_rows,
                                  "accumulators": config.acc_rows, "channels": config.channel_rows},
                                 len(dram)) if check_races else None

    # --- DRAM access -------------------------------------------------------------------
    def _dram_read(self, address: int, size: int, where: str) -> bytes:
        self._check_dram(address, size, where)
        self.stats.bytes_read += size
        return bytes(self.dram[address:address + size])

    def _dram_write(self, address: int, payload: bytes, where: str, offset: int = 0) -> None:
        """Write ``payload`` ``offset`` bytes into the row at bus-aligned ``address`` (byte strobes)."""
        self._check_dram(address, offset + len(payload), where)
        self.stats.bytes_written += len(payload)
        self.dram[address + offset:address + offset + len(payload)] = payload

    def _check_dram(self, address: int, size: int, where: str) -> None:
        if address % self.config.bus_bytes:
            raise IsaError(f"{where}: DRAM address {address:#x} is not a multiple of the "
                           f"{self.config.bus_bytes}-byte bus width")
        if address // AXI_BOUNDARY != (address + size - 1) // AXI_BOUNDARY:
            raise IsaError(f"{where}: DRAM access {address:#x}+{size} crosses a {AXI_BOUNDARY}-byte boundary")
        if address + size > len(self.dram):
            raise IsaError(f"{where}: DRAM access {address:#x}+{size} is outside the {len(self.dram)}-byte memory")

    def _touch(self, space: str, rows, write: bool = False) -> None:
        if self.races:
            self.races.touch(space, rows, write)

    @staticmethod
    def _check_rows(memory: np.ndarray, first: int, count: int, name: str, where: str) -> None:
        if first + count > len(memory):
            raise IsaError(f"{where}: {name} rows {first}..{first + count - 1} are outside its {len(memory)} rows")

    # --- execution ---------------------------------------------------------------------
    def run(self, program_address: int, max_instructions: int) -> RunStats:
        """Fetch and execute instructions until END; raise ``IsaError`` on an illegal program."""
        for index in range(max_instructions):
            where = f"instruction {index}"
            raw = self._dram_read(program_address + index * INSTRUCTION_BYTES, INSTRUCTION_BYTES, where)
            try:
                instruction = decode(int.from_bytes(raw, "little"))
            except ValueError as error:
                raise IsaError(f"{where}: {error}") from None
            where = f"instruction {index} {instruction}"
            self.stats.instructions += 1
            self.stats.by_opcode[instruction.opcode.name] = self.stats.by_opcode.get(instruction.opcode.name, 0) + 1
            if instruction.opcode == Opcode.END:
                return self.stats
            self.execute(instruction, where)
        raise IsaError(f"no END within the program's {max_instructions} instructions")

    def execute(self, instruction: Instruction, where: str = "") -> None:
        unit = UNIT_NAMES[unit_of(instruction.opcode)]
        popped = []
        for flag in ("pop_prev", "pop_next"):
            if getattr(instruction, flag):
                queue = self._queue(unit, flag, where)
                if self.tokens[queue] == 0:
                    raise IsaError(f"{where}: waits for a {queue} token that no earlier instruction pushed")
                self.tokens[queue] -= 1
                popped.append(queue)
        if self.races:
            self.races.issue(unit_of(instruction.opcode), popped, where)
        handler = {Opcode.LOAD: self._load, Opcode.COMPUTE: self._compute, Opcode.STORE: self._store,
                   Opcode.CONFIG: self._configure, Opcode.SYNC: lambda fields, where: None}[instruction.opcode]
        handler(instruction.fields, where)
        pushed = [self._queue(unit, flag, where) for flag in ("push_prev", "push_next") if getattr(instruction, flag)]
        for queue in pushed:
            self.tokens[queue] += 1
        if self.races:
            self.races.retire(pushed)

    @staticmethod
    def _queue(unit: str, flag: str, where: str) -> str:
        try:
            return _QUEUES[unit, flag]
        except KeyError:
            raise IsaError(f"{where}: the {unit} unit has no {flag.split('_')[1]} neighbour for {flag}") from None

    def _load(self, f: dict, where: str) -> None:
        target = Target(f["target"])
        element = target_element_bytes(target)
        memory, lanes, name, space = {
            Target.ACTIVATIONS: (self.activations, self.config.array.rows, "activation scratchpad", "activations"),
            Target.WEIGHTS: (self.weights, self.config.array.cols, "weight scratchpad", "weights"),
            Target.ACCUMULATORS: (self.accumulators, self.config.array.cols, "accumulator", "accumulators"),
            Target.CHANNELS: (self.channels, self.config.array.cols, "channel memory", "channels"),
            Target.COMBINE: (self.accumulators, self.config.array.cols, "accumulator", "accumulators"),
        }[target]
        rows, blocks = f["rows"], f["blocks"]
        if f["row_elems"] > lanes:
            raise IsaError(f"{where}: row_elems {f['row_elems']} exceeds the {lanes} lanes of a {name} row")
        if f["pad_before"] + f["pad_after"] > rows:
            raise IsaError(f"{where}: pad_before + pad_after exceed rows ({rows})")
        if f["pad_blocks_before"] + f["pad_blocks_after"] > blocks:
            raise IsaError(f"{where}: pad_blocks_before + pad_blocks_after exceed blocks ({blocks})")
        padded = f["pad_before"] or f["pad_after"] or f["pad_blocks_before"] or f["pad_blocks_after"]
        if target == Target.CHANNELS and padded:
            raise IsaError(f"{where}: channel loads take no padding rows")
        written = sram_rows(f)
        self._check_rows(memory, f["sram_addr"], written[-1] + 1 - f["sram_addr"] if written else 0, name, where)
        if target == Target.COMBINE and f["lane_scales"]:
            self._check_rows(self.weights, f["scale_row"], 1, "weight scratchpad", where)
        dtype = {1: "<i1", 4: "<i4", CHANNEL_RECORD_BYTES: "u1"}[element]
        addresses = row_addresses(f)
        if self.races:
            for address in addresses:
                if address is not None and f["row_elems"]:
                    self.races.dram(address, f["row_elems"] * element, write=False)
            if target == Target.COMBINE:
                self._touch(space, written)
                if f["lane_scales"]:
                    self._touch("weights", slice(f["scale_row"], f["scale_row"] + 1))
            self._touch(space, written, write=True)
        for address, sram_row in zip(addresses, written):
            row = np.zeros(memory.shape[1:], dtype=np.int64) if target == Target.CHANNELS else \
                np.full(lanes, f["pad_value"], dtype=np.int64)
            if address is not None and f["row_elems"]:
                values = np.frombuffer(self._dram_read(address, f["row_elems"] * element, where), dtype=dtype)
                row[:f["row_elems"]] = values.reshape(-1, CHANNEL_RECORD_BYTES) if target == Target.CHANNELS \
                    else values
            if target == Target.COMBINE:
                scale = self.weights[f["scale_row"]] if f["lane_scales"] else f["scale"]
                memory[sram_row] = combine_rows(memory[sram_row], row, scale, f["combine"])
            else:
                memory[sram_row] = row

    def _compute(self, f: dict, where: str) -> None:
        results = os_depthwise_results(self.config.array.rows, f["taps"])   # of each run (only OS depthwise repeats)
        for run in range(f["repeat"] + 1):
            self._compute_run(f | {"act_addr": f["act_addr"] + (run * results << f["act_stride_log2"]),
                                   "acc_addr": f["acc_addr"] + run * results}, where)

    def _compute_run(self, f: dict, where: str) -> None:
        array = self.config.array
        mode = ArithMode(f["mode"])
        if mode not in array.modes:
            raise IsaError(f"{where}: mode {mode.name} is not generated (arith {array.arith.value})")
        beats, stride = f["beats"], 1 << f["act_stride_log2"]
        activations = self._streamed_rows(f["act_addr"], beats, stride, where)
        if f["depthwise"] and not array.depthwise:
            raise IsaError(f"{where}: depthwise COMPUTE on an array generated without the depthwise mode "
                           f"(dataflow {array.dataflow.value})")
        if f["paired"] and not (array.paired and f["depthwise"] and f["act_stride_log2"] == 1
                                and mode == ArithMode.INT8):
            raise IsaError(f"{where}: a paired COMPUTE must be int8 depthwise with act_stride_log2 1 on an array "
                           f"generated with paired COMPUTEs (paired {array.paired}, depthwise {f['depthwise']}, "
                           f"act_stride_log2 {f['act_stride_log2']}, mode {mode.name})")
        if f["repeat"] and not (array.dataflow == Dataflow.OS and f["depthwise"]):
            raise IsaError(f"{where}: repeat {f['repeat']} needs an OS depthwise COMPUTE (dataflow "
                           f"{array.dataflow.value}, depthwise {f['depthwise']})")
        if f["depthwise"] and beats < array.rows:
            raise IsaError(f"{where}: depthwise beats {beats} is fewer than the array's {array.rows} rows")
        if array.dataflow == Dataflow.OS:
            if beats % array.rows:
                raise IsaError(f"{where}: OS beats {beats} is not a multiple of the array's {array.rows} rows")
            self._check_rows(self.weights, f["weight_addr"], beats, "weight scratchpad", where)
            if f["depthwise"]:
                taps = f["taps"]
                if not 1 <= taps <= array.rows:
                    raise IsaError(f"{where}: OS depthwise taps {taps} is outside 1..{array.rows} (the array's rows)")
                if mode != ArithMode.INT8:
                    raise IsaError(f"{where}: OS depthwise COMPUTEs are int8 only, not {mode.name}")
                weights = slice(f["weight_addr"], f["weight_addr"] + taps)
                result = self._depthwise(f, activations[:array.rows], self.weights[weights], stride, where)
            else:
                blocks = activations.reshape(-1, array.rows, array.rows)
                a = blocks.transpose(1, 0, 2).reshape(array.rows, beats)
                weights = slice(f["weight_addr"], f["weight_addr"] + beats)
                result = golden_gemm(a, self.weights[weights], mode)
        else:
            self._check_rows(self.weights, f["weight_addr"], array.rows, "weight scratchpad", where)
            weights = slice(f["weight_addr"], f["weight_addr"] + array.rows)
            stationary = self.weights[weights]
            if f["depthwise"]:
                result = self._depthwise(f, activations, stationary, stride, where)
            else:
                result = golden_gemm(activations, stationary, mode)
        self._check_rows(self.accumulators, f["acc_addr"], len(result), "accumulator", where)
        target = slice(f["acc_addr"], f["acc_addr"] + len(result))
        self._touch("weights", weights)
        if f["accumulate"]:
            self._touch("accumulators", target)
        self._touch("accumulators", target, write=True)
        self.accumulators[target] = wrap_acc(self.accumulators[target] + result) if f["accumulate"] else result
        self.stats.macs += beats * array.rows * array.cols

    def _depthwise(self, f: dict, activations: np.ndarray, taps: np.ndarray, stride: int, where: str) -> np.ndarray:
        """A depthwise COMPUTE's correlation of its streamed ``activations`` (a paired one's with its secondary
        stream, PAIRED_SECONDARY_OFFSET rows on, read ``stride`` rows apart like the primary) with ``taps``."""
        primary = self._column_channels(activations)
        if not f["paired"]:
            return golden_depthwise(primary, taps, ArithMode(f["mode"]))
        secondary = self._streamed_rows(f["act_addr"] + PAIRED_SECONDARY_OFFSET, f["beats"], stride,
                                        where)[:len(activations)]
        return golden_paired_depthwise(primary, self._column_channels(secondary), taps)

    def _streamed_rows(self, first: int, beats: int, stride: int, where: str) -> np.ndarray:
        """The activation rows a COMPUTE's reader streams: row first + n * stride at beat n (a paired
        COMPUTE's secondary stream from PAIRED_SECONDARY_OFFSET rows on), checked and recorded as read."""
        self._check_rows(self.activations, first, (beats - 1) * stride + 1 if beats else 0,
                         "activation scratchpad", where)
        self._touch("activations", slice(first, first + beats * stride, stride))
        return self.activations[first:first + beats * stride:stride]

    def _column_channels(self, activations: np.ndarray) -> np.ndarray:
        """A depthwise COMPUTE's operand per column: activation lane j for column j, 0 for j >= R."""
        array = self.config.array
        lanes = np.zeros((len(activations), array.cols), dtype=np.int64)
        lanes[:, :min(array.rows, array.cols)] = activations[:, :array.cols]
        return lanes

    def _configure(self, f: dict, where: str) -> None:
        if not f["clamp_min"] <= f["clamp_max"]:
            raise IsaError(f"{where}: clamp_min {f['clamp_min']} exceeds clamp_max {f['clamp_max']}")
        self.output = dict(f)

    def _store(self, f: dict, where: str) -> None:
        cols = self.config.array.cols
        if not 1 <= f["channels"] <= cols:
            raise IsaError(f"{where}: channels {f['channels']} is not 1 to the {cols} lanes of an output row")
        if f["channel_row"] >= len(self.channels):
            raise IsaError(f"{where}: channel_row {f['channel_row']} is outside the {len(self.channels)} channel rows")
        addresses = row_addresses(f)
        self._check_rows(self.accumulators, f["acc_addr"], len(addresses), "accumulator", where)
        params = unpack_channel_records(self.channels[f["channel_row"]])
        self._touch("accumulators", slice(f["acc_addr"], f["acc_addr"] + len(addresses)))
        self._touch("channels", slice(f["channel_row"], f["channel_row"] + 1))
        out = self.output
        lanes = store_rows(self.accumulators[f["acc_addr"]:f["acc_addr"] + len(addresses)], params["bias"],
                           params["multiplier"], params["shift"], params["flip"], ArithMode(out["mode"]),
                           out["zero_point"], out["clamp_min"], out["clamp_max"], f["channels"])
        width = stored_bytes(f["channels"], ArithMode(out["mode"]))
        for address, values in zip(addresses, lanes):
            if self.races:
                self.races.dram(address + f["byte_offset"], width, write=True)
            self._dram_write(address, values[:width].astype(np.int8).tobytes(), where, f["byte_offset"])
