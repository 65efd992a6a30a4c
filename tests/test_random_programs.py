"""Constrained-random programs: every LOAD/COMPUTE/STORE/CONFIG feature, RTL against the ISA simulator.

Programs are random but legal: addresses within bounds, bursts within a 4 KiB
page, every SRAM cleared first (memories keep their contents across runs),
and tokens from ``quant.program.serialized`` so the units cannot race.
"""
import numpy as np
import pytest

from hdl.config import AcceleratorConfig, ArrayConfig, Dataflow
from hdl.isa import PAIRED_SECONDARY_OFFSET, Instruction, Opcode, Target, target_element_bytes
from hdl.numerics import SHIFT_RANGE, ArithMode, Combine
from quant.isasim import IsaSimulator
from quant.memory import MemoryImage, pack_channel_records
from quant.program import serialized
from sim.accelerator_runner import AcceleratorRun, accelerator_model, run_programs

PROGRAMS = 150
# 10 columns on a 64-bit bus: COMBINE and weight rows take two beats, accumulator rows five. The third
# is an ECP5 board's accelerator: pipelined, its products in the DSP block's model (sim/primitives.py),
# square, so that a compute's directed activation and weight LOADs write rows alike (the second may start
# while the first drains), with 2 KiB of scratchpad (a repeating depthwise COMPUTE at act_stride_log2 3
# reads up to 252 activation rows).
CONFIGS = [AcceleratorConfig(ArrayConfig(2, 10, "os", "both"), spad_kib=1, acc_kib=1, bus_bits=64),
           AcceleratorConfig(ArrayConfig(2, 3, "ws", "both"), spad_kib=1, acc_kib=1, bus_bits=64),
           AcceleratorConfig(ArrayConfig(4, 4, "os", "int8", pipelined=True, dsp_primitive="ecp5"),
                             spad_kib=2, acc_kib=1, bus_bits=64)]
PAGE = 4096
HOT_ROWS = 24


def depth(config, target):
    return {Target.ACTIVATIONS: config.act_rows, Target.WEIGHTS: config.weight_rows,
            Target.ACCUMULATORS: config.acc_rows, Target.CHANNELS: config.channel_rows,
            Target.COMBINE: config.acc_rows}[target]


def lanes(config, target):
    return config.array.rows if target == Target.ACTIVATIONS else config.array.cols


def random_program(config, rng):
    """A random legal program and its DRAM image: (image bytes, program address, program)."""
    bus = config.bus_bytes
    image = MemoryImage(bus)
    source = image.allocate("source", PAGE, PAGE)
    image.write(source.address, rng.integers(0, 256, PAGE, dtype=np.uint8).tobytes())
    cols = config.array.cols
    records = image.allocate("channels", PAGE, PAGE)
    multipliers = rng.integers(1 << 30, 1 << 31, size=(4, cols))
    shifts = rng.integers(SHIFT_RANGE.start, -10, size=(4, cols))
    for row in range(4):
        image.write(records.address + row * 64, pack_channel_records(
            rng.integers(-5000, 5000, cols), multipliers[row], shifts[row], rng.integers(0, 2, cols)).tobytes())
    output = image.allocate("output", PAGE, PAGE)

    def address(rows, count):
        """A first row for ``count`` rows of a memory of ``rows``: half the time within its first HOT_ROWS,
        so that computes and stores meet the rows that loads and computes wrote."""
        end = rows if rng.integers(0, 2) else min(rows, max(count, HOT_ROWS))
        return int(rng.integers(0, end - count + 1))

    def clear(target):
        return Instruction(Opcode.LOAD, {"target": target, "sram_addr": 0, "dram_addr": 0, "row_elems": 0,
                                         "rows": depth(config, target), "row_stride": 0, "blocks": 1,
                                         "block_stride": 0, "pad_before": 0, "pad_after": 0, "pad_value": 0})

    body = [clear(target) for target in Target if target != Target.COMBINE]
    body.append(Instruction(Opcode.LOAD, {"target": Target.CHANNELS, "sram_addr": 0, "dram_addr": records.address,
                                          "row_elems": cols, "rows": 4, "row_stride": 64, "blocks": 1,
                                          "block_stride": 0, "pad_before": 0, "pad_after": 0, "pad_value": 0}))
    mode = ArithMode(int(rng.choice([m.value for m in config.array.modes])))
    for _ in range(int(rng.integers(4, 14))):
        kind = rng.choice(["load", "load", "compute", "compute", "store", "config"])
        if kind == "load":
            target = Target(int(rng.choice([0, 1, 2, 4, 4])))
            rows, blocks, groups = int(rng.integers(1, 7)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
            sram_gap = int(rng.integers(0, 5)) if rng.integers(0, 2) else 0
            if rows * blocks * groups + (groups - 1) * sram_gap > depth(config, target):
                blocks = groups = 1
            pad_before = int(rng.integers(0, rows))
            pad_after = int(rng.integers(0, rows - pad_before + 1))
            pad_blocks_before = int(rng.integers(0, 2))
            pad_blocks_after = int(rng.integers(0, blocks - pad_blocks_before + 1))
            row_elems = int(rng.integers(0, lanes(config, target) + 1))
            burst = -(-row_elems * target_element_bytes(target) // bus) * bus
            row_stride = bus * int(rng.integers(0, 4))
            block_stride = bus * int(rng.integers(0, 16))
            group_stride = bus * int(rng.integers(0, 24))
            reach = ((groups - 1) * group_stride + (blocks - 1) * block_stride + max(rows - 1, 0) * row_stride
                     + burst)
            body.append(Instruction(Opcode.LOAD, {
                "target": target,
                "sram_addr": address(depth(config, target), rows * blocks * groups + (groups - 1) * sram_gap),
                "sram_gap": sram_gap,
                "dram_addr": source.address + bus * int(rng.integers(0, (PAGE - reach) // bus + 1)),
                "row_elems": row_elems, "rows": rows, "row_stride": row_stride, "blocks": blocks,
                "block_stride": block_stride, "groups": groups, "group_stride": group_stride,
                "pad_before": pad_before, "pad_after": pad_after, "pad_blocks_before": pad_blocks_before,
                "pad_blocks_after": pad_blocks_after, "pad_value": int(rng.integers(-128, 128)),
                "combine": Combine(int(rng.integers(0, 3))), "scale": int(rng.integers(-(1 << 15), 1 << 15)),
                "lane_scales": int(rng.integers(0, 2)), "scale_row": address(config.weight_rows, 1)}))
        elif kind == "compute":
            os = config.array.dataflow == Dataflow.OS
            rows = config.array.rows
            depthwise = config.array.depthwise and int(rng.integers(0, 2))
            beats = rows * int(rng.integers(1, 6)) if os else int(rng.integers(1, 12))
            taps, compute_mode = 0, mode
            if depthwise and os:           # OS depthwise COMPUTEs are int8 only
                taps, compute_mode = int(rng.integers(1, rows + 1)), ArithMode.INT8
            elif depthwise:
                beats = int(rng.integers(rows, 3 * rows + 8))
            weight_rows = beats if os else rows
            # OS depthwise: 1 + repeat runs, each R - taps + 1 result rows further on.
            repeat = int(rng.integers(0, 4)) if depthwise and os and rng.integers(0, 2) else 0
            run_rows = (rows - taps + 1 if depthwise else rows) if os else beats - (rows - 1 if depthwise else 0)
            result_rows = (repeat + 1) * run_rows
            # Paired (depthwise at stride 2): the secondary rows reach PAIRED_SECONDARY_OFFSET rows further.
            paired = int(depthwise and config.array.paired and rng.integers(0, 2))
            if paired:          # (int8 only)
                compute_mode = ArithMode.INT8
            stride_log2 = 1 if paired else int(rng.integers(0, 4)) if rng.integers(0, 2) else 0
            act_rows = (beats - 1 + repeat * run_rows << stride_log2) + 1 + (PAIRED_SECONDARY_OFFSET if paired else 0)
            compute = {"act_addr": address(config.act_rows, act_rows), "act_stride_log2": stride_log2,
                       "weight_addr": address(config.weight_rows, weight_rows),
                       "acc_addr": address(config.acc_rows, result_rows),
                       "beats": beats, "accumulate": int(rng.integers(0, 2)), "mode": compute_mode, "depthwise": depthwise,
                       "taps": taps, "paired": paired, "repeat": repeat}
            directed = rng.integers(0, 2)
            if directed:        # fresh operands from DRAM, so that the result depends on every lane
                for target, first, count in ((Target.ACTIVATIONS, compute["act_addr"], act_rows),
                                             (Target.WEIGHTS, compute["weight_addr"], weight_rows)):
                    burst = -(-lanes(config, target) * target_element_bytes(target) // bus) * bus
                    body.append(Instruction(Opcode.LOAD, {
                        "target": target, "sram_addr": first, "row_elems": lanes(config, target), "rows": count,
                        "row_stride": bus, "dram_addr": source.address + bus * int(
                            rng.integers(0, (PAGE - (count - 1) * bus - burst) // bus + 1))}))
            body.append(Instruction(Opcode.COMPUTE, compute))
            if directed:        # and every result row stored
                body.append(Instruction(Opcode.STORE, {
                    "acc_addr": compute["acc_addr"], "channel_row": int(rng.integers(0, 4)),
                    "dram_addr": output.address + bus * int(rng.integers(0, (PAGE - result_rows * bus) // bus + 1)),
                    "channels": cols, "rows": result_rows, "row_stride": bus}))
        elif kind == "config":
            mode = ArithMode(int(rng.choice([m.value for m in config.array.modes])))
            low = int(rng.integers(-128, 128))
            body.append(Instruction(Opcode.CONFIG, {"mode": mode, "zero_point": int(rng.integers(-128, 128)),
                                                    "clamp_min": low, "clamp_max": int(rng.integers(low, 128))}))
        else:
            rows, blocks, groups = int(rng.integers(1, 5)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
            if rows * blocks * groups > config.acc_rows:
                blocks = groups = 1
            row_stride, block_stride = bus * int(rng.integers(1, 4)), bus * int(rng.integers(0, 24))
            group_stride = bus * int(rng.integers(0, 40))
            byte_offset = int(rng.integers(0, 64)) if rng.integers(0, 2) else 0
            reach = (groups - 1) * group_stride + (blocks - 1) * block_stride + (rows - 1) * row_stride + bus * 8 \
                + byte_offset
            body.append(Instruction(Opcode.STORE, {
                "acc_addr": address(config.acc_rows, rows * blocks * groups),
                "channel_row": int(rng.integers(0, 4)), "dram_addr": output.address + bus * int(
                    rng.integers(0, (PAGE - reach) // bus + 1)),
                "channels": int(rng.integers(1, cols + 1)), "rows": rows, "row_stride": row_stride,
                "blocks": blocks, "block_stride": block_stride, "groups": groups, "group_stride": group_stride,
                "byte_offset": byte_offset}))
    program = serialized(body + [Instruction(Opcode.END, {})])
    region = image.place_program("program", program)
    return bytes(image.data), region.address, program


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.array.name)
def test_random_programs_match_the_isa_simulator(config, seed):
    rng = np.random.default_rng(seed)
    programs = [random_program(config, rng) for _ in range(PROGRAMS)]
    expected = []
    for image, address, program in programs:
        dram = bytearray(image)
        IsaSimulator(config, dram).run(address, len(program))
        expected.append(bytes(dram))
    runs = [AcceleratorRun(image, address, len(program), backpressure=index % 3 == 0, seed=index,
                           reset_before=index % 2 == 0)
            for index, (image, address, program) in enumerate(programs)]
    outcomes = run_programs(config, runs, accelerator_model(config))
    for index, (outcome, want, (_, _, program)) in enumerate(zip(outcomes, expected, programs)):
        assert outcome.done and outcome.error is None, f"program {index} (seed {seed}): {outcome}"
        got = outcome.dram[:len(want)]
        differing = [i for i in range(len(want)) if got[i] != want[i]]
        assert not differing, (f"program {index} (seed {seed}): {len(differing)} bytes differ, first at "
                               f"{differing[0]:#x}; program:\n" + "\n".join(map(str, program)))
