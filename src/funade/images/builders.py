"""Which image builder `funade build` runs: podman, buildah or docker, whichever is installed
(in that order), or the one named; and the command line that builds a context with it."""

from __future__ import annotations

import shutil
from pathlib import Path

from funade.errors import FunadeError, InvalidInputError

__all__ = ["BUILDERS", "INSTALL_HINT", "build_command", "find_builder", "push_command"]

BUILDERS = ("podman", "buildah", "docker")
INSTALL_HINT = (
    "Install one: on Debian or Ubuntu `sudo apt-get install podman` (or buildah, or docker.io); "
    "on Fedora or RHEL `sudo dnf install podman`; on macOS `brew install podman` then "
    "`podman machine init && podman machine start`. Or write the Containerfile and its context "
    "with `funade build REF --containerfile-only DIR` and build it in CI."
)


class NoBuilderError(FunadeError):
    """No image builder is installed (or not the one asked for)."""

    code = "no_builder"


def find_builder(name: str | None = None, *, path: str | None = None) -> tuple[str, str]:
    """``(builder, executable)``: the one called ``name``, else the first of BUILDERS on
    ``path`` (default: ``$PATH``)."""
    if name is not None and name not in BUILDERS:
        raise InvalidInputError(
            f"--builder {name!r} is not a builder funade knows.",
            field="--builder",
            value=name,
            fix=f"Use one of: {', '.join(BUILDERS)}; or leave --builder out to use whichever "
            "is installed.",
        )
    for candidate in (name,) if name is not None else BUILDERS:
        assert candidate is not None
        found = shutil.which(candidate, path=path)
        if found is not None:
            return candidate, found
    looked = f"{name!r} (--builder)" if name is not None else ", ".join(BUILDERS)
    raise NoBuilderError(
        f"No image builder is installed: looked for {looked} on PATH.",
        field="--builder",
        value=name,
        fix=INSTALL_HINT,
    )


def build_command(builder: str, executable: str, context: Path, tag: str) -> list[str]:
    """The command that builds ``context/Containerfile`` as ``tag``. Podman and buildah write
    Docker's image format, the one that keeps a HEALTHCHECK (OCI's has none)."""
    containerfile = str(context / "Containerfile")
    if builder == "docker":
        return [executable, "build", "-f", containerfile, "-t", tag, str(context)]
    verb = "bud" if builder == "buildah" else "build"
    return [executable, verb, "--format", "docker", "-f", containerfile, "-t", tag, str(context)]


def push_command(builder: str, executable: str, tag: str, *, tls_verify: bool = True) -> list[str]:
    """The command that pushes ``tag``; ``tls_verify=False`` lets podman or buildah push over
    plain HTTP (a registry on loopback, or in a lab). Docker has no such flag: its daemon
    decides (``insecure-registries`` in daemon.json), so asking for it there is an error."""
    if tls_verify:
        return [executable, "push", tag]
    if builder == "docker":
        raise InvalidInputError(
            "--no-tls-verify is for podman and buildah; docker's push has no such flag.",
            field="--no-tls-verify",
            value=tag,
            fix="List the registry under insecure-registries in docker's daemon.json "
            "(/etc/docker/daemon.json) and restart docker, or build with --builder podman.",
        )
    return [executable, "push", "--tls-verify=false", tag]
