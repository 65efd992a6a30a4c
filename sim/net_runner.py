"""A compiled net on the fast runner one layer at a time: per-layer figures from the hardware's counters.

Each ``LayerSpan`` of the compiled program (a fenced layer: it starts from empty queues and ends
with every store written) is copied, followed by END, into its own program region of a copy of
the image; the fast runner's sequencer STARTs them one after another (START clears the
counters) and records every counter after each. The feature maps and the final DRAM are those
of the one-program run: only the program copies are added.
"""
from collections.abc import Callable

from hdl.config import AcceleratorConfig
from quant.compiler import CompiledNet

from .fast_runner import DEFAULT_CAPACITY, FastOutcome, fast_model, run_fast
from .verilator import VerilatorModel

__all__ = ["layer_segments", "run_layers", "net_model"]


def layer_segments(net: CompiledNet) -> tuple[bytes, list[tuple[int, int]]]:
    """(image with one program per layer added, [(address, instructions)] of those programs in layer order)."""
    image, programs = net.layer_programs()
    return bytes(image.data), [(address, len(program)) for address, program in programs]


def net_model(config: AcceleratorConfig, image_bytes: int) -> VerilatorModel:
    """The fast model with a DRAM large enough for ``image_bytes`` (a power of two, at least the default)."""
    return fast_model(config, capacity=max(DEFAULT_CAPACITY, 1 << (image_bytes - 1).bit_length()))


def run_layers(net: CompiledNet, *, model: VerilatorModel | None = None, read_latency: int = 2,
               max_cycles: int = 100_000_000,
               progress: Callable[[int, dict[str, int]], None] | None = None) -> FastOutcome:
    """Run ``net`` layer by layer; ``outcome.segments[i]`` are the counters of ``net.layers[i]``."""
    image, segments = layer_segments(net)
    return run_fast(net.config, image, segments=segments, model=model or net_model(net.config, len(image)),
                    read_latency=read_latency, max_cycles=max_cycles, progress=progress)
