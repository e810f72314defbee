"""The image of a model version, built when a container backend first needs it and reused after.

``ensure_image`` answers the tag of the version's image (``default_tag``: ``funade/<model>:
<version>-<12 hex of the digest>``). An image with that tag whose ``dev.funade.digest`` label is
the version's whole digest, made by this funade (``funade.images.provenance``: its version and,
built from a wheel, that wheel's digest in labels), is the cache: it is used as it is, nothing is
fetched or built (``image_is_current``).
Otherwise the package is fetched from the artifact store, checked against its digest while it is
written into a build context, its manifest read (flavor, signature, the framework versions it
was saved with: what ``funade build`` takes from the registry's record), and the Containerfile
of ``funade.images.containerfile.version_build`` is built by the engine, its output appended to
a log the caller names. The same digest always gives the same tag, so a second replica, a second
revision of the same version, or a control plane that restarts never builds it again.

An image of the tag made by another funade (an older release, another checkout's wheel) is
built again, and the tag moved to the new one; a remove (``podman rmi TAG``) makes the next
start build it anew too.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funade.errors import DigestMismatchError, InvalidArtifactError
from funade.images.builders import build_command
from funade.images.containerfile import default_tag, version_build
from funade.images.engine import ContainerEngine
from funade.images.provenance import made_here

__all__ = ["PackagedVersion", "ensure_image", "image_digest", "image_is_current", "image_labels"]

BUILD_TIMEOUT = 1800.0
"""Seconds a build may take (a first one installs the frameworks from the package index)."""

_building: dict[str, threading.Lock] = {}
_building_lock = threading.Lock()


@dataclass(frozen=True)
class _Artifact:
    digest: str
    size: int


@dataclass(frozen=True)
class PackagedVersion:
    """A model version as its package tells it (``VersionFacts`` for ``version_build``), where
    no registry record is at hand. It has no lineage, so its image has no git commit labels."""

    project: str
    model: str
    version: int
    artifact: _Artifact
    flavor: str
    signature: dict[str, Any]
    manifest: dict[str, Any]
    lineage: dict[str, Any] = field(default_factory=dict)


def image_digest(engine: ContainerEngine, tag: str) -> str | None:
    """The ``dev.funade.digest`` label of the image ``tag``; None when there is no such image."""
    value = image_labels(engine, tag).get("dev.funade.digest")
    return value if isinstance(value, str) else None


def image_is_current(
    engine: ContainerEngine,
    tag: str,
    digest: str,
    *,
    funade_version: str,
    funade_wheel: Path | None = None,
) -> bool:
    """Whether the image ``tag`` is there, of package ``digest``, made by this funade (its
    version, and ``funade_wheel`` when funade is installed from one)."""
    labels = image_labels(engine, tag)
    return labels.get("dev.funade.digest") == digest and made_here(
        labels, funade_version, funade_wheel
    )


def image_labels(engine: ContainerEngine, tag: str) -> dict[str, Any]:
    """The labels of the image ``tag`` (empty when there is no such image)."""
    import json

    done = engine.run("image", "inspect", tag, check=False)
    if done.returncode != 0:
        return {}
    try:
        (image,) = json.loads(done.stdout)
        labels = (image.get("Config") or {}).get("Labels") or image.get("Labels") or {}
    except (ValueError, TypeError, AttributeError):
        return {}
    return labels if isinstance(labels, dict) else {}


def ensure_image(
    engine: ContainerEngine,
    *,
    project: str,
    model: str,
    version: int,
    digest: str,
    fetch: Callable[[str], Iterable[bytes]],
    scratch: Path,
    log: Path,
    funade_version: str,
    base: str | None = None,
    funade_wheel: Path | None = None,
) -> str:
    """The tag of the image serving ``model:version`` (package ``digest``), built now unless
    an image of that digest, made by this funade, is already tagged; see the module's
    docstring. ``scratch``: where the build context is written (and removed); ``log``: where
    the build's output goes."""
    tag = default_tag(model, version, digest)
    with _lock_for(tag):
        if image_is_current(
            engine, tag, digest, funade_version=funade_version, funade_wheel=funade_wheel
        ):
            return tag
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="build-", dir=scratch) as directory:
            root = Path(directory)
            tar = root / "model" / f"sha256-{digest.removeprefix('sha256:')}.tar"
            size = _write_checked(fetch(digest), digest, tar)
            manifest = _manifest_of(tar)
            facts = PackagedVersion(
                project=project,
                model=model,
                version=version,
                artifact=_Artifact(digest, size),
                flavor=str(manifest.get("flavor", "")),
                signature=dict(manifest.get("signature") or {}),
                manifest=manifest,
            )
            context = version_build(
                facts, funade_version=funade_version, base=base, funade_wheel=funade_wheel
            )
            (root / "Containerfile").write_text(context.containerfile, encoding="utf-8")
            for item in context.files:
                target = root / item.path
                target.parent.mkdir(parents=True, exist_ok=True)
                if item.content is not None:
                    target.write_bytes(item.content)
                elif item.source is not None:
                    target.write_bytes(item.source.read_bytes())
                # else: the package, written above
            command = build_command(engine.name, engine.executable, root, tag)
            engine.run(*command[1:], timeout=BUILD_TIMEOUT, log=log)
        return tag


def _lock_for(tag: str) -> threading.Lock:
    """One build of a tag at a time in this process (a second start waits, then reuses it)."""
    with _building_lock:
        return _building.setdefault(tag, threading.Lock())


def _write_checked(chunks: Iterable[bytes], digest: str, target: Path) -> int:
    """Write ``chunks`` to ``target``, checking they hash to ``digest``; their size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    size = 0
    with open(target, "wb") as out:
        for chunk in chunks:
            hasher.update(chunk)
            size += len(chunk)
            out.write(chunk)
    actual = f"sha256:{hasher.hexdigest()}"
    if actual != digest:
        raise DigestMismatchError(
            f"The artifact store's package {digest} hashes to {actual}.",
            field="digest",
            value=actual,
            fix="The stored bytes are damaged: register the model again.",
        )
    return size


def _manifest_of(tar: Path) -> dict[str, Any]:
    """The package's ``funade.json``, read from its tar without extracting anything."""
    from funade.artifacts.tarball import iter_members
    from funade.registry.manifest import MANIFEST_NAME, ManifestProblem, parse_manifest
    from funade.registry.package import MAX_MANIFEST_BYTES

    def chunks() -> Iterable[bytes]:
        with open(tar, "rb") as handle:
            while block := handle.read(1024 * 1024):
                yield block

    for name, head in iter_members(chunks(), max_member_bytes=MAX_MANIFEST_BYTES):
        if name == MANIFEST_NAME:
            try:
                return parse_manifest(head).model_dump(mode="json")
            except ManifestProblem as problem:
                raise InvalidArtifactError(
                    problem.message, field="manifest", value=MANIFEST_NAME, fix=problem.fix
                ) from None
    raise InvalidArtifactError(
        f"The package has no {MANIFEST_NAME}.",
        field="manifest",
        value=None,
        fix="Register the model again with funade.log_model.",
    )
