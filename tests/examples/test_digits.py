"""examples/digits: a CNN trained on scikit-learn's digits and made-up photos, exported to ONNX and
registered; the registered version reads held-out digits, and the served model reads photos it
never saw: digits on paper with margins all round, turned, under uneven light."""

from __future__ import annotations

import importlib.util
import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

import funade
from funade import sdk
from funade.registry.images import ImageInput
from funade.registry.signature import TensorSpec
from funade.serving.app import create_model_app
from funade.serving.config import ServeConfig
from funade.serving.source import load_source
from funade.settings import load_settings
from tests.servers import serve
from tests.serving.fakes import wait_ready

for _needed in ("torch", "onnxscript", "onnxruntime", "sklearn"):
    pytest.importorskip(_needed)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits"
TRAIN = EXAMPLE / "train.py"
MEASURE_SEEDS = (10_007, 10_008, 10_009)
"""Seeds of the made-up photos the served model is measured on: training never uses seeds from
10,000 on (train.TEST_SEEDS)."""
MEASURE_PER_SEED = 100

# torch.onnx's exporter runs torch internals that warn about their own deprecations.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"
)


@dataclass
class Example:
    trained: Any
    home: Path


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    """The example trained once (8 epochs) and registered into a temporary home."""
    home = tmp_path_factory.mktemp("digits") / "home"
    spec = importlib.util.spec_from_file_location("digits_train", TRAIN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "digits_train", module)
        patch.setenv("FUNADE_HOME", str(home))
        spec.loader.exec_module(module)
        try:
            yield Example(module.main(epochs=8), home)
        finally:
            sdk._close_default()


def test_the_registered_model_reads_held_out_digits(
    example: Example, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNADE_HOME", str(example.home))
    trained = example.trained
    try:
        assert trained.version == 1
        assert trained.onnx_accuracy >= 0.9
        model = funade.load_model("digits:1")
        assert model.flavor == "onnx"
        assert model.signature.inputs == [
            TensorSpec(
                name="image",
                datatype="FP32",
                shape=[-1, 1, 8, 8],
                image=ImageInput(
                    input="image", invert=True, autocontrast=True, find=True, margin=0.0
                ),
            )
        ]
        assert [(s.name, s.datatype, s.shape) for s in model.signature.outputs] == [
            ("label", "INT64", [-1]),
            ("probabilities", "FP32", [-1, 10]),
        ]
        assert model.signature.outputs[1].labels == [str(d) for d in range(10)]
        labels = model.predict(trained.x_test)
        assert (labels == trained.y_test).mean() >= 0.9
        assert model.predict(trained.x_test[:1]).shape == (1,)  # any batch size
        probabilities = model.predict(trained.x_test[:3], output="probabilities")
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    finally:
        sdk._close_default()


def paper_photo(digit: np.ndarray, margin: int = 0) -> bytes:
    """A held-out digit as a phone might photograph it: dark ink on light paper, 96x96 pixels
    (plus ``margin`` pixels of paper all round), a little dim, as JPEG."""
    ink = digit.reshape(8, 8).astype(np.float64)
    paper = (220 - ink * 190).astype(np.uint8)
    picture = Image.fromarray(paper, mode="L").resize((96, 96), Image.Resampling.BICUBIC)
    if margin:
        page = Image.new("L", (96 + 2 * margin, 96 + 2 * margin), 220)
        page.paste(picture, (margin, margin))
        picture = page
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def served(example: Example, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The registered model behind a real model server; its URL."""
    monkeypatch.setenv("FUNADE_HOME", str(example.home))
    settings = load_settings()
    config = ServeConfig(source="digits:1")
    app = create_model_app(config, lambda: load_source("digits:1", settings))
    with serve(app) as url:
        wait_ready(url)
        yield url


def read(url: str, photos: list[bytes]) -> np.ndarray:
    """The digits the model server reads in ``photos``, uploaded as a tablet's browser does
    (multipart), 50 at a time (the server takes up to 64)."""
    labels: list[int] = []
    for start in range(0, len(photos), 50):
        chunk = photos[start : start + 50]
        files = [("photo", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(chunk)]
        response = httpx.post(f"{url}/v2/models/digits/infer", files=files, timeout=60)
        assert response.status_code == 200, response.text
        labels += {o["name"]: o for o in response.json()["outputs"]}["label"]["data"]
    return np.asarray(labels)


@pytest.mark.parametrize("margin", [0, 100], ids=["cropped-tight", "margins-all-round"])
def test_the_served_model_reads_photos_of_digits(
    example: Example, served: str, margin: int
) -> None:
    """Photos uploaded to the model server are decoded by the model's image input and read as
    the right digits, cropped tight or (as children take them) with paper all round: the input
    finds the digit, so a 3 with margins is not read as a 4."""
    trained = example.trained
    count = 40
    photos = [paper_photo(x, margin) for x in trained.x_test[:count]]
    labels = read(served, photos)
    accuracy = float((labels == trained.y_test[:count]).mean())
    assert accuracy >= 0.8, accuracy
    single = httpx.post(
        f"{served}/v1/models/digits:predict",
        content=photos[0],
        headers={"content-type": "image/jpeg"},
    )
    assert single.json()["predictions"] == [labels[0]]


def test_the_served_model_reads_made_up_photos_it_never_saw(
    example: Example, served: str, record_property: Callable[[str, object], None]
) -> None:
    """The measure the README reports: 300 made-up photos (``examples/digits/photos.py``: pen
    strokes and a font, margins, turned up to 15°, uneven light, grain, blur, JPEG) from seeds
    training never used, read by the served model: at least 90% right."""
    photos_module = _load("digits_photos", EXAMPLE / "photos.py")
    photos: list[bytes] = []
    truth: list[int] = []
    for seed in MEASURE_SEEDS:
        made, labels = photos_module.photos(MEASURE_PER_SEED, seed)
        photos += made
        truth += labels.tolist()
    read_as = read(served, photos)
    accuracy = float((read_as == np.asarray(truth)).mean())
    record_property("photo_accuracy", accuracy)
    print(f"made-up photos read right: {accuracy:.3f} of {len(photos)}")
    assert accuracy >= 0.9, accuracy


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
