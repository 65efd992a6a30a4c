"""Quantization-aware fine-tuning of a folded float graph: the net learns around its own int8 rounding.

The graph is trained as ``run_float`` executes it, with batch norm already
folded (its statistics frozen, as the hardware sees them), int8 convolution
weights fake-quantized per output channel and every int8 tensor fake-quantized
at the fixed scales of a prior calibration; rounding and signs pass gradients
straight through. Binary layers keep their weight signs (the folded graph holds
only the signs; ``zoo.BinaryConv2d`` trains them with the straight-through
estimator beforehand); their folded scale and bias, which become the thresholds,
are fine-tuned. ``ptq.quantize`` then turns the result
into the integer graph with the same ranges.
"""
import dataclasses

import torch
import torch.nn.functional as F

from hdl.numerics import INT8_MAX, INT8_MIN

from .frontend import FloatConv, FloatGraph, run_float
from .ptq import WEIGHT_MAX, activation_scales

__all__ = ["fake_quantize", "fine_tune"]


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """``clamp(round(x / scale), low, high) * scale`` forward (exactly), identity backward (straight through)."""
    quantized = (torch.clamp(torch.round(x / scale), low, high) * scale).detach()
    return quantized + (x - x.detach())


def fine_tune(graph: FloatGraph, ranges: dict[str, float], images: torch.Tensor, labels: torch.Tensor, *,
              epochs: int = 4, learning_rate: float = 1e-4, batch_size: int = 64, seed: int = 0,
              augment=None) -> FloatGraph:
    """A copy of ``graph`` fine-tuned on ``images`` (NCHW) with int8 fake quantization at ``ranges``' scales.

    ``augment(batch, generator)`` may transform each training batch.
    """
    if epochs < 1 or learning_rate <= 0:
        raise ValueError(f"Fine-tuning needs epochs >= 1 and a positive learning rate, not {epochs}, {learning_rate}")
    scales = {name: torch.tensor(scale) for name, scale in activation_scales(graph, ranges).items()}
    binary = {name for name in graph.shapes if graph.is_binary(name)}
    parameters = {}
    for node in graph.nodes:
        if isinstance(node, FloatConv):
            if node.binary:
                weight, channel_scale = torch.tensor(node.weight), torch.tensor(node.channel_scale).requires_grad_()
            else:
                weight = torch.tensor(node.weight * node.channel_scale[:, None, None, None]).requires_grad_()
                channel_scale = torch.ones(len(node.weight))
            parameters[node.name] = (weight, channel_scale, torch.tensor(node.bias).float().requires_grad_())
    trainable = [p for group in parameters.values() for p in group if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)

    def quantized_parameters():
        result = {}
        for node in graph.nodes:
            if isinstance(node, FloatConv):
                weight, channel_scale, bias = parameters[node.name]
                if not node.binary:
                    step = weight.detach().abs().flatten(1).amax(1).clamp_min(1e-12) / WEIGHT_MAX
                    weight = fake_quantize(weight, step.view(-1, 1, 1, 1), -WEIGHT_MAX, WEIGHT_MAX)
                result[node.name] = (weight, channel_scale, bias)
        return result

    def on_tensor(name, value):
        return value if name in binary else fake_quantize(value, scales[name], INT8_MIN, INT8_MAX)

    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), batch_size):
            batch = order[start:start + batch_size]
            x = augment(images[batch], generator) if augment else images[batch]
            logits = run_float(graph, x, quantized_parameters(), on_tensor)[graph.output].flatten(1)
            loss = F.cross_entropy(logits, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    nodes = [dataclasses.replace(node, weight=parameters[node.name][0].detach().numpy().copy(),
                                 channel_scale=parameters[node.name][1].detach().numpy().copy(),
                                 bias=parameters[node.name][2].detach().numpy().copy())
             if isinstance(node, FloatConv) else node for node in graph.nodes]
    return FloatGraph(nodes, dict(graph.shapes), graph.input, graph.output)
