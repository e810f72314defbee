"""`funade build`: an OCI image that serves one model version, or the Containerfile and build
context for one (``--containerfile-only DIR``), or the runtime image (``--runtime``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from funade.cli.output import PROJECT_HELP, client, console, console_err

if TYPE_CHECKING:
    from funade.client import Client
    from funade.images.containerfile import BuildContext


def build(
    ref: Annotated[
        str | None,
        typer.Argument(
            metavar="REF",
            help="The version to build: churn:3, churn@production or churn (latest).",
        ),
    ] = None,
    tag: Annotated[
        str | None,
        typer.Option(
            help="Image name (default funade/<model>:<version>-<12 hex of the digest>, or "
            "funade/runtime:<funade version>)."
        ),
    ] = None,
    containerfile_only: Annotated[
        Path | None,
        typer.Option(
            "--containerfile-only",
            metavar="DIR",
            help="Write the Containerfile and its build context to DIR (new or empty) and "
            "build nothing, for a CI that builds images.",
        ),
    ] = None,
    runtime: Annotated[
        bool,
        typer.Option(
            "--runtime", help="The runtime image: no model; serves the version named at start."
        ),
    ] = False,
    fetch: Annotated[
        bool,
        typer.Option(
            "--fetch",
            help="Bake no package in: the container pulls the version from the control plane "
            "(FUNADE_URL, FUNADE_API_KEY) at start and caches it by digest.",
        ),
    ] = False,
    base: Annotated[
        str | None,
        typer.Option(
            help="Base image with Python 3.11+ and Debian's useradd (default python:3.X-slim "
            "of the Python the model was saved with, else python:3.11-slim; where no registry "
            "is reachable, a local image)."
        ),
    ] = None,
    builder: Annotated[
        str | None,
        typer.Option(help="podman, buildah or docker (default: the first one installed)."),
    ] = None,
    extra: Annotated[
        list[str] | None,
        typer.Option(
            "--extra",
            help="With --runtime: a funade extra to install (repeat; default sklearn, onnx, "
            "xgboost, lightgbm, pandas, images).",
        ),
    ] = None,
    push: Annotated[
        bool,
        typer.Option("--push", help="Push the image to its registry (the --tag's) once built."),
    ] = False,
    tls_verify: Annotated[
        bool,
        typer.Option(
            "--tls-verify/--no-tls-verify",
            help="With --push: check the registry's TLS certificate (default); --no-tls-verify "
            "pushes over plain HTTP, for a registry on loopback or in a lab (podman, buildah).",
        ),
    ] = True,
    funade_wheel: Annotated[
        Path | None,
        typer.Option(
            "--funade-wheel",
            help="Install funade from this wheel (copied into the context), not from the index.",
        ),
    ] = None,
    project: Annotated[str | None, typer.Option("--project", "-p", help=PROJECT_HELP)] = None,
) -> None:
    """Build an OCI image serving a model version (podman, buildah or docker), or write its
    Containerfile and build context with --containerfile-only DIR."""
    import funade
    from funade.errors import InvalidInputError
    from funade.images.builders import find_builder, push_command

    if runtime and ref is not None:
        raise InvalidInputError(
            f"--runtime builds the image that serves any version; got the version {ref!r} too.",
            field="ref",
            value=ref,
            fix="Leave REF out with --runtime (name the version when the container starts), or "
            "leave --runtime out to build an image of that version.",
        )
    if not runtime and ref is None:
        raise InvalidInputError(
            "Name the version to build (REF), or pass --runtime.",
            field="ref",
            value=None,
            fix="E.g. `funade build churn:3`, `funade build churn@production "
            "--containerfile-only build/`, or `funade build --runtime`.",
        )
    if extra and not runtime:
        raise InvalidInputError(
            "--extra applies to the runtime image; a version's image gets its flavor's extra.",
            field="--extra",
            value=extra,
            fix="Add --runtime, or leave --extra out.",
        )
    if funade_wheel is not None and not funade_wheel.is_file():
        raise InvalidInputError(
            f"--funade-wheel {str(funade_wheel)!r} is not a file.",
            field="--funade-wheel",
            value=str(funade_wheel),
            fix="Pass the path of a funade wheel (`pip wheel --no-deps .` makes one).",
        )
    if push and containerfile_only is not None:
        raise InvalidInputError(
            "--push needs an image, and --containerfile-only builds none.",
            field="--push",
            value=True,
            fix="Leave --push out and push from the CI that builds the context, or leave "
            "--containerfile-only out to build and push here.",
        )
    if not tls_verify and not push:
        raise InvalidInputError(
            "--no-tls-verify applies to --push, and nothing is pushed.",
            field="--no-tls-verify",
            value=False,
            fix="Add --push, or leave --no-tls-verify out.",
        )
    found: tuple[str, str] | None = None
    if containerfile_only is not None:
        _check_empty(containerfile_only)
    else:
        found = find_builder(builder)  # before anything is fetched
        if push:  # a builder that cannot push as asked fails before the build, too
            push_command(*found, tag or "", tls_verify=tls_verify)
    context: BuildContext
    if runtime:
        from funade.images.containerfile import RUNTIME_EXTRAS, runtime_build

        context = runtime_build(
            funade_version=funade.__version__,
            base=base,
            extras=extra or RUNTIME_EXTRAS,
            tag=tag,
            funade_wheel=funade_wheel,
        )
        _emit(
            context,
            containerfile_only,
            found,
            None,
            "the runtime image",
            push=push,
            tls_verify=tls_verify,
        )
        return
    assert ref is not None
    from funade.images.containerfile import version_build
    from funade.names import parse_model_ref

    name, version_ref = parse_model_ref(ref)
    with client(project) as api:
        version = api.get_version(name, version_ref)
        context = version_build(
            version,
            funade_version=funade.__version__,
            base=base,
            fetch=fetch,
            tag=tag,
            funade_wheel=funade_wheel,
        )
        _emit(
            context,
            containerfile_only,
            found,
            api,
            f"{name}:{version.version}",
            push=push,
            tls_verify=tls_verify,
        )


def _emit(
    context: BuildContext,
    directory: Path | None,
    found: tuple[str, str] | None,
    api: Client | None,
    what: str,
    *,
    push: bool = False,
    tls_verify: bool = True,
) -> None:
    """Write the context to ``directory`` (and say how to build it), or to a temporary
    directory that the builder ``found`` builds (and pushes, with ``push``)."""
    import subprocess
    import tempfile

    from funade.errors import FunadeError, InvalidInputError
    from funade.images.builders import build_command, push_command

    for note in context.notes:
        console_err.print(f"note: {note}", markup=False, soft_wrap=True)
    if directory is not None:
        _write(context, directory, api)
        console.print(
            f"Wrote the Containerfile and build context of {what} to {directory}.",
            markup=False,
            soft_wrap=True,
        )
        console.print("Build it with one of:", markup=False)
        for builder in ("podman", "docker"):
            command = build_command(builder, builder, directory, context.tag)
            console.print("  " + " ".join(command), markup=False, soft_wrap=True)
        return
    assert found is not None
    with tempfile.TemporaryDirectory(prefix="funade-build-") as scratch:
        root = Path(scratch) / "context"
        _write(context, root, api)
        command = build_command(found[0], found[1], root, context.tag)
        console_err.print("$ " + " ".join(command), markup=False, soft_wrap=True)
        status = subprocess.run(command, check=False).returncode
    if status != 0:
        raise FunadeError(
            f"{found[0]} failed to build {context.tag} (exit status {status}); its output is "
            "above.",
            field="--builder",
            value=found[0],
            fix="Fix what it reports (a base image it cannot pull: pass a local one with "
            "--base), or write the context with --containerfile-only DIR to build it yourself.",
        )
    console.print(f"Built {context.tag} ({what}) with {found[0]}.", markup=False, soft_wrap=True)
    if push:
        command = push_command(*found, context.tag, tls_verify=tls_verify)
        console_err.print("$ " + " ".join(command), markup=False, soft_wrap=True)
        if subprocess.run(command, check=False).returncode != 0:
            raise InvalidInputError(
                f"{found[0]} could not push {context.tag} (--push) to the registry its --tag "
                "names; its output is above.",
                field="--tag",
                value=context.tag,
                fix=f"Name a registry that is up and that you may push to, with --tag "
                "registry.example.com/team/name:tag; log in to it first "
                f"(`{found[0]} login REGISTRY`); for one served over plain HTTP (on "
                "loopback, in a lab) add --no-tls-verify.",
            )
        console.print(f"Pushed {context.tag}.", markup=False, soft_wrap=True)


def _check_empty(directory: Path) -> None:
    from funade.errors import InvalidInputError

    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        kind = "a directory that is not empty" if directory.is_dir() else "a file"
        raise InvalidInputError(
            f"--containerfile-only {str(directory)!r} is {kind}.",
            field="--containerfile-only",
            value=str(directory),
            fix="Name a new or empty directory, or remove this one first.",
        )


def _write(context: BuildContext, directory: Path, api: Client | None) -> None:
    """The Containerfile and every context file under ``directory``; on failure, nothing of
    them is left (a directory this call made is removed)."""
    import shutil

    from funade.progress import transfer_progress

    made = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        (directory / "Containerfile").write_text(context.containerfile, encoding="utf-8")
        for item in context.files:
            target = directory / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if item.content is not None:
                target.write_bytes(item.content)
            elif item.source is not None:
                shutil.copyfile(item.source, target)
            elif item.digest is not None:
                assert api is not None
                with transfer_progress(None, item.path, item.size) as report:
                    api.download_artifact(item.digest, target, progress=report)
    except BaseException:
        if made:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for child in directory.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
