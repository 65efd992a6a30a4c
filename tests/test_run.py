"""tools/run.py's per-layer report: the table, run.json, layers.csv and the plots agree with the counters."""
import csv
import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parent.parent / "tools" / "run.py"
# The configuration of test_compile_cli.py's run test (the Verilator model is shared).
SMALL = ["--model", "squeezenet1_1", "--width", "0.25", "--classes", "10", "--input", "3x32x32", "--pe", "4x4",
         "--spad-kib", "2", "--acc-kib", "4", "--bus-bits", "64", "--channel-rows", "6", "--dataflow", "ws"]


def test_per_layer_report(tmp_path):
    result = subprocess.run([sys.executable, str(RUN), *SMALL, "-o", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run.json").read_text())
    layers = report["layers"]
    with (tmp_path / "layers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["name"] for row in rows] == [layer["name"] for layer in layers]
    for counter, field in (("CYCLES", "cycles"), ("BYTES_WRITTEN", "bytes_written"), ("ARRAY_BUSY", "array_busy"),
                           ("LOAD_STALL", "load_stall"), ("STORE_STALL", "store_stall")):
        assert sum(layer[field] for layer in layers) == report["counters"][counter], counter
    assert sum(int(row["cycles"]) for row in rows) == report["counters"]["CYCLES"]
    for layer in layers:
        if layer["op"].startswith("conv"):
            assert 0 < layer["pe_utilization"] <= 1, layer
    # Progress: one line per layer on stderr; the table: one line per layer plus header and total.
    assert result.stderr.count(" cycles\n") >= len(layers)
    assert all(layer["name"][:28] in result.stdout for layer in layers)
    for plot in ("utilization.png", "roofline.png"):
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot


def test_bad_option_exits_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(RUN), *SMALL, "--max-cycles", "x", "-o", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--max-cycles" in result.stderr
