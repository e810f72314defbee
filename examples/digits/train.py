"""Train a small CNN on scikit-learn's 8x8 digits, export it to ONNX, check it with
onnxruntime, and register it with funade as the model "digits".

    pip install 'funade[torch,onnx,sklearn]'
    python examples/digits/train.py [--epochs 12]

Nothing is downloaded: ``load_digits`` ships with scikit-learn.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import funade

EPOCHS = 12
BATCH = 64


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions (8x8 → 4x4 → 2x2), then a linear layer over the ten digits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classify = nn.Sequential(nn.Flatten(), nn.Linear(32 * 2 * 2, 10))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classify(self.features(image))
        return logits


class Served(nn.Module):
    """What is exported: the digit and the probability of each, rather than raw logits."""

    def __init__(self, cnn: DigitsCNN) -> None:
        super().__init__()
        self.cnn = cnn

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probabilities = torch.softmax(self.cnn(image), dim=1)
        return probabilities.argmax(dim=1), probabilities


@dataclass
class Trained:
    version: int
    """The version of "digits" that was registered."""
    onnx_accuracy: float
    """The ONNX model's accuracy on the held-out digits, run by onnxruntime."""
    x_test: np.ndarray
    """The held-out images: float32, shape (n, 1, 8, 8), values in [0, 1]."""
    y_test: np.ndarray


def digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test images as float32 (n, 1, 8, 8) in [0, 1], and their labels."""
    bunch = load_digits()
    images = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    split: list[Any] = train_test_split(
        images, bunch.target, test_size=0.2, stratify=bunch.target, random_state=seed
    )
    x_train, x_test, y_train, y_test = split
    return x_train, x_test, y_train, y_test


def fit(x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int) -> DigitsCNN:
    torch.manual_seed(seed)
    cnn = DigitsCNN()
    optimizer = torch.optim.Adam(cnn.parameters(), lr=0.01)
    images, labels = torch.from_numpy(x), torch.from_numpy(y)
    cnn.train()
    for _ in range(epochs):
        order = torch.randperm(len(images))
        for start in range(0, len(images), BATCH):
            batch = order[start : start + BATCH]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(cnn(images[batch]), labels[batch])
            loss.backward()
            optimizer.step()
    return cnn.eval()


def to_onnx(cnn: DigitsCNN, example: np.ndarray) -> Any:
    """The served model as an ``onnx.ModelProto`` (opset 18, any batch size)."""
    program = torch.onnx.export(
        Served(cnn).eval(),
        (torch.from_numpy(example),),
        dynamo=True,
        opset_version=18,
        input_names=["image"],
        output_names=["label", "probabilities"],
        dynamic_shapes={"image": {0: torch.export.Dim("batch")}},
        verbose=False,
    )
    return program.model_proto


def onnx_accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    labels, _ = session.run(["label", "probabilities"], {"image": x})
    return float((labels == y).mean())


def main(epochs: int = EPOCHS, seed: int = 0) -> Trained:
    x_train, x_test, y_train, y_test = digits(seed)
    cnn = fit(x_train, y_train, epochs=epochs, seed=seed)
    model = to_onnx(cnn, x_test[:2])
    accuracy = onnx_accuracy(model, x_test, y_test)
    version = funade.log_model(
        model,
        "digits",
        sample_input=x_test[:5],
        # Photos of a digit written in dark ink on paper: inverted to a light digit on black, as
        # in training, contrast stretched, cropped square and shrunk to 8x8, scaled to [0, 1].
        image=funade.ImageInput(invert=True, autocontrast=True),
        # The class of each of the ten probabilities, which answers and the try-it page name.
        labels=[str(digit) for digit in range(10)],
        params={"epochs": epochs, "batch_size": BATCH, "seed": seed},
        metrics={"accuracy": accuracy},
        datasets={"train": x_train},
        tags={"example": "digits"},
    )
    return Trained(version.version, accuracy, x_test, y_test)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    trained = main(args.epochs, args.seed)
    print(
        f"Registered digits:{trained.version} "
        f"(ONNX accuracy on {len(trained.y_test)} held-out digits: {trained.onnx_accuracy:.3f})"
    )
