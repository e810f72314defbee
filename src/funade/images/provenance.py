"""Which funade made an image: the labels that say it, and the check before an image is reused.

A version's image is tagged by the model's package alone (``default_tag``), so the tag does not
tell an image made by this funade from one made by an older release or by another checkout on the
same machine. Two labels do: ``dev.funade.funade-version``, the version of the funade that
wrote the Containerfile (the one pip installs from the index), and, when funade went in from a
wheel (``--funade-wheel``, the ``container_funade_wheel`` setting: a development install),
``dev.funade.funade-wheel``, the sha256 of that wheel's bytes. ``made_here`` is what the
container backend (``funade.images.ondemand.ensure_image``) asks before it reuses an image:
both labels as this funade would write them, else the image is built again under its tag.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from funade.errors import InvalidInputError

__all__ = ["FUNADE_VERSION_LABEL", "FUNADE_WHEEL_LABEL", "funade_labels", "made_here"]

FUNADE_VERSION_LABEL = "dev.funade.funade-version"
FUNADE_WHEEL_LABEL = "dev.funade.funade-wheel"

_digests: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def funade_labels(funade_version: str, funade_wheel: Path | None) -> dict[str, str]:
    """The labels an image gets for the funade in it."""
    labels = {FUNADE_VERSION_LABEL: funade_version}
    if funade_wheel is not None:
        labels[FUNADE_WHEEL_LABEL] = wheel_digest(funade_wheel)
    return labels


def made_here(labels: Mapping[str, Any], funade_version: str, funade_wheel: Path | None) -> bool:
    """Whether an image's ``labels`` say it holds this funade (its version, and the same
    wheel, or none when none is given)."""
    expected: dict[str, str | None] = {FUNADE_WHEEL_LABEL: None}
    expected.update(funade_labels(funade_version, funade_wheel))
    return all(labels.get(key) == value for key, value in expected.items())


def wheel_digest(wheel: Path) -> str:
    """``sha256:<hex>`` of the wheel's bytes (read again only when its size or time change)."""
    try:
        stat = wheel.stat()
        key = (str(wheel.resolve()), stat.st_mtime_ns, stat.st_size)
        with _lock:
            known = _digests.get(key)
        if known is not None:
            return known
        hasher = hashlib.sha256()
        with wheel.open("rb") as handle:
            while block := handle.read(1024 * 1024):
                hasher.update(block)
    except OSError as exc:
        raise InvalidInputError(
            f"The funade wheel {str(wheel)!r} cannot be read: {exc.strerror or exc}.",
            field="funade_wheel",
            value=str(wheel),
            fix="Build it (pip wheel --no-deps -w dist .), or give the path of one that is there.",
        ) from None
    digest = f"sha256:{hasher.hexdigest()}"
    with _lock:
        _digests[key] = digest
    return digest
