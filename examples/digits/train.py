"""Train a small CNN on scikit-learn's 8x8 digits and on made-up photos of digits, export it to
ONNX, check it with onnxruntime, and register it with funade as the model "digits".

    pip install torch --index-url https://download.pytorch.org/whl/cpu
    pip install 'funade[torch,onnx,sklearn,images]'
    python examples/digits/train.py [--epochs 12]

Nothing is downloaded: ``load_digits`` ships with scikit-learn, and the photos are drawn by
``photos.py`` (next to this file) from a seed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import funade
from funade.registry.images import decode_images

sys.path.insert(0, str(Path(__file__).resolve().parent))
import photos  # noqa: E402  (photos.py, next to this file)

EPOCHS = 12
BATCH = 64
PHOTOS = 2000
"""Made-up photos added to the training digits (and a fifth as many held out)."""
TEST_SEEDS = 10_000
"""Photo seeds from here on are never used for training: the measures in the tests use them."""

# How the model server turns a photo into the model's input: dark ink on paper inverted to a
# light digit on black, as in training; the digit found (what stands out from the paper), cropped
# square around it, edge to edge (as the training digits fill their 8 rows) and centred; contrast stretched; shrunk
# to 8x8 and scaled to [0, 1]. Children's photos have paper all round the digit: without finding
# it, the digit is a small blot in the middle of 8x8 pixels.
IMAGE = funade.ImageInput(invert=True, autocontrast=True, find=True, margin=0.0)


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
    photo_accuracy: float
    """Its accuracy on held-out made-up photos, decoded as the model server decodes them."""
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


def photo_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` made-up photos of digits (``photos.py``) decoded as the model server decodes
    them (``IMAGE``), and their labels."""
    if seed >= TEST_SEEDS:
        raise ValueError(f"photo seed {seed}: seeds from {TEST_SEEDS} on are kept for the tests")
    jpegs, labels = photos.photos(count, seed)
    return decode(jpegs), labels


def decode(jpegs: list[bytes]) -> np.ndarray:
    """Photos as the model's input, float32 (n, 1, 8, 8), exactly as the model server makes it."""
    return decode_images(jpegs, IMAGE, "image", "FP32", [-1, 1, 8, 8])


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


def main(epochs: int = EPOCHS, seed: int = 0, n_photos: int = PHOTOS) -> Trained:
    x_train, x_test, y_train, y_test = digits(seed)
    # Photo seeds 2 * seed (training) and 2 * seed + 1 (held out): never the tests' seeds.
    x_photos, y_photos = photo_digits(n_photos, 2 * seed)
    x_held, y_held = photo_digits(max(10, n_photos // 5), 2 * seed + 1)
    cnn = fit(
        np.concatenate([x_train, x_photos]),
        np.concatenate([y_train, y_photos]),
        epochs=epochs,
        seed=seed,
    )
    model = to_onnx(cnn, x_test[:2])
    accuracy = onnx_accuracy(model, x_test, y_test)
    photo_accuracy = onnx_accuracy(model, x_held, y_held)
    version = funade.log_model(
        model,
        "digits",
        sample_input=x_test[:5],
        image=IMAGE,
        # The class of each of the ten probabilities, which answers and the try-it page name.
        labels=[str(digit) for digit in range(10)],
        params={"epochs": epochs, "batch_size": BATCH, "seed": seed, "photos": n_photos},
        metrics={"accuracy": accuracy, "photo_accuracy": photo_accuracy},
        datasets={"train": x_train, "photos": x_photos},
        tags={"example": "digits"},
    )
    return Trained(version.version, accuracy, photo_accuracy, x_test, y_test)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", type=int, default=PHOTOS)
    args = parser.parse_args()
    trained = main(args.epochs, args.seed, args.photos)
    print(
        f"Registered digits:{trained.version} "
        f"(ONNX accuracy on {len(trained.y_test)} held-out digits: {trained.onnx_accuracy:.3f}, "
        f"on held-out made-up photos: {trained.photo_accuracy:.3f})"
    )
