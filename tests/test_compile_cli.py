"""tools/compile.py: writes the program, image, layout and summary; bad input exits 2 with one line."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hdl.config import AcceleratorConfig, ArrayConfig
from quant.isasim import IsaSimulator

COMPILE = Path(__file__).resolve().parent.parent / "tools" / "compile.py"
SMALL = ["--model", "squeezenet1_1", "--width", "0.25", "--classes", "10", "--input", "3x32x32", "--pe", "4x4",
         "--spad-kib", "2", "--acc-kib", "4", "--bus-bits", "64", "--channel-rows", "512"]


def compile_cli(*args):
    return subprocess.run([sys.executable, str(COMPILE), *args], capture_output=True, text=True)


def test_outputs_run_on_the_isa_simulator(tmp_path):
    result = compile_cli(*SMALL, "--dataflow", "ws", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    layout = json.loads((tmp_path / "layout.json").read_text())
    summary = json.loads((tmp_path / "summary.json").read_text())
    image = bytearray((tmp_path / "image.bin").read_bytes())
    program = (tmp_path / "program.bin").read_bytes()
    assert image[layout["program_address"]:layout["program_address"] + len(program)] == program
    config = AcceleratorConfig(ArrayConfig(4, 4, "ws", "int8"), spad_kib=2, acc_kib=4, bus_bits=64, channel_rows=512)
    stats = IsaSimulator(config, image).run(layout["program_address"], layout["program_length"])
    assert stats.instructions == layout["program_length"]
    assert sum(layer["macs"] for layer in summary) > 0 and (tmp_path / "summary.csv").exists()
    assert len(summary) + 1 == len(result.stdout.splitlines())      # a header and a line per layer
    assert np.load(tmp_path / "input.npy").shape == (32, 32, 3)


@pytest.mark.parametrize("args, named", [
    (["--input", "3x32"], "'3x32'"), (["--model", "resnet50"], "'resnet50'"), (["--pe", "0x4"], "'0x4'"),
    (["--width", "-1"], "-1"), (["--model", "binarynet"], "arith binary or both"),
])
def test_bad_input_exits_2_with_one_line(args, named, tmp_path):
    given = dict(zip(SMALL[::2], SMALL[1::2]))
    given.update(dict(zip(args[::2], args[1::2])))
    result = compile_cli(*[item for pair in given.items() for item in pair], "-o", str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]


RUN = COMPILE.parent / "run.py"


def test_run_cli_checks_the_net_in_rtl(tmp_path):
    """tools/run.py on the configuration test_compiler.py builds (so the Verilator model is shared)."""
    result = subprocess.run([sys.executable, str(RUN), *SMALL[:-2], "--channel-rows", "6", "--dataflow", "ws",
                             "-o", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["bit_exact"] and not report["layers_differing"]
    assert report["counters"]["CYCLES"] > 0 and "bit-exact True" in result.stdout
