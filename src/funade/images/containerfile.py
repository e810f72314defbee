"""The Containerfile `funade build` writes, and the build context that goes with it.

Pure: a version record (``VersionFacts``: a ``VersionOut`` as the control plane answers it, or
what the package itself says; ``funade.images.facts`` checks its parts) in, the Containerfile's
text and the list of context files out; nothing is read or fetched here. Image names (tags,
bases) are ``funade.images.tags``'s. ``funade.cli.build``
writes the files (fetching the model package through the client) and runs a builder.

Everything that comes from the registry (the model's name, the recorded package versions, the
git commit, the remote URL) is validated against the shape it must have, then written either
into ``requirements.txt`` (read by pip, never by a shell) or as a JSON string (exec-form
``ENTRYPOINT``) or a double-quoted label value with ``\\``, ``"`` and ``$`` escaped and no control
characters: a hostile name or version cannot add an instruction (tests/security/).

The image of one version (``version_build``)::

    FROM <base> AS runtime            a non-root user (uid 10001); then pip install -r
                                      requirements.txt: funade[<extra>]==<this funade> and the
                                      framework versions the model was saved with (nothing
                                      names the model: models of the same flavor and pins
                                      share these layers in a builder's cache)
    FROM runtime AS package           (baked) the package tar, checked against its digest and
                                      unpacked by funade.images.unpack
    FROM runtime                      /models/sha256-<hex>/ (read-only, owned by root), labels,
                                      EXPOSE 8080, HEALTHCHECK on /v2/health/ready, USER 10001,
                                      ENTRYPOINT funade serve /models/sha256-<hex> ...

With ``fetch=True`` nothing is copied: the entrypoint is ``funade serve <model>:<version>``,
which pulls the version from the control plane at ``FUNADE_URL`` with ``FUNADE_API_KEY`` (both
given when the container starts, never baked in) into ``FUNADE_CACHE_DIR``
(``/var/cache/funade``, a volume), keyed by digest and verified. ``runtime_build`` is the same
image without a model: any version is named when the container starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from funade.errors import InvalidInputError
from funade.images.facts import (
    CONTROL,
    VERSION_TEXT,
    VersionFacts,
    bad_record,
    git_commit,
    git_remote,
    lineage_str,
    pinned_requirements,
    takes_images,
)
from funade.images.provenance import funade_labels
from funade.images.tags import (
    DEFAULT_PYTHON,
    IMAGE_REFERENCE,
    base_for,
    check_base,
    check_tag,
    checked_digest,
    default_tag,
    digest_hex,
    runtime_tag,
)
from funade.names import check_model_name, check_project_name

__all__ = [
    "CACHE_DIR",
    "DEFAULT_PYTHON",
    "IMAGE_REFERENCE",
    "MODELS_DIR",
    "PORT",
    "RUNTIME_EXTRAS",
    "SERVES_UNIX_LABEL",
    "UID",
    "BuildContext",
    "ContextFile",
    "VersionFacts",
    "base_for",
    "check_base",
    "check_tag",
    "default_tag",
    "model_path",
    "pinned_requirements",
    "runtime_build",
    "runtime_tag",
    "version_build",
]

PORT = 8080
SERVES_UNIX_LABEL = "dev.funade.serve-uds"
"""Set ("true") on images whose `funade serve` can listen on a Unix socket (``--uds``): the
container backend gives an image without it (built by an older funade) a published port."""
UID = 10001
"""The image's user and group id: fixed, so a cluster's securityContext (``runAsUser``) and a
volume's ownership can name it."""
MODELS_DIR = "/models"
CACHE_DIR = "/var/cache/funade"
RUNTIME_EXTRAS = ("sklearn", "onnx", "xgboost", "lightgbm", "pandas", "images")
"""The extras of the runtime image by default: every flavor's but torch's (PyPI's Linux torch
is a multi-GB CUDA build: add ``--extra torch`` with a CPU index where it is wanted) and
mlflow's (``--extra mlflow``)."""
KNOWN_EXTRAS = (*RUNTIME_EXTRAS, "torch", "mlflow")
SYSTEM_LIBRARIES: Mapping[str, tuple[str, ...]] = {"lightgbm": ("libgomp1",)}
"""Debian packages an extra's wheels need and slim bases lack: LightGBM's wheel loads the OpenMP
runtime (``libgomp.so.1``) from the system (xgboost-cpu's and scikit-learn's bring their own).
Installed with apt-get as root, right after the user, only in images with that extra."""
READY_PATH = "/v2/health/ready"
STAGED_TAR = "/opt/funade/package.tar"
"""Where the package tar sits in the build stage that unpacks it (not in the final image)."""


_HEALTHCHECK = (
    "import urllib.request; "
    f"urllib.request.urlopen('http://127.0.0.1:{PORT}{READY_PATH}', timeout=4)"
)


@dataclass(frozen=True)
class ContextFile:
    """One file of the build context: its ``path`` (relative, POSIX) and either its ``content``,
    the ``digest`` of a registry artifact to fetch into it, or a local ``source`` to copy."""

    path: str
    content: bytes | None = None
    digest: str | None = None
    source: Path | None = None
    size: int = 0
    """The artifact's size in bytes, for a progress bar."""


@dataclass(frozen=True)
class BuildContext:
    """What `funade build` writes: the Containerfile, the files beside it, and what to say."""

    containerfile: str
    files: tuple[ContextFile, ...]
    tag: str
    notes: tuple[str, ...] = field(default=())
    """Things the person building should know (no versions were recorded, ...)."""


def model_path(digest: str) -> str:
    """Where an image holds the package of ``digest``: ``/models/sha256-<hex>``."""
    return f"{MODELS_DIR}/sha256-{digest_hex(digest)}"


def version_build(
    version: VersionFacts,
    *,
    funade_version: str,
    base: str | None = None,
    fetch: bool = False,
    tag: str | None = None,
    funade_wheel: Path | None = None,
) -> BuildContext:
    """The Containerfile and context of the image serving ``version``: the package baked in at
    ``/models/sha256-<hex>`` or, with ``fetch``, pulled at start."""
    from funade.registry.flavors import get_flavor

    model = check_model_name(version.model, field="model")
    number = version.version
    digest = checked_digest(version.artifact.digest)
    flavor = get_flavor(version.flavor)
    extras = [flavor.extra] if flavor.extra else []
    if takes_images(version.signature):
        extras.append("images")
    pins = pinned_requirements(version)
    notes: list[str] = []
    if not pins:
        notes.append(
            f"{model}:{number} recorded no framework versions (its manifest has no "
            "'requirements'): the image gets the newest releases funade's extra "
            f"'{flavor.extra or '(none)'}' allows, resolved by pip when it is built. Re-register "
            "the model with a current funade to pin them."
        )
    python = version.manifest.get("python_version")
    python = python if isinstance(python, str) else lineage_str(version.lineage, "python")
    base = check_base(base) if base is not None else base_for(python)
    tag = check_tag(tag) if tag is not None else default_tag(model, number, digest)
    commit = git_commit(version.lineage)
    source = git_remote(version.lineage)
    files = [
        ContextFile(
            "requirements.txt",
            content=_requirements(extras, pins, funade_version, funade_wheel).encode(),
        )
    ]
    if funade_wheel is not None:
        files.append(ContextFile(f"wheels/{funade_wheel.name}", source=funade_wheel))
    lines = _runtime_stage(base, funade_wheel, extras)
    package_file = f"model/sha256-{digest_hex(digest)}.tar"
    target = model_path(digest)
    if fetch:  # the version, and only if the control plane reached has its package
        project = check_project_name(version.project, field="project")
        lines += ["", "FROM runtime", f"ENV FUNADE_PROJECT={project}"]
        serve = ["funade", "serve", f"{model}:{number}", "--digest", digest]
    else:
        files.append(ContextFile(package_file, digest=digest, size=version.artifact.size))
        lines += [
            "",
            "# The model package, checked against its digest and unpacked; only the unpacked",
            "# directory reaches the image.",
            "FROM runtime AS package",
            f"COPY {package_file} {STAGED_TAR}",
            "RUN " + _json(["python", "-m", "funade.images.unpack", STAGED_TAR, digest, target]),
            "",
            "FROM runtime",
            f"COPY --from=package {target} {target}",
        ]
        serve = ["funade", "serve", target]
    serve += ["--host", "0.0.0.0", "--port", str(PORT), "--name", model]  # noqa: S104
    serve += ["--model-version", str(number)]
    labels = {
        "org.opencontainers.image.title": f"{model}:{number}",
        "org.opencontainers.image.version": str(number),
        "org.opencontainers.image.description": f"funade model server for {model}:{number}",
        "dev.funade.model": model,
        "dev.funade.version": str(number),
        "dev.funade.digest": digest,
        "dev.funade.flavor": flavor.name,
        "dev.funade.fetch": "true" if fetch else "false",
        **funade_labels(funade_version, funade_wheel),
        SERVES_UNIX_LABEL: "true",
    }
    if commit is not None:
        labels["org.opencontainers.image.revision"] = commit
        labels["dev.funade.git-commit"] = commit
    if source is not None:
        labels["org.opencontainers.image.source"] = source
    lines += _final_stage(labels, serve, fetches=fetch)
    return BuildContext(
        containerfile="\n".join(lines) + "\n", files=tuple(files), tag=tag, notes=tuple(notes)
    )


def runtime_build(
    *,
    funade_version: str,
    base: str | None = None,
    extras: Sequence[str] = RUNTIME_EXTRAS,
    tag: str | None = None,
    funade_wheel: Path | None = None,
) -> BuildContext:
    """The runtime image: funade with ``extras`` and no model; ``docker run IMAGE churn:3``
    serves the version it pulls (``FUNADE_URL``, ``FUNADE_API_KEY``) into its digest cache."""
    for extra in extras:
        if extra not in KNOWN_EXTRAS:
            raise InvalidInputError(
                f"--extra {extra!r} is not an extra of funade that serves models.",
                field="--extra",
                value=extra,
                fix=f"Use one of: {', '.join(KNOWN_EXTRAS)}.",
            )
    base = check_base(base) if base is not None else base_for(None)
    tag = check_tag(tag) if tag is not None else runtime_tag(funade_version)
    files = [
        ContextFile(
            "requirements.txt",
            content=_requirements(
                list(dict.fromkeys(extras)), {}, funade_version, funade_wheel
            ).encode(),
        )
    ]
    if funade_wheel is not None:
        files.append(ContextFile(f"wheels/{funade_wheel.name}", source=funade_wheel))
    labels = {
        "org.opencontainers.image.title": "funade runtime",
        "org.opencontainers.image.version": funade_version,
        "org.opencontainers.image.description": "funade model server; serves the version named "
        "when the container starts, pulled from the control plane",
        "dev.funade.runtime": "true",
        "dev.funade.extras": ",".join(dict.fromkeys(extras)),
        **funade_labels(funade_version, funade_wheel),
        SERVES_UNIX_LABEL: "true",
    }
    serve = ["funade", "serve", "--host", "0.0.0.0", "--port", str(PORT)]  # noqa: S104
    lines = _runtime_stage(base, funade_wheel, extras) + _final_stage(labels, serve, fetches=True)
    return BuildContext(containerfile="\n".join(lines) + "\n", files=tuple(files), tag=tag)


# The parts ------------------------------------------------------------------------------------


def _runtime_stage(base: str, funade_wheel: Path | None, extras: Sequence[str] = ()) -> list[str]:
    copy_wheels = ["COPY wheels/ /opt/funade/wheels/"] if funade_wheel is not None else []
    libraries = sorted({lib for extra in extras for lib in SYSTEM_LIBRARIES.get(extra, ())})
    apt = (
        [
            "# Shared libraries the extras' wheels load but do not bring (Debian's packages).",
            "RUN apt-get update \\",
            " && apt-get install -y --no-install-recommends " + " ".join(libraries) + " \\",
            " && rm -rf /var/lib/apt/lists/*",
        ]
        if libraries
        else []
    )
    return [
        "# Written by `funade build`. Build with podman (`--format docker` keeps the",
        "# HEALTHCHECK), buildah or docker; docs/containers.md.",
        f"FROM {base} AS runtime",
        "# A package index for pip, if not PyPI: --build-arg PIP_INDEX_URL=...",
        "ARG PIP_INDEX_URL",
        "ARG PIP_EXTRA_INDEX_URL",
        "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 "
        "PIP_DISABLE_PIP_VERSION_CHECK=1",
        "# Layers from the most shared to the least, so that a rebuild reuses what it can: the",
        "# user (any image on this base), the packages (any model of the same flavor and pins),",
        "# then, in the last stage, the model.",
        f"RUN groupadd --system --gid {UID} funade \\",
        f" && useradd --system --uid {UID} --gid {UID} --home-dir /home/funade --create-home \\",
        "    --shell /usr/sbin/nologin funade \\",
        f" && mkdir -p {CACHE_DIR} && chown {UID}:{UID} {CACHE_DIR}",
        *apt,
        *copy_wheels,
        "COPY requirements.txt /opt/funade/requirements.txt",
        "RUN python -m pip install --no-cache-dir -r /opt/funade/requirements.txt",
        f"ENV HOME=/home/funade FUNADE_HOME=/home/funade/.funade FUNADE_CACHE_DIR={CACHE_DIR}",
    ]


def _final_stage(labels: Mapping[str, str], serve: list[str], *, fetches: bool) -> list[str]:
    """Labels, port, health, user and entrypoint; a volume for the digest cache when the
    image ``fetches`` its model at start."""
    volume = [f"VOLUME {CACHE_DIR}"] if fetches else []
    return [
        "",
        *(f"LABEL {key}={_quote(value, key)}" for key, value in labels.items()),
        *volume,
        f"EXPOSE {PORT}",
        "HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \\",
        "  CMD " + _json(["python", "-c", _HEALTHCHECK]),
        f"USER {UID}:{UID}",
        "ENTRYPOINT " + _json(serve),
    ]


def _requirements(
    extras: Sequence[str],
    pins: Mapping[str, str],
    funade_version: str,
    funade_wheel: Path | None,
) -> str:
    """requirements.txt: nothing in it names the model, so that every model of the same flavor
    and pins has the same file, and a builder reuses its `pip install` layer."""
    if not VERSION_TEXT.fullmatch(funade_version):
        raise bad_record("funade_version", funade_version, "is not a version")
    funade = f"funade[{','.join(extras)}]" if extras else "funade"
    if funade_wheel is not None:
        if not re.fullmatch(r"funade-[A-Za-z0-9._+-]+\.whl", funade_wheel.name):
            raise InvalidInputError(
                f"--funade-wheel {str(funade_wheel)!r} is not a funade wheel.",
                field="--funade-wheel",
                value=str(funade_wheel),
                fix="Pass the file `python -m build --wheel` (or `pip wheel .`) made, named "
                "funade-<version>-py3-none-any.whl.",
            )
        funade = f"{funade} @ file:///opt/funade/wheels/{funade_wheel.name}"
    else:
        funade = f"{funade}=={funade_version}"
    lines = ["# Written by `funade build`: funade with the flavor's extra.", funade]
    if pins:
        lines.append("# The versions the model was saved with (its manifest's 'requirements'):")
        lines += [f"{name}=={pinned}" for name, pinned in pins.items()]
    return "\n".join(lines) + "\n"


def _json(words: Sequence[str]) -> str:
    """Exec form: a JSON array on one line (``json.dumps`` escapes newlines and quotes)."""
    return json.dumps(list(words))


def _quote(value: str, key: str) -> str:
    """A LABEL value in double quotes: ``\\``, ``"`` and ``$`` escaped (no variable is
    expanded); a control character (a newline would start an instruction) is refused."""
    if CONTROL.search(value):
        raise bad_record(key, value, "holds a control character (a newline, ...)")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'
