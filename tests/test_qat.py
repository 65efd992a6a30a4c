import numpy as np
import pytest
import torch
import torch.nn.functional as F

from quant import golden
from quant.frontend import FloatConv, run_float, trace
from quant.ptq import calibrate, quantize, quantize_input
from quant.qat import fake_quantize, fine_tune
from quant.zoo import ZOO


def test_fake_quantize_rounds_forward_and_passes_gradients_straight_through():
    x = torch.tensor([-300.0, -1.26, 0.2, 0.26, 1.0, 300.0], requires_grad=True)
    y = fake_quantize(x, torch.tensor(0.5), -128, 127)
    assert y.tolist() == [-64.0, -1.5, 0.0, 0.5, 1.0, 63.5]
    y.sum().backward()
    assert x.grad.tolist() == [1.0] * 6


@pytest.mark.parametrize("name", ["binarynet", "mobilenet_v2"])
def test_fine_tuning_lowers_the_quantized_loss_and_stays_quantizable(name, seed):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = ZOO[name](width=0.25, num_classes=4, in_channels=1).eval()
    images = torch.rand(32, 1, 16, 16, generator=generator)
    labels = torch.randint(0, 4, (32,), generator=generator)
    graph = trace(model, (1, 16, 16))
    ranges = calibrate(graph, images)

    def integer_loss(float_graph):
        integer = quantize(float_graph, ranges)
        logits = golden.run(integer, quantize_input(integer, images.numpy()))[integer.output]
        scaled = torch.tensor(logits.reshape(32, -1) * integer.tensors[integer.output].scale, dtype=torch.float32)
        return F.cross_entropy(scaled, labels).item()

    tuned = fine_tune(graph, ranges, images, labels, epochs=4, learning_rate=3e-3, batch_size=32, seed=seed)
    assert integer_loss(tuned) < integer_loss(graph)
    assert [type(n) for n in tuned.nodes] == [type(n) for n in graph.nodes]
    before = [n for n in graph.nodes if isinstance(n, FloatConv)]
    after = [n for n in tuned.nodes if isinstance(n, FloatConv)]
    for old, new in zip(before, after):
        if old.binary:
            np.testing.assert_array_equal(new.weight, old.weight)   # the signs stay; scales and thresholds move
    assert run_float(tuned, images)[tuned.output].shape == (32, 4, 1, 1)


def test_fine_tune_rejects_bad_settings():
    graph = trace(ZOO["binarynet"](width=0.25, num_classes=4, in_channels=1), (1, 32, 32))
    with pytest.raises(ValueError, match="Fine-tuning needs epochs >= 1 and a positive learning rate, not 0, 0.001"):
        fine_tune(graph, {}, torch.zeros(1, 1, 32, 32), torch.zeros(1, dtype=torch.long), epochs=0,
                  learning_rate=1e-3)
