"""Generation parameters are validated once, with messages that say what is allowed."""
import gc
import warnings

import pytest
from amaranth.hdl import Fragment, UnusedElaboratable

from boards.flow import PinnedTop
from hdl.accelerator import Accelerator
from hdl.config import AcceleratorConfig, ArithSupport, ArrayConfig, Dataflow, parse_pe
from hdl.numerics import ArithMode
from hdl.pe import ProcessingElement
from hdl.postprocess import PostProcessor
from hdl.soc import BlockRamMemory, HostLinkSoC
from hdl.systolic_array import SystolicArray
from hdl.transposer import Transposer
from hdl.uart import UartRx, UartTx
from hdl.uart_bridge import UartBridge


@pytest.mark.parametrize("text, shape", [("16x16", (16, 16)), ("3x5", (3, 5)), ("1X64", (1, 64)),
                                         (" 64x1 ", (64, 1))])
def test_parse_pe_accepts_rxc(text, shape):
    assert parse_pe(text) == shape


@pytest.mark.parametrize("text, message", [
    ("0x4", "must have R and C from 1 to 64, not '0x4'"),
    ("65x2", "must have R and C from 1 to 64, not '65x2'"),
    ("16", r"must be RxC with R and C from 1 to 64 \(e.g. 16x16\), not '16'"),
    ("16x16x2", "not '16x16x2'"),
    ("ax4", "not 'ax4'"),
])
def test_parse_pe_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_pe(text)


def test_config_coerces_and_validates():
    config = ArrayConfig(3, 5, "ws", "both")
    assert config.dataflow is Dataflow.WS and config.arith is ArithSupport.BOTH
    assert config.modes == (ArithMode.INT8, ArithMode.BINARY)
    assert config.name == "systolic_3x5_ws_both"
    with pytest.raises(ValueError, match="Array rows must be from 1 to 64, not 0"):
        ArrayConfig(0, 4)
    with pytest.raises(TypeError, match="Array cols must be an integer, not '4'"):
        ArrayConfig(4, "4")
    with pytest.raises(ValueError, match="Dataflow must be one of ws, os, not 'xs'"):
        ArrayConfig(4, 4, "xs")
    with pytest.raises(ValueError, match="Arithmetic must be one of int8, binary, both, not 'int4'"):
        ArrayConfig(4, 4, "os", "int4")


def test_paired_depthwise_is_on_where_the_array_can():
    assert ArrayConfig(4, 4, "os").paired and ArrayConfig(4, 4, "ws").paired
    assert not ArrayConfig(4, 4, "os", depthwise=False).paired
    assert ArrayConfig(4, 4, "ws", paired=False).name == "systolic_4x4_ws_int8_nopair"
    assert not ArrayConfig(4, 4, "ws", "binary").paired
    with pytest.raises(ValueError, match="Paired depthwise COMPUTEs need an array with the depthwise mode and int8 "
                                         "MACs, not depthwise False with arith int8"):
        ArrayConfig(4, 4, "ws", depthwise=False, paired=True)
    with pytest.raises(TypeError, match="paired must be True, False or None"):
        ArrayConfig(4, 4, "os", paired=1)


def test_depthwise_mode_is_on_by_default():
    assert ArrayConfig(4, 4, "ws").depthwise and ArrayConfig(4, 4, "os").depthwise
    assert ArrayConfig(4, 4, "ws", depthwise=False).name == "systolic_4x4_ws_int8_nodw"
    assert ArrayConfig(4, 4, "os", depthwise=False).name == "systolic_4x4_os_int8_nodw"
    assert ArrayConfig(4, 4, "ws").name == "systolic_4x4_ws_int8"
    with pytest.raises(TypeError, match="depthwise must be True, False or None"):
        ArrayConfig(4, 4, "ws", depthwise="yes")


def test_a_refused_component_leaves_no_unused_design_warning():
    """Amaranth warns about a design created but never elaborated once elaboration has begun in the process;
    a component whose parameters are refused (``hdl.config.refusable``) was never a design."""
    elaborated = Transposer(2)
    Fragment.get(elaborated, None)
    refusals = [lambda: UartRx(clocks_per_bit=3), lambda: UartTx(clocks_per_bit=3), lambda: Transposer(0),
                lambda: PostProcessor(0), lambda: ProcessingElement(ArrayConfig(2, 2), row=5),
                lambda: SystolicArray(None), lambda: Accelerator(None), lambda: UartBridge(None),
                lambda: HostLinkSoC(AcceleratorConfig(ArrayConfig(2, 2)), memory_kib=0, clocks_per_bit=4),
                lambda: BlockRamMemory(size_bytes=100, bus_bits=128),
                lambda: PinnedTop(elaborated, {"nope": ("led", 0, None)})]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for refusal in refusals:
            with pytest.raises((TypeError, ValueError)):
                refusal()
        gc.collect()
    assert [str(warning.message) for warning in caught if warning.category is UnusedElaboratable] == []
