"""Accuracy of the quantizer: train small zoo nets on scikit-learn's digits, then compare float and integer.

Digits (8x8, 1797 images) are upsampled bilinearly to 32x32 and split 60/40
(stratified, fixed seed). Each net trains a few CPU minutes (Adam, cosine
schedule, random shifts); then the int8 graph from post-training quantization
(calibrated on 256 training images, min/max and 99.99th percentile) runs on the
golden model, and its argmax is compared with the float net's.

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
from quant.ptq import quantize, quantize_input
from quant.zoo import ZOO

DEFAULT_MODELS = {  # name -> width multiplier
    "squeezenet1_1": 0.5,
    "squeezenext23": 0.5,
    "mobilenet_v2": 0.5,
    "binarynet": 0.5,
}
IMAGE_SIZE = 32
CALIBRATION_IMAGES = 256


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    data = load_digits()
    images = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    images = F.interpolate(images, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    train_x, test_x, train_y, test_y = train_test_split(images, torch.tensor(data.target), test_size=0.4,
                                                        random_state=0, stratify=data.target)
    return train_x, test_x, train_y, test_y


def shifted(images: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Each image rolled by up to ``max_shift`` pixels (the digits' borders are blank)."""
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
    return torch.roll(images, (dy, dx), dims=(2, 3))


def train(model: torch.nn.Module, images, labels, epochs: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = epochs * -(-len(images) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), 64):
            batch = order[start:start + 64]
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
                        help=f"comma-separated zoo names (widths: {DEFAULT_MODELS}, others 0.5)")
    parser.add_argument("--epochs", type=int, default=15)
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
    print("| model | width | parameters | train s | float % | int8 PTQ min/max % | int8 PTQ percentile % "
          "| drop (pp, best) | predictions equal to float % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for index, name in enumerate(names):
        torch.manual_seed(index)
        width = DEFAULT_MODELS.get(name, 0.5)
        model = ZOO[name](width=width, num_classes=10, in_channels=1)
        started = time.perf_counter()
        train(model, train_x, train_y, args.epochs, seed=index)
        train_seconds = time.perf_counter() - started
        with torch.no_grad():
            float_predictions = model(test_x).argmax(1).numpy()
        float_accuracy = 100 * np.mean(float_predictions == test_labels)
        graph = trace(model, (1, IMAGE_SIZE, IMAGE_SIZE))
        results = {}
        for method in ("minmax", "percentile"):
            integer = quantize(graph, train_x[:CALIBRATION_IMAGES], method=method)
            results[method] = golden_predictions(integer, test_x)
        accuracy = {method: 100 * np.mean(p == test_labels) for method, p in results.items()}
        best = max(accuracy, key=accuracy.get)
        agreement = 100 * np.mean(results[best] == float_predictions)
        parameters = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {width} | {parameters} | {train_seconds:.0f} | {float_accuracy:.2f} "
              f"| {accuracy['minmax']:.2f} | {accuracy['percentile']:.2f} | {float_accuracy - accuracy[best]:+.2f} "
              f"| {agreement:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
