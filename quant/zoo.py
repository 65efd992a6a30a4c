"""Compact CNNs the accelerator targets, as plain torch modules (nothing downloaded, no torchvision).

Every constructor takes keyword-only ``width`` (channel multiplier), ``num_classes``
and ``in_channels``; the nets end in a global average pool, so any input size that
survives their strides works (32x32 and up). ``ZOO`` maps names to constructors.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .graph import binary_padding_signs

__all__ = [
    "BinarySign", "BinaryConv2d", "SqueezeNet", "SqueezeNext", "MobileNetV1", "MobileNetV2", "ShuffleNetV2",
    "BinaryNet", "ZOO", "squeezenet1_0", "squeezenet1_1", "squeezenext23", "squeezenext23v5",
]


def _channels(base: int, width: float, multiple: int = 1) -> int:
    """``base * width`` rounded to a positive multiple of ``multiple``."""
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"Width multiplier must be a positive number, not {width!r}")
    return max(multiple, int(round(base * width / multiple)) * multiple)


def _conv_bn_relu(cin, cout, kernel, stride=1, padding=0, groups=1, relu: type[nn.Module] | None = nn.ReLU):
    layers = [nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, relu(inplace=True)) if relu else nn.Sequential(*layers)


class _GlobalPoolNet(nn.Module):
    """Features, global average pool, linear classifier: the tail most of the zoo shares."""

    def __init__(self, layers: list[nn.Module], channels: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# --- SqueezeNet ------------------------------------------------------------------------------

class _Fire(nn.Module):
    def __init__(self, cin, squeeze, expand1x1, expand3x3):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU(inplace=True))
        self.expand1x1 = nn.Sequential(nn.Conv2d(squeeze, expand1x1, 1), nn.ReLU(inplace=True))
        self.expand3x3 = nn.Sequential(nn.Conv2d(squeeze, expand3x3, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x):
        x = self.squeeze(x)
        return torch.cat([self.expand1x1(x), self.expand3x3(x)], 1)


class SqueezeNet(nn.Module):
    """SqueezeNet (Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters
    and <0.5MB model size", 2016): Fire modules of a 1x1 squeeze and concatenated 1x1 + 3x3 expands.

    ``version`` "1_0" is the paper's net (7x7/2 stem with 96 channels); "1_1" the
    repository's 1.1 (3x3/2 stem with 64 channels, earlier pooling, 2.4x fewer MACs).
    """

    _FIRES = {  # (squeeze, expand) per Fire module, None = 3x3/2 max pool (ceil mode)
        "1_0": [(16, 64), (16, 64), (32, 128), None, (32, 128), (48, 192), (48, 192), (64, 256), None, (64, 256)],
        "1_1": [(16, 64), (16, 64), None, (32, 128), (32, 128), None, (48, 192), (48, 192), (64, 256), (64, 256)],
    }

    def __init__(self, version: str = "1_1", *, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 dropout: float = 0.5):
        super().__init__()
        if version not in self._FIRES:
            raise ValueError(f"SqueezeNet version must be one of {sorted(self._FIRES)}, not {version!r}")
        stem = _channels(96 if version == "1_0" else 64, width)
        layers = [nn.Conv2d(in_channels, stem, 7 if version == "1_0" else 3, stride=2), nn.ReLU(inplace=True),
                  nn.MaxPool2d(3, stride=2, ceil_mode=True)]
        cin = stem
        for fire in self._FIRES[version]:
            if fire is None:
                layers.append(nn.MaxPool2d(3, stride=2, ceil_mode=True))
                continue
            squeeze, expand = _channels(fire[0], width), _channels(fire[1], width)
            layers.append(_Fire(cin, squeeze, expand, expand))
            cin = 2 * expand
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(cin, num_classes, 1), nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d(1))
        # The reference implementation's initialization: without batch norm, torch's default
        # (kaiming_uniform with a = sqrt(5)) shrinks the activations layer by layer.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.classifier[1].weight, mean=0.0, std=0.01)

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


def squeezenet1_0(**kwargs) -> SqueezeNet:
    return SqueezeNet("1_0", **kwargs)


def squeezenet1_1(**kwargs) -> SqueezeNet:
    return SqueezeNet("1_1", **kwargs)


# --- SqueezeNext -----------------------------------------------------------------------------

class _SqueezeNextBlock(nn.Module):
    """Two 1x1 squeezes halving the channels, 1x3 then 3x1 low-rank convolutions, a 1x1 expansion,
    and a shortcut (a 1x1 projection where the shape changes), ReLU after the add."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        reduction = 1.0 if stride == 2 else 0.25 if cin > cout else 0.5
        mid = max(1, int(cin * reduction))
        low = max(1, int(mid * 0.5))
        self.body = nn.Sequential(
            _conv_bn_relu(cin, mid, 1, stride), _conv_bn_relu(mid, low, 1),
            _conv_bn_relu(low, mid, (1, 3), padding=(0, 1)), _conv_bn_relu(mid, mid, (3, 1), padding=(1, 0)),
            _conv_bn_relu(mid, cout, 1))
        self.shortcut = (_conv_bn_relu(cin, cout, 1, stride, relu=None) if stride != 1 or cin != cout
                         else nn.Identity())

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class SqueezeNext(_GlobalPoolNet):
    """SqueezeNext (Gholami et al., "SqueezeNext: Hardware-Aware Neural Network Design", 2018).

    A 7x7/2 stem and 3x3/2 max pool, four stages of ``depth`` blocks with
    32, 64, 128, 256 channels (times ``width``; stages 2-4 start with stride 2),
    a 1x1 convolution to 128 channels, global average pool and classifier.
    SqueezeNext-23 is depth [6, 6, 8, 1]; 23v5 is [2, 4, 14, 1].
    """

    def __init__(self, depth=(6, 6, 8, 1), *, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3):
        if len(depth) != 4 or not all(isinstance(d, int) and d > 0 for d in depth):
            raise ValueError(f"SqueezeNext depth must be four positive block counts, not {depth!r}")
        cin = _channels(64, width)
        blocks = [_conv_bn_relu(in_channels, cin, 7, 2, 3), nn.MaxPool2d(3, 2, ceil_mode=True)]
        for stage, (count, base) in enumerate(zip(depth, (32, 64, 128, 256))):
            cout = _channels(base, width)
            for index in range(count):
                blocks.append(_SqueezeNextBlock(cin, cout, 2 if stage > 0 and index == 0 else 1))
                cin = cout
        blocks.append(_conv_bn_relu(cin, _channels(128, width), 1))
        super().__init__(blocks, _channels(128, width), num_classes)


def squeezenext23(**kwargs) -> SqueezeNext:
    return SqueezeNext((6, 6, 8, 1), **kwargs)


def squeezenext23v5(**kwargs) -> SqueezeNext:
    return SqueezeNext((2, 4, 14, 1), **kwargs)


# --- MobileNets ------------------------------------------------------------------------------

class MobileNetV1(_GlobalPoolNet):
    """MobileNetV1 (Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
    Vision Applications", 2017): a 3x3/2 stem, then 13 depthwise 3x3 + pointwise 1x1 pairs."""

    _LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    def __init__(self, *, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3):
        cin = _channels(32, width)
        layers = [_conv_bn_relu(in_channels, cin, 3, 2, 1)]
        for base, stride in self._LAYERS:
            cout = _channels(base, width)
            layers += [_conv_bn_relu(cin, cin, 3, stride, 1, groups=cin), _conv_bn_relu(cin, cout, 1)]
            cin = cout
        super().__init__(layers, cin, num_classes)


class _InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expansion):
        super().__init__()
        hidden = cin * expansion
        layers = [_conv_bn_relu(cin, hidden, 1, relu=nn.ReLU6)] if expansion != 1 else []
        layers += [_conv_bn_relu(hidden, hidden, 3, stride, 1, groups=hidden, relu=nn.ReLU6),
                   _conv_bn_relu(hidden, cout, 1, relu=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(_GlobalPoolNet):
    """MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", 2018):
    1x1 expansion, depthwise 3x3 and linear 1x1 projection with ReLU6, residual where shapes match."""

    _SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1)]  # expansion t, channels c, repeats n, first stride s

    def __init__(self, *, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3):
        cin = _channels(32, width, 8)
        layers = [_conv_bn_relu(in_channels, cin, 3, 2, 1, relu=nn.ReLU6)]
        for expansion, base, repeats, stride in self._SETTINGS:
            cout = _channels(base, width, 8)
            for index in range(repeats):
                layers.append(_InvertedResidual(cin, cout, stride if index == 0 else 1, expansion))
                cin = cout
        last = _channels(1280, max(1.0, width), 8)
        layers.append(_conv_bn_relu(cin, last, 1, relu=nn.ReLU6))
        super().__init__(layers, last, num_classes)


# --- ShuffleNetV2 ----------------------------------------------------------------------------

class _ShuffleUnit(nn.Module):
    """Stride 1: split the channels in two halves, transform one, concatenate, shuffle.
    Stride 2: both branches transform (and downsample) the whole input."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        half = cout // 2
        branch_in = cin if stride == 2 else half
        self.branch2 = nn.Sequential(
            _conv_bn_relu(branch_in, half, 1), _conv_bn_relu(half, half, 3, stride, 1, groups=half, relu=None),
            _conv_bn_relu(half, half, 1))
        if stride == 2:
            self.branch1 = nn.Sequential(_conv_bn_relu(cin, cin, 3, 2, 1, groups=cin, relu=None),
                                         _conv_bn_relu(cin, half, 1))
        self.shuffle = nn.ChannelShuffle(2)

    def forward(self, x):
        if self.stride == 1:
            kept, transformed = x.chunk(2, dim=1)
            out = torch.cat([kept, self.branch2(transformed)], 1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], 1)
        return self.shuffle(out)


class ShuffleNetV2(_GlobalPoolNet):
    """ShuffleNetV2 (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
    Design", 2018): channel split, depthwise (group) convolution, concatenation, channel shuffle.

    Stage channels are those of the 1.0x net (116, 232, 464; 1024 in conv5) times ``width``.
    """

    def __init__(self, *, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 repeats=(4, 8, 4)):
        cin = _channels(24, width, 2)
        layers = [_conv_bn_relu(in_channels, cin, 3, 2, 1), nn.MaxPool2d(3, 2, 1)]
        for count, base in zip(repeats, (116, 232, 464)):
            cout = _channels(base, width, 2)
            layers += [_ShuffleUnit(cin, cout, 2)] + [_ShuffleUnit(cout, cout, 1) for _ in range(count - 1)]
            cin = cout
        last = _channels(1024, width)
        layers.append(_conv_bn_relu(cin, last, 1))
        super().__init__(layers, last, num_classes)


# --- Binary net ------------------------------------------------------------------------------

class BinarySign(nn.Module):
    """+1 where x >= 0 else -1 (``numerics.binarize``'s rule); straight-through gradient inside [-1, 1]."""

    def forward(self, x):
        clipped = x.clamp(-1, 1)
        return torch.where(x >= 0, 1.0, -1.0) + (clipped - clipped.detach())   # exactly +1/-1 forward


class BinaryConv2d(nn.Conv2d):
    """XNOR-Net convolution on +1/-1 inputs: ``alpha * conv(x, sign(W))``, ``alpha`` = mean |W| per output channel.

    Borders are padded with the accelerator's binary padding pattern
    (``graph.binary_padding_signs``), not zeros, since a binary value cannot be
    0. The sign's gradient is straight through (BinaryConnect).
    """

    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        if cin % 8:
            raise ValueError(f"Binary convolution input channels must be a multiple of 8, not {cin}")
        super().__init__(cin, cout, kernel, stride, padding, bias=False)
        self.register_buffer("pad_signs", torch.tensor(binary_padding_signs(cin), dtype=torch.float32),
                             persistent=False)

    def channel_scale(self) -> torch.Tensor:
        return self.weight.abs().mean(dim=(1, 2, 3))

    def forward(self, x):
        ph, pw = self.padding
        if ph or pw:
            inside = F.pad(torch.ones_like(x[:1, :1]), (pw, pw, ph, ph))
            x = F.pad(x, (pw, pw, ph, ph)) + (1 - inside) * self.pad_signs.view(1, -1, 1, 1)
        signs = torch.where(self.weight >= 0, 1.0, -1.0) + (self.weight - self.weight.detach())
        out = F.conv2d(x, signs, None, self.stride)
        return out * self.channel_scale().view(1, -1, 1, 1)


class BinaryNet(_GlobalPoolNet):
    """A binary net in the XNOR-Net style (Rastegari et al., "XNOR-Net: ImageNet Classification Using
    Binary Convolutional Neural Networks", 2016): binary weights and activations with a per-channel
    weight scale; the first convolution and the classifier stay int8.

    int8 3x3 conv -> BN -> sign, then binary 3x3 convs (BN, sign; stride 2 to
    downsample), the last binary conv -> BN -> ReLU (int8), global average pool, linear.
    """

    def __init__(self, *, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3):
        widths = [_channels(base, width, 8) for base in (64, 128, 256)]
        layers = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), BinarySign()]
        cin = widths[0]
        plan = [(widths[0], 1), (widths[1], 2), (widths[1], 1), (widths[2], 2)]
        for index, (cout, stride) in enumerate(plan):
            layers += [BinaryConv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout)]
            layers.append(BinarySign() if index < len(plan) - 1 else nn.ReLU(inplace=True))
            cin = cout
        super().__init__(layers, cin, num_classes)


ZOO = {
    "squeezenet1_0": squeezenet1_0,
    "squeezenet1_1": squeezenet1_1,
    "squeezenext23": squeezenext23,
    "squeezenext23v5": squeezenext23v5,
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v2": MobileNetV2,
    "shufflenet_v2": ShuffleNetV2,
    "binarynet": BinaryNet,
}
