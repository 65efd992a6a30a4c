"""Per-layer summary of a compiled net: shape, MACs, parameters, DRAM traffic and a cycle estimate.

Traffic is counted from the instructions themselves (every LOAD row that
reads DRAM, every STORE row, the instructions fetched). The estimate is a
lower bound, ``max(array or accumulator-path cycles, bus cycles)``: it assumes
perfect overlap; the RTL's performance counters give the real figure.
"""
from dataclasses import asdict, dataclass

from hdl.isa import INSTRUCTION_BITS, Opcode, Target, decode, encode, target_element_bytes
from hdl.numerics import ArithMode, stored_bytes
from hdl.walker import row_addresses

from .compiler import CompiledNet
from .graph import Add, Conv, Pool

__all__ = ["LayerSummary", "summarize"]


@dataclass(frozen=True)
class LayerSummary:
    name: str
    op: str
    output_shape: tuple[int, int, int]
    macs: int
    parameters: int
    bytes_read: int
    bytes_written: int
    instructions: int
    estimated_cycles: int

    def as_dict(self) -> dict:
        return asdict(self)


def _work(node, graph) -> tuple[str, int, int]:
    """(op name, MACs, parameters) of a node."""
    height, width, channels = graph.tensors[node.output].shape
    if isinstance(node, Conv):
        kh, kw = node.kernel
        per_output = kh * kw * node.weight.shape[3] * (8 if node.arith.name == "BINARY" else 1)
        depthwise = node.groups > 1 and node.groups == channels == graph.tensors[node.input].shape[2]
        op = "depthwise" if depthwise else f"conv{kh}x{kw}" + (f"/g{node.groups}" if node.groups > 1 else "")
        return op, height * width * channels * per_output, node.weight.size + channels
    if isinstance(node, Pool):
        return f"{node.kind.value}pool", height * width * channels * node.kernel[0] * node.kernel[1], 0
    if isinstance(node, Add):
        return "add", 2 * height * width * channels, 0
    return type(node).__name__.lower(), 0, 0


def summarize(net: CompiledNet) -> list[LayerSummary]:
    nodes = {node.name: node for node in net.graph.nodes}
    bus = net.config.bus_bytes
    summaries = []
    for span in net.layers:
        instructions = net.program[span.start:span.end]
        read = written = busy = 0
        mode = ArithMode.INT8
        for instruction in instructions:
            f = decode(encode(instruction)).fields        # every field, defaults included
            if instruction.opcode == Opcode.CONFIG:
                mode = ArithMode(f["mode"])
            if instruction.opcode == Opcode.LOAD:
                data_rows = sum(address is not None for address in row_addresses(f)) if f["row_elems"] else 0
                read += data_rows * f["row_elems"] * target_element_bytes(Target(f["target"]))
                if Target(f["target"]) == Target.COMBINE:
                    busy += f["rows"] * f["blocks"] * f["groups"]
            elif instruction.opcode == Opcode.STORE:
                written += f["rows"] * f["blocks"] * f["groups"] * stored_bytes(f["channels"], mode)
            elif instruction.opcode == Opcode.COMPUTE:
                busy += f["beats"]
        read += len(instructions) * INSTRUCTION_BITS // 8
        op, macs, parameters = _work(nodes[span.name], net.graph)
        summaries.append(LayerSummary(span.name, op, net.graph.tensors[nodes[span.name].output].shape, macs,
                                      parameters, read, written, len(instructions),
                                      max(busy, -(-(read + written) // bus))))
    return summaries
