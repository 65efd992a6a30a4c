"""Random quantized GEMM layers shared by the ISA-simulator and RTL tests."""
import numpy as np

from hdl.numerics import quantize_multiplier, random_operands
from quant.gemm import GemmLayer


def random_layer(rng: np.random.Generator, m: int, k: int, n: int, mode) -> GemmLayer:
    a, w = random_operands(rng, m, k, n)
    multipliers, shifts = map(np.array, zip(*(quantize_multiplier(s) for s in rng.uniform(1e-4, 0.05, n))))
    low = int(rng.integers(-128, 0))
    return GemmLayer(a, w, rng.integers(-2000, 2000, n), multipliers, shifts, rng.integers(0, 2, n), mode,
                     zero_point=int(rng.integers(-5, 5)), clamp_min=low, clamp_max=int(rng.integers(low, 128)))
