"""tools/host.py's argument handling and the driver's reading of compile.py outputs (the RTL run is in test_soc.py)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from boards.host import CompiledProgram
from hdl.config import AcceleratorConfig, ArrayConfig
from quant.isasim import IsaSimulator

TOOLS = Path(__file__).resolve().parent.parent / "tools"
SMALL = ["--model", "squeezenet1_1", "--width", "0.25", "--classes", "10", "--input", "3x32x32", "--pe", "4x4",
         "--spad-kib", "2", "--acc-kib", "4", "--bus-bits", "64", "--channel-rows", "512", "--dataflow", "os"]


def host_cli(*args):
    return subprocess.run([sys.executable, str(TOOLS / "host.py"), *args], capture_output=True, text=True)


def _broken_layout(directory: Path) -> Path:
    (directory / "image.bin").write_bytes(bytes(64))
    (directory / "layout.json").write_text(json.dumps({"program_address": 0}))
    return directory


@pytest.mark.parametrize("args, named", [
    ([], "the following arguments are required: --port, command"),
    (["--port", "x", "--baud", "0", "info"], "argument --baud: invalid positive number value: '0'"),
    (["--port", "x", "--baud", "fast", "info"], "invalid positive number value: 'fast'"),
    (["--port", "x", "erase"], "invalid choice: 'erase'"),
    (["--port", "x", "run", "/nonexistent"], "/nonexistent is not a compile.py output directory"),
    (["--port", "x", "run", "/tmp", "--timeout", "-1"], "argument --timeout: invalid positive number value: '-1'"),
    (["--port", "x", "run", "BROKEN"], "is not a compile.py layout: KeyError('program_length')"),
    (["--port", "/nonexistent/tty", "info"],
     "cannot open '/nonexistent/tty'" if importlib.util.find_spec("serial") else "pyserial is not installed"),
])
def test_bad_input_exits_2_with_one_line(args, named, tmp_path):
    args = [str(_broken_layout(tmp_path)) if arg == "BROKEN" else arg for arg in args]
    result = host_cli(*args)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]


def test_tensor_span_covers_everything_a_compiled_net_writes(tmp_path):
    compiled = subprocess.run([sys.executable, str(TOOLS / "compile.py"), *SMALL, "-o", str(tmp_path)],
                              capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    program = CompiledProgram.from_directory(tmp_path)
    config = AcceleratorConfig(ArrayConfig(4, 4, "os", "int8"), spad_kib=2, acc_kib=4, bus_bits=64, channel_rows=512)
    assert program.accelerator == config.array.name and program.bus_bytes == config.bus_bytes
    dram = bytearray(program.image)
    IsaSimulator(config, dram).run(program.program_addr, program.program_length)
    first, end = program.tensor_span()
    # What tools/host.py writes to board.bin: the image with [first, end) read back from the board.
    assert dram[:first] == program.image[:first] and dram[end:] == program.image[end:]
    assert dram[first:end] != program.image[first:end]
    assert program.output in program.tensors
