import os
import zlib

import pytest

BASE_SEED = int(os.environ.get("ACCEL_TEST_SEED", "2026"))


@pytest.fixture
def seed(request) -> int:
    """A per-test seed, reproducible from the test id; set ACCEL_TEST_SEED to vary all of them."""
    value = (BASE_SEED * 1_000_003 + zlib.crc32(request.node.nodeid.encode())) % (1 << 32)
    print(f"seed for {request.node.nodeid}: {value} (ACCEL_TEST_SEED={BASE_SEED})")
    return value
