"""Shared by the network CLIs: options that pick a zoo net, and building its integer graph."""
import argparse

import numpy as np
import torch

from quant.ptq import calibrate, quantize, quantize_input
from quant.zoo import ZOO


def add_net_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=sorted(ZOO), help="zoo net (quant/zoo.py)")
    parser.add_argument("--input", default="3x224x224", metavar="CxHxW", help="input shape (default 3x224x224)")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier of the net (default 1.0)")
    parser.add_argument("--classes", type=int, default=1000, help="output classes (default 1000)")
    parser.add_argument("--weights", metavar="FILE", help="a torch state dict for the net "
                        "(default: the zoo's seeded initialization)")
    parser.add_argument("--calibration", type=int, default=4, metavar="N",
                        help="random calibration images, seeded; the first is the input (default 4)")


def input_shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"--input must be CxHxW with positive integers (e.g. 3x224x224), not {text!r}")
    return tuple(int(part) for part in parts)


def build_model(args: argparse.Namespace) -> tuple[torch.nn.Module, tuple[int, int, int]]:
    """The float net of the options; ``ValueError``/``OSError``/``RuntimeError`` name bad options."""
    shape = input_shape(args.input)
    if args.classes < 1 or args.calibration < 1:
        raise ValueError(f"--classes and --calibration must be positive, not {args.classes} and {args.calibration}")
    torch.manual_seed(0)
    model = ZOO[args.model](width=args.width, num_classes=args.classes, in_channels=shape[0]).eval()
    if args.weights:
        model.load_state_dict(torch.load(args.weights, map_location="cpu"))
    return model, shape


def quantize_net(graph, shape: tuple[int, int, int], calibration: int):
    """(integer graph, the calibration images, the first one as the graph's int8 (H, W, C) input)."""
    images = torch.rand(calibration, *shape, generator=torch.Generator().manual_seed(0))
    integer = quantize(graph, calibrate(graph, images))
    return integer, images, np.asarray(quantize_input(integer, images[:1].numpy())[0])
