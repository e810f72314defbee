"""Photos sent to the model server: raw image bodies and multipart uploads, v2 and v1."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from funade.registry.images import ImageInput
from tests.serving.fakes import loaded, package, running
from tests.serving.models import Arithmetic, Brightness


def png(value: int, kind: str = "PNG", size: tuple[int, int] = (32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, value).save(buffer, kind)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def brightness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sample = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    return package(Brightness(), tmp_path_factory.mktemp("b") / "p", sample, image=ImageInput())


@pytest.fixture
def server(brightness: Path) -> Any:
    with running(loaded(brightness, name="bright")) as (url, _):
        yield url


@pytest.mark.parametrize(("kind", "media_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_a_raw_photo_body_is_one_prediction(server: str, kind: str, media_type: str) -> None:
    response = httpx.post(
        f"{server}/v2/models/bright/infer",
        content=png(255, kind),
        headers={"content-type": media_type},
    )
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output["shape"] == [1]
    assert output["data"][0] == pytest.approx(1.0, abs=0.01)


def test_a_multipart_upload_of_several_photos_is_a_batch_in_order(server: str) -> None:
    files = [
        ("photo", ("a.png", png(0), "image/png")),
        ("photo", ("b.jpg", png(255, "JPEG"), "image/jpeg")),
    ]
    response = httpx.post(f"{server}/v2/models/bright/infer", files=files, data={"note": "x"})
    assert response.status_code == 200, response.text
    data = response.json()["outputs"][0]["data"]
    assert data == pytest.approx([0.0, 1.0], abs=0.01)


def test_v1_predict_takes_photos_too(server: str) -> None:
    response = httpx.post(
        f"{server}/v1/models/bright:predict",
        files={"image": ("p.png", png(255), "image/png")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [pytest.approx(1.0, abs=0.01)]


def test_bytes_that_are_no_image_are_400_naming_the_file(server: str) -> None:
    files = [("a", ("a.png", png(0), "image/png")), ("b", ("b.png", b"garbage", "image/png"))]
    response = httpx.post(f"{server}/v2/models/bright/infer", files=files)
    assert response.status_code == 400
    assert response.json()["error"].startswith("Image 1 (7 bytes) could not be read as an image")
    assert response.json()["field"] == "images[1]"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": {"note": "no file"}, "files": {}}, "The multipart upload has no file."),
        ({"content": b"", "headers": {"content-type": "image/png"}}, "The image body is empty."),
    ],
)
def test_an_upload_without_a_photo_is_400(
    server: str, kwargs: dict[str, Any], message: str
) -> None:
    if "files" in kwargs:  # a multipart body with only a text field
        kwargs = {"files": {"note": (None, "no file")}}
    response = httpx.post(f"{server}/v2/models/bright/infer", **kwargs)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


def test_a_malformed_multipart_body_is_400(server: str) -> None:
    response = httpx.post(
        f"{server}/v2/models/bright/infer",
        content=b"--zzz\r\nContent-Disposition: form-data\r\n\r\nx",
        headers={"content-type": "multipart/form-data"},
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("The multipart upload could not be read")


def test_a_model_with_inputs_besides_the_image_cannot_take_an_upload(tmp_path: Path) -> None:
    sample = {"x": np.zeros((2, 2)), "photo": np.zeros((2, 1, 8, 8))}
    directory = package(Arithmetic(), tmp_path / "p", sample, image=ImageInput(input="photo"))
    with running(loaded(directory)) as (url, _):
        response = httpx.post(
            f"{url}/v2/models/calc/infer", content=png(9), headers={"content-type": "image/png"}
        )
    assert response.status_code == 400
    assert response.json()["error"].startswith(
        "Model 'calc' takes inputs besides the image (x), which an image upload cannot carry."
    )
