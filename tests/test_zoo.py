import pytest
import torch
from torch import nn

from quant.frontend import FloatConv, UnsupportedOperation, run_float, trace
from quant.graph import ChannelShuffle, Slice
from quant.zoo import ZOO, BinaryConv2d, SqueezeNet, SqueezeNext


def randomize_batch_norms(model: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial running statistics and affine parameters, so folding them is actually tested."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.rand(size, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(2 * torch.rand(size, generator=generator) - 1)
            module.bias.data.copy_(torch.rand(size, generator=generator) - 0.5)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_zoo_net_traces_and_its_float_graph_matches_the_module(name, seed):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ZOO[name](width=0.25, num_classes=7, in_channels=3).eval()
    randomize_batch_norms(model, generator)
    images = torch.rand(2, 3, 40, 40, generator=generator)
    graph = trace(model, (3, 40, 40))
    expected = model(images).detach()
    assert expected.shape == (2, 7)
    got = run_float(graph, images)[graph.output].reshape(2, -1)
    assert graph.shapes[graph.output] == (1, 1, 7)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert type(model).__doc__ and "20" in type(model).__doc__, "the docstring names the paper and its year"


def test_zoo_features_reach_the_graph():
    graph = trace(ZOO["shufflenet_v2"](width=0.5, num_classes=10), (3, 32, 32))
    kinds = {type(node) for node in graph.nodes}
    assert {ChannelShuffle, Slice} <= kinds
    assert any(isinstance(n, FloatConv) and n.groups > 1 and n.groups == n.weight.shape[0] for n in graph.nodes)
    squeezenext = trace(ZOO["squeezenext23"](width=0.25, num_classes=10), (3, 32, 32))
    kernels = {n.weight.shape[2:] for n in squeezenext.nodes if isinstance(n, FloatConv)}
    assert {(1, 3), (3, 1)} <= kernels
    binary = trace(ZOO["binarynet"](width=0.25, num_classes=10), (3, 32, 32))
    convs = [n for n in binary.nodes if isinstance(n, FloatConv)]
    assert [c.binary for c in convs] == [False, True, True, True, True, False]


def test_squeezenext_depths():
    def blocks(model):
        return sum(type(m).__name__ == "_SqueezeNextBlock" for m in model.modules())
    assert blocks(ZOO["squeezenext23"]()) == 21
    assert blocks(ZOO["squeezenext23v5"]()) == 21
    with pytest.raises(ValueError, match=r"SqueezeNext depth must be four positive block counts, not \(1, 2\)"):
        SqueezeNext((1, 2))


def test_bad_zoo_parameters_name_the_value():
    with pytest.raises(ValueError, match="Width multiplier must be a positive number, not -1"):
        ZOO["mobilenet_v2"](width=-1)
    with pytest.raises(ValueError, match=r"SqueezeNet version must be one of \['1_0', '1_1'\], not '2_0'"):
        SqueezeNet("2_0")
    with pytest.raises(ValueError, match="Binary convolution input channels must be a multiple of 8, not 12"):
        BinaryConv2d(12, 16, 3)


class _Gelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.conv(x))


class _Lonely(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.norm = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.norm(self.pool(x))


class _Concat(nn.Module):
    def forward(self, x):
        return torch.cat([x, x], 2)


class _Multiply(nn.Module):
    def forward(self, x):
        return x * x


@pytest.mark.parametrize("module, message", [
    (_Gelu(), r"Unsupported operation GELU at module 'act' of _Gelu; supported: Conv2d"),
    (_Lonely(), r"Unsupported operation BatchNorm2d at module 'norm' of _Lonely \(it must directly follow a "
                r"convolution or linear layer with no other user"),
    (_Concat(), r"Unsupported operation torch.cat at node 'cat' of _Concat \(only along channels \(dim=1\), "
                r"not dim=2\)"),
    (_Multiply(), r"Unsupported operation mul at node 'mul' of _Multiply; supported: .*BatchNorm2d"),
])
def test_unsupported_operations_name_module_op_and_what_is_supported(module, message):
    with pytest.raises(UnsupportedOperation, match=message):
        trace(module, (3, 8, 8))


def test_trace_rejects_a_bad_input_shape():
    with pytest.raises(ValueError, match=r"Input shape must be \(C, H, W\) of positive integers, not \(3, 8\)"):
        trace(_Multiply(), (3, 8))
