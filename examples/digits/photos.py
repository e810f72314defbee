"""Photos of digits, made up: a digit drawn with a pen (strokes with a wobble, a slant, a
thickness) or printed in a font, on paper with margins all round, turned a little, under uneven
light, a little blurred and grainy, saved as JPEG: what a child's photo of a digit on paper looks
like to the model server.

``photos(count, seed)`` makes ``count`` of them from ``seed``. Training uses some seeds; the
measure in ``tests/examples/test_digits.py`` uses others that training never saw.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Point = tuple[float, float]

BOX = 256
"""Digits are drawn in a square this many pixels wide, then placed on the paper."""


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float) -> list[Point]:
    """Points along an ellipse, angles in degrees clockwise from 3 o'clock (y grows down)."""
    steps = max(8, int(abs(end - start) / 10))
    return [
        (
            cx + rx * math.cos(math.radians(start + (end - start) * i / steps)),
            cy + ry * math.sin(math.radians(start + (end - start) * i / steps)),
        )
        for i in range(steps + 1)
    ]


def _strokes(digit: int) -> list[list[Point]]:
    """The pen strokes of ``digit`` in a unit box (x right, y down)."""
    if digit == 0:
        return [_arc(0.5, 0.5, 0.34, 0.48, -90, 275)]
    if digit == 1:
        return [[(0.28, 0.24), (0.55, 0.02), (0.55, 0.98)]]
    if digit == 2:
        return [_arc(0.5, 0.28, 0.32, 0.26, 190, 400) + [(0.14, 0.98), (0.88, 0.98)]]
    if digit == 3:
        return [_arc(0.5, 0.26, 0.3, 0.24, 200, 450) + _arc(0.5, 0.73, 0.34, 0.25, 270, 520)]
    if digit == 4:
        return [[(0.68, 0.98), (0.68, 0.02), (0.1, 0.68), (0.92, 0.68)]]
    if digit == 5:
        return [[(0.82, 0.02), (0.3, 0.02), (0.24, 0.46)] + _arc(0.5, 0.68, 0.34, 0.3, 215, 500)]
    if digit == 6:
        return [[(0.74, 0.03), (0.45, 0.2), (0.24, 0.48)] + _arc(0.5, 0.7, 0.31, 0.28, 195, 555)]
    if digit == 7:
        return [[(0.1, 0.04), (0.9, 0.04), (0.4, 0.98)]]
    if digit == 8:
        return [_arc(0.5, 0.26, 0.26, 0.24, 90, 450), _arc(0.5, 0.73, 0.33, 0.25, -90, 270)]
    return [_arc(0.5, 0.3, 0.3, 0.27, 0, 360), [(0.8, 0.3), (0.76, 0.66), (0.58, 0.98)]]


def _pen(digit: int, rng: np.random.Generator) -> Image.Image:
    """``digit`` drawn by hand: wobbly strokes, a slant, a width, a pen thickness."""
    slant = rng.uniform(-0.25, 0.25)
    narrow = rng.uniform(0.6, 1.0)
    wobble = rng.uniform(0.0, 0.035)
    thickness = int(BOX * rng.uniform(0.05, 0.12))
    mask = Image.new("L", (BOX, BOX), 0)
    draw = ImageDraw.Draw(mask)
    for stroke in _strokes(digit):
        shift = rng.normal(0, wobble, size=(len(stroke), 2))
        points = []
        for (x, y), (dx, dy) in zip(stroke, shift, strict=True):
            x = 0.5 + (x - 0.5) * narrow + slant * (0.5 - y) + dx
            points.append((BOX * (0.1 + 0.8 * x), BOX * (0.1 + 0.8 * (y + dy))))
        draw.line(points, fill=255, width=thickness, joint="curve")
        for x, y in (points[0], points[-1]):  # round ends
            r = thickness / 2
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return mask


def _printed(digit: int, rng: np.random.Generator) -> Image.Image:
    """``digit`` printed in Pillow's own font (the same on every machine), maybe bold."""
    font = ImageFont.load_default(size=int(BOX * 0.8))
    mask = Image.new("L", (BOX, BOX), 0)
    draw = ImageDraw.Draw(mask)
    bold = int(rng.integers(0, 12))
    draw.text(
        (BOX / 2, BOX / 2), str(digit), fill=255, font=font, anchor="mm", stroke_width=bold,
        stroke_fill=255,
    )
    return mask


def photo(digit: int, rng: np.random.Generator) -> bytes:
    """One photo of ``digit`` (JPEG bytes)."""
    mask = _pen(digit, rng) if rng.random() < 0.7 else _printed(digit, rng)
    mask = mask.crop(mask.getbbox() or (0, 0, BOX, BOX))
    mask = mask.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BICUBIC, expand=True)
    side = int(rng.integers(96, 320))
    # The digit takes 25-75% of the photo's height: margins all round, never cropped tight.
    tall = rng.uniform(0.25, 0.75) * side
    scale = tall / mask.height
    mask = mask.resize(
        (max(1, round(mask.width * scale)), max(1, round(mask.height * scale))),
        Image.Resampling.LANCZOS,
    )
    mask = mask.crop((0, 0, min(mask.width, side - 4), min(mask.height, side - 4)))
    left = int(rng.integers(2, side - mask.width - 1))
    top = int(rng.integers(2, side - mask.height - 1))
    ink = np.zeros((side, side))
    ink[top : top + mask.height, left : left + mask.width] = np.asarray(mask) / 255.0
    # Paper under uneven light: a slope one way and a darker corner, plus a colour cast.
    ys, xs = np.mgrid[0:side, 0:side] / side - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    light = rng.uniform(0, 50) * (math.cos(angle) * xs + math.sin(angle) * ys)
    corner = rng.uniform(0, 30) * ((xs - rng.uniform(-0.5, 0.5)) ** 2 + (ys - 0.5) ** 2)
    paper = rng.uniform(170, 245) + light - corner
    pen = rng.uniform(10, 90)
    gray = paper * (1 - ink) + pen * ink + rng.normal(0, rng.uniform(1, 7), size=ink.shape)
    cast = np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 1.0)])
    rgb = np.clip(gray[..., None] * cast, 0, 255).astype(np.uint8)
    picture = Image.fromarray(rgb, mode="RGB").filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=int(rng.integers(60, 95)))
    return buffer.getvalue()


def photos(count: int, seed: int) -> tuple[list[bytes], np.ndarray]:
    """``count`` photos (JPEG bytes) and their digits, an equal share of each digit."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    return [photo(int(d), rng) for d in labels], labels
