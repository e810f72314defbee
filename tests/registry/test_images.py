"""Image inputs: photos decoded into the tensor an input takes, and the checks at registration."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from funade.errors import InvalidInputError
from funade.registry.images import MAX_PIXELS, ImageInput, decode_images, image_layout
from funade.registry.package import build_package, load_package
from tests.serving.models import Arithmetic, Brightness


def encode(picture: Image.Image, kind: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, kind, **options)
    return buffer.getvalue()


def gradient(width: int = 16, height: int = 8) -> Image.Image:
    """A grayscale image whose columns go from black (left) to white (right)."""
    row = np.linspace(0, 255, width).astype(np.uint8)
    return Image.fromarray(np.tile(row, (height, 1)), mode="L")


@pytest.mark.parametrize(
    ("shape", "channels", "first", "axis"),
    [
        ([-1, 1, 8, 6], 1, True, True),
        ([-1, 3, 8, 6], 3, True, True),
        ([-1, 8, 6, 3], 3, False, True),
        ([-1, 8, 6], 1, True, False),
    ],
)
def test_the_layout_comes_from_the_shape(
    shape: list[int], channels: int, first: bool, axis: bool
) -> None:
    layout = image_layout("image", "FP32", shape)
    assert (layout.channels, layout.height, layout.width) == (channels, 8, 6)
    assert (layout.channels_first, layout.channel_axis) == (first, axis)


@pytest.mark.parametrize(
    ("datatype", "shape", "message"),
    [
        ("FP32", [-1, 20], "Input 'image' has shape [-1, 20], which is not an image's."),
        ("FP32", [-1, 2, 8, 8], "Input 'image' has shape [-1, 2, 8, 8], which is not an image's."),
        (
            "FP32",
            [-1, 1, -1, 8],
            "Input 'image' has shape [-1, 1, -1, 8], which is not an image's.",
        ),
        ("BYTES", [-1, 8, 8], "Input 'image' has datatype BYTES; an image input must be numeric."),
    ],
)
def test_inputs_that_are_not_images_are_refused(
    datatype: str, shape: list[int], message: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        image_layout("image", datatype, shape)
    assert caught.value.message == message
    assert caught.value.field == "image.input"


def test_grayscale_channels_first_scaled_to_unit_range() -> None:
    batch = decode_images([encode(gradient(8, 8))], ImageInput(), "image", "FP32", [-1, 1, 8, 8])
    assert batch.shape == (1, 1, 8, 8)
    assert batch.dtype == np.float32
    assert batch[0, 0, 0, 0] == pytest.approx(0.0, abs=0.01)
    assert batch[0, 0, 0, -1] == pytest.approx(1.0, abs=0.01)
    assert (np.diff(batch[0, 0, 0]) > 0).all()  # left to right, darker to lighter


def test_rgb_channels_last_uint8_keeps_pixel_values() -> None:
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    batch = decode_images([encode(red)], ImageInput(scale=1), "image", "UINT8", [-1, 4, 4, 3])
    assert batch.shape == (1, 4, 4, 3)
    assert batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[0, 0, 0], [255, 0, 0])


def test_several_photos_make_one_batch_in_order() -> None:
    black, white = Image.new("L", (5, 5), 0), Image.new("L", (5, 5), 255)
    batch = decode_images(
        [encode(black), encode(white, "JPEG")], ImageInput(), "image", "FP64", [-1, 5, 5]
    )
    assert batch.shape == (2, 5, 5)
    assert batch[0].max() == pytest.approx(0, abs=0.02)
    assert batch[1].min() == pytest.approx(1, abs=0.02)


def test_invert_autocontrast_and_normalization() -> None:
    dim = Image.fromarray(np.array([[100, 150]], dtype=np.uint8), mode="L")
    plain = decode_images(
        [encode(dim)], ImageInput(scale=1, resize="stretch"), "i", "FP32", [-1, 1, 2]
    )
    np.testing.assert_allclose(plain[0], [[100, 150]])
    inverted = decode_images(
        [encode(dim)], ImageInput(scale=1, invert=True, resize="stretch"), "i", "FP32", [-1, 1, 2]
    )
    np.testing.assert_allclose(inverted[0], [[155, 105]])
    stretched = decode_images(
        [encode(dim)], ImageInput(autocontrast=True, resize="stretch"), "i", "FP32", [-1, 1, 2]
    )
    np.testing.assert_allclose(stretched[0], [[0, 1]])
    normalized = decode_images(
        [encode(dim)],
        ImageInput(scale=1, offset=-100, mean=[25], std=[25], resize="stretch"),
        "i",
        "FP32",
        [-1, 1, 2],
    )
    np.testing.assert_allclose(normalized[0], [[-1, 1]])


def test_crop_keeps_the_centre_and_stretch_keeps_everything() -> None:
    """A wide image: black left third, white middle, black right third."""
    pixels = np.zeros((10, 30), dtype=np.uint8)
    pixels[:, 10:20] = 255
    wide = encode(Image.fromarray(pixels, mode="L"))
    cropped = decode_images([wide], ImageInput(), "i", "FP32", [-1, 10, 10])
    assert cropped.min() > 0.9  # only the white centre is left
    stretched = decode_images([wide], ImageInput(resize="stretch"), "i", "FP32", [-1, 10, 10])
    assert stretched[0, :, 0].max() < 0.1
    assert stretched[0, :, 5].min() > 0.9


def test_transparency_is_flattened_onto_white() -> None:
    clear = Image.new("RGBA", (3, 3), (0, 0, 0, 0))
    batch = decode_images([encode(clear)], ImageInput(), "i", "FP32", [-1, 3, 3])
    np.testing.assert_allclose(batch, 1.0)


def test_exif_orientation_is_applied() -> None:
    """A phone photo stored sideways with orientation 6 (rotate 90 degrees clockwise to view)."""
    stored = np.zeros((4, 8), dtype=np.uint8)
    stored[:, :4] = 255  # the stored left half is white
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(stored, mode="L"), "JPEG", exif=exif, quality=100)
    upright = decode_images([data], ImageInput(resize="stretch"), "i", "FP32", [-1, 8, 4])
    assert upright.shape == (1, 8, 4)
    assert upright[0, :4].mean() > 0.9  # the white half is now on top
    assert upright[0, 4:].mean() < 0.1


def test_bytes_that_are_not_an_image_are_refused_by_index() -> None:
    good = encode(gradient())
    with pytest.raises(InvalidInputError) as caught:
        decode_images([good, b"not an image"], ImageInput(), "i", "FP32", [-1, 8, 8])
    assert caught.value.message.startswith(
        "Image 1 (12 bytes) could not be read as an image: UnidentifiedImageError"
    )
    assert caught.value.field == "images[1]"
    assert caught.value.fix == "Send a JPEG, PNG, WebP, GIF or BMP file."


def test_images_over_the_pixel_limit_are_refused_before_decoding() -> None:
    side = int(MAX_PIXELS**0.5) + 10
    huge = encode(Image.new("1", (side, side)), "PNG")  # 1-bit: a small file
    with pytest.raises(InvalidInputError) as caught:
        decode_images([huge], ImageInput(), "i", "FP32", [-1, 8, 8])
    assert caught.value.message == (f"Image 0 has {side}x{side} pixels, more than {MAX_PIXELS:,}.")


def test_registering_an_image_model_records_the_image_input(tmp_path: Path) -> None:
    sample = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    image = ImageInput(invert=True)
    manifest, _ = build_package(Brightness(), tmp_path / "p", sample_input=sample, image=image)
    spec = manifest.signature.inputs[0]
    assert spec.image == ImageInput(input="input", invert=True)
    assert load_package(tmp_path / "p").signature.inputs[0].image == spec.image


@pytest.mark.parametrize(
    ("image", "sample", "message", "field"),
    [
        (
            ImageInput(input="photo"),
            np.zeros((2, 1, 8, 8), dtype=np.float32),
            "The model has no input 'photo' to take images.",
            "image.input",
        ),
        (
            ImageInput(),
            np.zeros((2, 20)),
            "Input 'input' has shape [-1, 20], which is not an image's.",
            "image.input",
        ),
        (
            ImageInput(mean=[0.5, 0.5, 0.5], std=[0.2, 0.2, 0.2]),
            np.zeros((2, 1, 8, 8), dtype=np.float32),
            "image.mean has 3 values, but input 'input' has 1 channel(s).",
            "image.mean",
        ),
    ],
)
def test_an_image_input_that_does_not_fit_is_refused_at_registration(
    tmp_path: Path, image: ImageInput, sample: np.ndarray, message: str, field: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        build_package(Brightness(), tmp_path / "p", sample_input=sample, image=image)
    assert caught.value.message == message
    assert caught.value.field == field


def test_a_model_with_several_inputs_must_say_which_takes_images(tmp_path: Path) -> None:
    sample = {"x": np.zeros((2, 2)), "photo": np.zeros((2, 1, 8, 8))}
    with pytest.raises(InvalidInputError) as caught:
        build_package(Arithmetic(), tmp_path / "p", sample_input=sample, image=ImageInput())
    assert caught.value.message == (
        "The model takes 2 inputs (x, photo); say which one takes images."
    )
    assert caught.value.fix == "Pass ImageInput(input=...) with one of ['x', 'photo']."
    manifest, _ = build_package(
        Arithmetic(), tmp_path / "q", sample_input=sample, image=ImageInput(input="photo")
    )
    assert [s.image is not None for s in manifest.signature.inputs] == [False, True]


def test_a_zero_std_is_refused() -> None:
    with pytest.raises(ValueError, match="std must not contain 0"):
        ImageInput(std=[0.0])


def paper(size: int = 200, light: float = 0.0) -> np.ndarray:
    """Grey paper (200), ``light`` levels brighter at the right edge than the left."""
    return 200 + np.tile(np.linspace(-light / 2, light / 2, size), (size, 1))


def test_find_crops_a_square_around_the_subject_and_centres_it() -> None:
    """A dark 20x40 bar in the top left corner of a large page, under uneven light: found,
    cropped with a tenth of its size on each side, centred, and the margin padded with paper."""
    page = paper(light=60)
    page[10:50, 20:40] = 30
    photo = encode(Image.fromarray(page.astype(np.uint8), mode="L"))
    found = decode_images(
        [photo], ImageInput(find=True, margin=0.1, scale=1), "i", "FP32", [-1, 12, 12]
    )[0]
    # 40 tall x 20 wide in a 48 square, at 12x12: rows 1-11 and columns 3.5-8.5 are the bar.
    dark = found < 100
    rows, columns = np.nonzero(dark)
    assert (rows.min(), rows.max()) == (1, 10)
    assert (columns.min(), columns.max()) == (4, 7)
    assert found[0, 0] > 150  # paper all round, not black padding
    centre_only = decode_images([photo], ImageInput(scale=1), "i", "FP32", [-1, 12, 12])[0]
    assert (centre_only < 100).sum() < dark.sum() / 2, "without find the bar is a speck"


def test_find_without_a_subject_keeps_the_whole_photo() -> None:
    photo = encode(Image.fromarray(paper(light=20).astype(np.uint8), mode="L"))
    with_find = decode_images([photo], ImageInput(find=True), "i", "FP32", [-1, 8, 8])
    without = decode_images([photo], ImageInput(), "i", "FP32", [-1, 8, 8])
    np.testing.assert_allclose(with_find, without)


def test_find_pads_an_rgb_photo_with_its_paper_colour() -> None:
    page = np.zeros((120, 120, 3), dtype=np.uint8)
    page[:] = (230, 220, 180)
    page[100:118, 2:20] = (10, 10, 10)  # a subject at the corner: the crop runs off the photo
    photo = encode(Image.fromarray(page, mode="RGB"))
    found = decode_images(
        [photo], ImageInput(find=True, margin=0.5, scale=1), "i", "UINT8", [-1, 9, 9, 3]
    )
    np.testing.assert_allclose(found[0, 0, 0], (230, 220, 180), atol=3)
    assert found[0, 4, 4].max() < 40, found[0, 4, 4]  # the subject in the middle


@pytest.mark.parametrize(
    ("margin", "says"),
    [(-0.1, "margin\n.*greater than or equal to 0"), (1.5, "margin\n.*less than or equal to 1")],
)
def test_a_margin_outside_0_to_1_is_refused(margin: float, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        ImageInput(find=True, margin=margin)
