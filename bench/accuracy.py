"""Accuracy of the quantizer: train small zoo nets on scikit-learn's digits, then compare float and integer.

Digits (8x8, 1797 images) are upsampled bilinearly to 32x32 and split 60/40
(stratified, fixed seed). Each net trains a few CPU minutes (Adam, cosine
schedule, random shifts); then the int8 graph from post-training quantization
(calibrated on 256 training images, min/max and 99.99th percentile) runs on the
golden model, and its argmax is compared with the float net's; then the folded
graph is fine-tuned with int8 fake quantization (``quant.qat``) at the better
calibration's scales and runs on the golden model again.

    python bench/accuracy.py [--models squeezenet1_1,binarynet] [--epochs 15]
"""
import argparse
import sys
import time
from datetime import date

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from quant import golden
from quant.frontend import trace
from quant.ptq import calibrate, quantize, quantize_input
from quant.qat import fine_tune
from quant.zoo import ZOO

DEFAULT_MODELS = {  # name -> (width multiplier, peak learning rate, batch size)
    "squeezenet1_1": (0.5, 3e-3, 64),
    "squeezenext23": (0.5, 1e-2, 128),   # deep and thin: learns slowly at 3e-3
    "mobilenet_v2": (0.5, 3e-3, 64),
    "binarynet": (0.5, 3e-3, 64),
}
OTHER_MODELS = (0.5, 3e-3, 64)
QAT_EPOCHS = 4
QAT_LEARNING_RATE = 1e-4
IMAGE_SIZE = 32
CALIBRATION_IMAGES = 256


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    data = load_digits()
    images = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    images = F.interpolate(images, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    train_x, test_x, train_y, test_y = train_test_split(images, torch.tensor(data.target), test_size=0.4,
                                                        random_state=0, stratify=data.target)
    return train_x, test_x, train_y, test_y


def build(name: str, width: float) -> torch.nn.Module:
    """The zoo net for 10 digit classes; SqueezeNet without dropout and with a positive final-conv bias.

    SqueezeNet has no batch norm and ends in conv -> ReLU -> average pool: trained
    from scratch on 1078 images, every class's ReLU dies within a few epochs
    (loss stuck at ln 10) unless the final biases start positive.
    """
    if name.startswith("squeezenet"):
        model = ZOO[name](width=width, num_classes=10, in_channels=1, dropout=0.0)
        torch.nn.init.constant_(model.classifier[1].bias, 1.0)
        return model
    return ZOO[name](width=width, num_classes=10, in_channels=1)


def shifted(images: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Each image rolled by up to ``max_shift`` pixels (the digits' borders are blank)."""
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
    return torch.roll(images, (dy, dx), dims=(2, 3))


def train(model: torch.nn.Module, images, labels, epochs: int, learning_rate: float, batch_size: int,
          seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps = epochs * -(-len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), batch_size):
            batch = order[start:start + batch_size]
            loss = F.cross_entropy(model(shifted(images[batch], generator)), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()


def golden_predictions(graph, images: torch.Tensor, batch_size: int = 120) -> np.ndarray:
    predictions = []
    for start in range(0, len(images), batch_size):
        x = quantize_input(graph, images[start:start + batch_size].numpy())
        logits = golden.run(graph, x)[graph.output]
        predictions.append(logits.reshape(len(x), -1).argmax(axis=1))
    return np.concatenate(predictions)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help=f"comma-separated zoo names (width, learning rate, batch: {DEFAULT_MODELS}, others {OTHER_MODELS})")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    names = args.models.split(",")
    unknown = [name for name in names if name not in ZOO]
    if unknown:
        parser.error(f"argument --models: unknown model {unknown[0]!r}; allowed: {', '.join(ZOO)}")
    torch.set_num_threads(args.threads)
    train_x, test_x, train_y, test_y = digits()
    test_labels = test_y.numpy()
    print(f"accuracy on load_digits {IMAGE_SIZE}x{IMAGE_SIZE}, {len(train_x)} train / {len(test_x)} test images, "
          f"{args.epochs} epochs, {args.threads} thread(s), {date.today()}")
    print("| model | width | parameters | train s | float % | PTQ min/max % | PTQ percentile % "
          f"| QAT ({QAT_EPOCHS} epochs) % | drop PTQ (pp) | drop QAT (pp) | PTQ predictions equal to float % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for index, name in enumerate(names):
        torch.manual_seed(index)
        width, learning_rate, batch_size = DEFAULT_MODELS.get(name, OTHER_MODELS)
        model = build(name, width)
        started = time.perf_counter()
        train(model, train_x, train_y, args.epochs, learning_rate, batch_size, seed=index)
        train_seconds = time.perf_counter() - started
        with torch.no_grad():
            float_predictions = model(test_x).argmax(1).numpy()
        float_accuracy = 100 * np.mean(float_predictions == test_labels)
        graph = trace(model, (1, IMAGE_SIZE, IMAGE_SIZE))
        ranges = {method: calibrate(graph, train_x[:CALIBRATION_IMAGES], method) for method in ("minmax", "percentile")}
        predictions = {method: golden_predictions(quantize(graph, ranges[method]), test_x) for method in ranges}
        accuracy = {method: 100 * np.mean(p == test_labels) for method, p in predictions.items()}
        best = max(accuracy, key=accuracy.get)
        tuned = fine_tune(graph, ranges[best], train_x, train_y, epochs=QAT_EPOCHS, learning_rate=QAT_LEARNING_RATE,
                          seed=index, augment=shifted)
        qat_accuracy = 100 * np.mean(golden_predictions(quantize(tuned, ranges[best]), test_x) == test_labels)
        agreement = 100 * np.mean(predictions[best] == float_predictions)
        parameters = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {width} | {parameters} | {train_seconds:.0f} | {float_accuracy:.2f} "
              f"| {accuracy['minmax']:.2f} | {accuracy['percentile']:.2f} | {qat_accuracy:.2f} "
              f"| {float_accuracy - accuracy[best]:+.2f} | {float_accuracy - qat_accuracy:+.2f} | {agreement:.2f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
