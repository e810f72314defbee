"""Image inputs: how a photo (JPEG, PNG, WebP...) becomes the tensor a model takes.

A model opts in when it is registered: ``funade.log_model(..., image=ImageInput(...))`` records
an ``ImageInput`` on one input of its signature. The input's shape says the rest:
``[-1, C, H, W]`` (channels first) or ``[-1, H, W, C]`` (channels last) with C = 1 (grayscale)
or 3 (RGB), or ``[-1, H, W]`` (grayscale); H and W must be fixed sizes.

Decoding (Pillow, the ``images`` extra) turns the photo upright from its EXIF orientation (phones
store photos sideways), flattens transparency onto white, converts to grayscale or RGB, can
invert it (dark ink on paper → a light digit on black) and stretch its contrast, crops it to the
input's aspect ratio around the centre (or stretches it) and resizes it, then maps each pixel
value p (0-255) to ``(p * scale + offset - mean[c]) / std[c]`` in the input's datatype.

With ``find=True`` it first finds the subject (a digit, a letter, a drawn shape: what stands out
from the background) and crops a square around it, centred, with ``margin`` of its size on each
side, padding with the background where the photo ends: a photo taken from arm's length, with
paper all round the subject, is then read as if cropped tight. The background is a smooth
surface fitted to the photo's border (so uneven light across the page is not taken for ink).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from funade.errors import InvalidInputError
from funade.registry.tensors import numpy_dtype

__all__ = ["ImageInput", "ImageLayout", "decode_images", "image_layout"]

MAX_PIXELS = 40_000_000
"""Larger images (over 40 megapixels, bigger than any phone photo) are refused before decoding."""

_NUMERIC = ("UINT8", "UINT16", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64")


class ImageInput(BaseModel):
    """How the model server turns an uploaded photo into an image input of the model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: str | None = Field(
        default=None,
        description="The input that takes the image (default: the model's only input).",
    )
    resize: Literal["crop", "stretch"] = Field(
        default="crop",
        description="'crop': cut the photo to the input's aspect ratio around its centre, then "
        "resize; 'stretch': resize the whole photo, distorting it.",
    )
    invert: bool = Field(
        default=False, description="Invert the image (for models trained on light-on-dark)."
    )
    autocontrast: bool = Field(
        default=False,
        description="Stretch the histogram so the darkest pixel is 0 and the lightest 255.",
    )
    find: bool = Field(
        default=False,
        description="Find the subject (what stands out from the background), crop a square "
        "around it and centre it, before resizing: for one small subject in a larger photo.",
    )
    margin: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="With find: the room left around the subject, as a fraction of its size.",
    )
    scale: float = Field(default=1 / 255, description="Pixel value (0-255) multiplier.")
    offset: float = Field(default=0.0, description="Added after scaling.")
    mean: list[float] | None = Field(
        default=None, description="Subtracted per channel after scale and offset."
    )
    std: list[float] | None = Field(
        default=None, description="Divides per channel after the mean is subtracted."
    )

    @model_validator(mode="after")
    def _normalization(self) -> Self:
        if self.std is not None and any(s == 0 for s in self.std):
            raise ValueError("std must not contain 0")
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise ValueError("mean and std need one value per channel each")
        return self


class ImageLayout(BaseModel):
    """Where an image input's channels, height and width are (derived from its shape)."""

    model_config = ConfigDict(frozen=True)

    channels: Literal[1, 3]
    height: int
    width: int
    channels_first: bool
    channel_axis: bool
    """False for ``[-1, H, W]``: grayscale without a channel axis."""


def image_layout(name: str, datatype: str, shape: Sequence[int]) -> ImageLayout:
    """The layout of an image input, or ``InvalidInputError`` if its shape is not an image's."""
    fix = (
        "Give the image input a shape [-1, C, H, W], [-1, H, W, C] (C = 1 or 3) or [-1, H, W], "
        "with fixed H and W."
    )
    if datatype not in _NUMERIC:
        raise InvalidInputError(
            f"Input {name!r} has datatype {datatype}; an image input must be numeric.",
            field="image.input",
            value=name,
            fix="Choose a numeric input for the image (e.g. FP32).",
        )
    dims = list(shape)[1:]
    layout = None
    if len(dims) == 2:
        layout = ImageLayout(
            channels=1, height=dims[0], width=dims[1], channels_first=True, channel_axis=False
        )
    elif len(dims) == 3 and dims[0] in (1, 3):
        layout = ImageLayout(
            channels=dims[0], height=dims[1], width=dims[2], channels_first=True, channel_axis=True
        )
    elif len(dims) == 3 and dims[2] in (1, 3):
        layout = ImageLayout(
            channels=dims[2], height=dims[0], width=dims[1], channels_first=False, channel_axis=True
        )
    if layout is None or layout.height <= 0 or layout.width <= 0:
        raise InvalidInputError(
            f"Input {name!r} has shape {list(shape)}, which is not an image's.",
            field="image.input",
            value=list(shape),
            fix=fix,
        )
    return layout


def check_image_input(image: ImageInput, name: str, datatype: str, shape: Sequence[int]) -> None:
    """Refuse an ``ImageInput`` that does not fit the input it is recorded on."""
    layout = image_layout(name, datatype, shape)
    for field, values in (("mean", image.mean), ("std", image.std)):
        if values is not None and len(values) != layout.channels:
            raise InvalidInputError(
                f"image.{field} has {len(values)} values, but input {name!r} has "
                f"{layout.channels} channel(s).",
                field=f"image.{field}",
                value=values,
                fix=f"Give one {field} value per channel ({layout.channels}).",
            )


def decode_images(
    images: Sequence[bytes], image: ImageInput, name: str, datatype: str, shape: Sequence[int]
) -> npt.NDArray[Any]:
    """Decode photos into one batch for the input ``name`` (``datatype`` and ``shape``)."""
    from funade.registry.flavors.base import require  # lazy: flavors import this module

    pil = require("PIL.Image", extra="images", needed_by="Decoding image inputs")
    ops = require("PIL.ImageOps", extra="images", needed_by="Decoding image inputs")
    layout = image_layout(name, datatype, shape)
    rows = [_decode_one(pil, ops, data, index, image, layout) for index, data in enumerate(images)]
    batch = np.stack(rows).astype(np.float64) * image.scale + image.offset
    if layout.channels == 1:
        batch = batch[..., np.newaxis]  # (n, H, W, 1)
    if image.mean is not None:
        batch = batch - np.asarray(image.mean)
    if image.std is not None:
        batch = batch / np.asarray(image.std)
    if layout.channels_first:
        batch = np.moveaxis(batch, -1, 1)  # (n, C, H, W)
    if not layout.channel_axis:
        batch = batch[:, 0]
    dtype = numpy_dtype(datatype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        batch = np.clip(np.rint(batch), info.min, info.max)
    return np.ascontiguousarray(batch.astype(dtype))


def _decode_one(
    pil: Any, ops: Any, data: bytes, index: int, image: ImageInput, layout: ImageLayout
) -> npt.NDArray[Any]:
    where = f"images[{index}]"
    try:
        with pil.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise InvalidInputError(
                    f"Image {index} has {opened.width}x{opened.height} pixels, more than "
                    f"{MAX_PIXELS:,}.",
                    field=where,
                    value=f"{opened.width}x{opened.height}",
                    fix="Send a smaller photo.",
                )
            picture = ops.exif_transpose(opened)
            picture.load()
    except InvalidInputError:
        raise
    except Exception as exc:  # Pillow raises many kinds for bad bytes
        raise InvalidInputError(
            f"Image {index} ({len(data)} bytes) could not be read as an image: "
            f"{type(exc).__name__}: {exc}",
            field=where,
            value=data[:16].hex(),
            fix="Send a JPEG, PNG, WebP, GIF or BMP file.",
        ) from None
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        white = pil.new("RGBA", picture.size, (255, 255, 255, 255))
        picture = pil.alpha_composite(white, picture.convert("RGBA"))
    picture = picture.convert("L" if layout.channels == 1 else "RGB")
    if image.invert:
        picture = ops.invert(picture)
    if image.find:
        picture = _find_subject(pil, picture, image.margin)
    if image.autocontrast:  # after finding: the subject's darkest and lightest, not the room's
        picture = ops.autocontrast(picture)
    size = (layout.width, layout.height)
    resample = pil.Resampling.LANCZOS
    if image.resize == "crop":
        picture = ops.fit(picture, size, method=resample)
    else:
        picture = picture.resize(size, resample=resample)
    return np.asarray(picture)


FIND_SIDE = 160
"""The subject is looked for on a copy of the photo this many pixels on its longer side."""
MAX_SQUARE = 2048
"""The square cut around the subject is at most this many pixels wide (the photo is shrunk
first when it would be wider): padding a long strip's subject to a square, with margins, could
otherwise ask for gigapixels."""


def _find_subject(pil: Any, picture: Any, margin: float) -> Any:
    """A square of ``picture`` around its subject, centred on it, ``margin`` of its size on each
    side, padded with the background; ``picture`` itself when nothing stands out."""
    small = picture.convert("L")
    shrink = max(small.width, small.height) / FIND_SIDE
    if shrink > 1:
        size = (max(1, round(small.width / shrink)), max(1, round(small.height / shrink)))
        small = small.resize(size, pil.Resampling.BOX)
    else:
        shrink = 1.0
    gray = np.asarray(small, dtype=np.float64)
    if min(gray.shape) < 4:
        return picture
    background = _background(gray)
    contrast = np.abs(gray - background)
    peak = float(np.percentile(contrast, 99.5))
    if peak < 32:  # a blank or evenly lit photo: nothing to find
        return picture
    mass = np.clip(contrast - 0.35 * peak, 0, None)
    total = float(mass.sum())
    if total <= 0:
        return picture
    x0, x1 = _span(mass.sum(axis=0) / total)
    y0, y1 = _span(mass.sum(axis=1) / total)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin) * shrink
    cx, cy = (x0 + x1) / 2 * shrink, (y0 + y1) / 2 * shrink
    if side > MAX_SQUARE:  # a long strip's square would be huge: shrink the photo first
        factor = side / MAX_SQUARE
        size = (max(1, round(picture.width / factor)), max(1, round(picture.height / factor)))
        picture = picture.resize(size, pil.Resampling.BOX)
        side, cx, cy = side / factor, cx / factor, cy / factor
    left, top = round(cx - side / 2), round(cy - side / 2)
    side_px = max(1, round(side))
    fill = _border_colour(picture)
    square = pil.new(picture.mode, (side_px, side_px), fill)
    square.paste(picture, (-left, -top))
    return square


def _span(profile: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Where the middle 99% of a mass profile lies (stray specks at either end left out)."""
    cumulative = np.cumsum(profile)
    start = int(np.searchsorted(cumulative, 0.005))
    end = int(np.searchsorted(cumulative, 0.995)) + 1
    return float(start), float(min(end, len(profile)))


def _background(gray: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The background under the whole photo: a quadratic surface fitted (least squares) to the
    pixels of its border, where the subject is not."""
    height, width = gray.shape
    ys, xs = np.mgrid[0:height, 0:width]
    edge = np.zeros_like(gray, dtype=bool)
    band = max(1, min(height, width) // 20)
    edge[:band], edge[-band:], edge[:, :band], edge[:, -band:] = True, True, True, True
    u, v = xs / max(1, width - 1) - 0.5, ys / max(1, height - 1) - 0.5
    terms = np.stack([np.ones_like(u), u, v, u * u, v * v, u * v], axis=-1)
    values = gray[edge]
    # The border's own bright or dark specks (a thumb, a shadow) should not bend the surface:
    # fit once, drop the border pixels far from it, fit again.
    keep = np.ones(values.shape, dtype=bool)
    coefficients = np.zeros(terms.shape[-1])
    for _ in range(2):
        a, b = terms[edge][keep], values[keep]  # normal equations: 6 unknowns, fast
        coefficients = np.linalg.solve(a.T @ a + 1e-6 * np.eye(a.shape[1]), a.T @ b)
        residual = np.abs(values - terms[edge] @ coefficients)
        keep = residual <= max(8.0, float(np.percentile(residual, 80)) * 2)
    surface: npt.NDArray[np.float64] = terms @ coefficients
    return surface


def _border_colour(picture: Any) -> Any:
    """The median colour of the picture's outermost pixels (what to pad it with)."""
    pixels = np.asarray(picture)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]], axis=0).reshape(
        -1, 1 if pixels.ndim == 2 else pixels.shape[-1]
    )
    colour = np.median(border, axis=0).round().astype(int)
    return int(colour[0]) if pixels.ndim == 2 else tuple(int(c) for c in colour)
