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
    if image.autocontrast:
        picture = ops.autocontrast(picture)
    size = (layout.width, layout.height)
    resample = pil.Resampling.LANCZOS
    if image.resize == "crop":
        picture = ops.fit(picture, size, method=resample)
    else:
        picture = picture.resize(size, resample=resample)
    return np.asarray(picture)
