"""``funade.log_model`` and ``funade.load_model``: the two calls a data scientist needs.

Both go through ``funade.Client``: over HTTP when FUNADE_URL is set, otherwise to the same API
run in-process over ``$FUNADE_HOME``.
"""

from __future__ import annotations

import atexit
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from funade.api.schemas import DeploymentOut, VersionIn, VersionOut
from funade.artifacts import ArtifactCache, pack_directory
from funade.client import Client
from funade.errors import InvalidInputError
from funade.names import check_alias_name, check_model_name, parse_model_ref
from funade.progress import transfer_progress
from funade.registry.images import ImageInput

if TYPE_CHECKING:
    from funade.ready import ReadyCall
    from funade.registry.model import Model
    from funade.registry.package import Labels

_default: Client | None = None
_lock = threading.Lock()


def default_client() -> Client:
    """One client per process, made on first use from the environment's settings."""
    global _default
    with _lock:
        if _default is None:
            _default = Client()
            atexit.register(_close_default)
        return _default


def _close_default() -> None:
    global _default
    if _default is not None:
        _default.close()
        _default = None


@overload
def log_model(
    model: object,
    name: str,
    *,
    sample_input: Any = None,
    flavor: str | None = None,
    options: Mapping[str, Any] | None = None,
    image: ImageInput | None = None,
    labels: Labels | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    datasets: Mapping[str, object] | None = None,
    description: str = "",
    alias: str | None = None,
    project: str | None = None,
    client: Client | None = None,
    progress: bool | None = None,
    deploy: Literal[False] = False,
    deploy_timeout: float = ...,
) -> VersionOut: ...


@overload
def log_model(
    model: object,
    name: str,
    *,
    sample_input: Any = None,
    flavor: str | None = None,
    options: Mapping[str, Any] | None = None,
    image: ImageInput | None = None,
    labels: Labels | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    datasets: Mapping[str, object] | None = None,
    description: str = "",
    alias: str | None = None,
    project: str | None = None,
    client: Client | None = None,
    progress: bool | None = None,
    deploy: Literal[True, "direct", "bluegreen", "canary"],
    deploy_timeout: float = ...,
) -> ReadyCall: ...


def log_model(
    model: object,
    name: str,
    *,
    sample_input: Any = None,
    flavor: str | None = None,
    options: Mapping[str, Any] | None = None,
    image: ImageInput | None = None,
    labels: Labels | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    datasets: Mapping[str, object] | None = None,
    description: str = "",
    alias: str | None = None,
    project: str | None = None,
    client: Client | None = None,
    progress: bool | None = None,
    deploy: bool | str = False,
    deploy_timeout: float = 600.0,
) -> VersionOut | ReadyCall:
    """Register ``model`` as the next immutable version of ``name``.

    The model is saved with its flavor (detected, or ``flavor=``), loaded back and run on
    ``sample_input`` to record its signature and golden examples, packed into one
    content-addressed artifact, uploaded, and registered with its lineage (git commit, branch,
    dirty flag, package versions, digests of ``datasets``), ``params``, ``metrics`` and ``tags``.
    ``alias`` (e.g. "staging") is then pointed at the new version. ``image`` (an
    ``ImageInput``) lets the model server take photos for one input (``registry.images``);
    ``labels`` names the classes of the outputs that score them (``["cat", "dog"]``, or
    ``{"probabilities": [...]}``), which classification answers and the try-it page show.

    ``deploy=True`` (or a strategy: ``"canary"``, ``"bluegreen"``) then deploys it through the
    running platform (the `funade up` over this home, or FUNADE_URL), waits up to
    ``deploy_timeout`` seconds for the rollout to succeed (a canary: to take its first share
    of traffic), and returns a ``funade.ready.ReadyCall``: the
    ``endpoint``, a new predict ``key`` for that deployment alone (expiring in 7 days, revoked
    with the deployment) and an ``example`` request body; ``.version`` is the version.
    """
    from funade.registry.lineage import capture_lineage
    from funade.registry.package import build_package

    check_model_name(name)
    if alias is not None:
        check_alias_name(alias)
    strategy = _strategy(deploy)
    client = client or default_client()
    lineage = capture_lineage(datasets=datasets)
    with tempfile.TemporaryDirectory(prefix="funade-package-") as tmp:
        package_dir = Path(tmp) / "package"
        package_dir.mkdir()
        _, golden = build_package(
            model,
            package_dir,
            sample_input=sample_input,
            flavor=flavor,
            options=options,
            image=image,
            labels=labels,
        )
        blob = pack_directory(package_dir, Path(tmp) / "package.tar")
        with transfer_progress(progress, f"Uploading {name}", blob.size) as report:
            client.upload_artifact(
                Path(tmp) / "package.tar", digest=blob.digest, progress=report, project=project
            )
    version = client.create_version(
        name,
        VersionIn(
            artifact=blob.digest,
            golden_examples=golden,
            lineage=lineage,
            params=dict(params or {}),
            metrics=dict(metrics or {}),
            tags=dict(tags or {}),
            description=description,
        ),
        project=project,
    )
    if alias is not None:
        client.set_alias(name, alias, version.version, project=project)
        version = client.get_version(name, version.version, project=project)
    if strategy is None:
        return version
    return _deploy_and_call(client, version, strategy, project, deploy_timeout)


def _strategy(deploy: bool | str) -> str | None:
    if deploy is False:
        return None
    if deploy is True:
        return "direct"
    if deploy in ("direct", "bluegreen", "canary"):
        return str(deploy)
    raise InvalidInputError(
        f"deploy={deploy!r} is not a way to deploy.",
        field="deploy",
        value=deploy,
        fix="Pass deploy=True, or a strategy: 'direct', 'bluegreen' or 'canary'.",
    )


def _deploy_and_call(
    client: Client, version: VersionOut, strategy: str, project: str | None, timeout: float
) -> ReadyCall:
    """Deploy the version just registered, wait for its rollout, and make its first call."""
    from dataclasses import replace

    from funade.errors import FunadeError
    from funade.ready import (
        FINAL,
        ready_call,
        refuse_without_controller,
        wait_for_gateway,
        wait_rollout,
    )

    deployment = deploy(
        version.model, version.version, strategy=strategy, project=project, client=client
    )
    if not deployment.controller:
        raise refuse_without_controller(client, deployment.name)
    # A canary takes traffic from its first step on: the call works from then.
    rollout = wait_rollout(client, deployment.name, timeout, until=("progressing", *FINAL))
    if rollout.state not in ("succeeded", "progressing"):
        raise FunadeError(
            f"The rollout of {version.ref} to deployment {deployment.name!r} did not go live: "
            f"it is {rollout.state.replace('_', ' ')}"
            + (f" ({rollout.reason})." if rollout.reason else "."),
            field="deploy",
            value=deployment.name,
            fix=f"See `funade rollout status {deployment.name}`. The version is registered "
            f"({version.ref}): deploy it again with `funade deploy {version.model} -v "
            f"{version.version}`.",
        )
    call = ready_call(client, client.get_deployment(deployment.name))
    if call.key is not None or call.public:
        wait_for_gateway(call)
    return replace(call, version=version)


def load_model(
    ref: str,
    *,
    project: str | None = None,
    client: Client | None = None,
    cache_dir: Path | None = None,
) -> Model:
    """Load ``churn``, ``churn:3`` or ``churn@production`` into memory.

    The package is fetched once into the local cache (keyed and verified by digest), unpacked,
    its files checked against the manifest, and loaded by its flavor.
    """
    from funade.registry.package import load_package

    name, version_ref = parse_model_ref(ref)
    client = client or default_client()
    version = client.get_version(name, version_ref, project=project)
    cache = ArtifactCache(
        cache_dir or client.settings.resolved_cache_dir,
        lambda digest: client.open_artifact(digest, project=project),
    )
    model = load_package(cache.unpacked(version.artifact.digest))
    model.name = name
    model.version = version.version
    return model


def deploy(
    model: str,
    version: int | str | None = None,
    *,
    name: str | None = None,
    strategy: str = "direct",
    steps: list[int] | None = None,
    pause_seconds: float | None = None,
    replicas: int | None = None,
    project: str | None = None,
    client: Client | None = None,
) -> DeploymentOut:
    """Serve ``model``'s ``version`` (default: the latest) behind the gateway: create the
    deployment ``name`` (default: the model's name), or roll the new version out to it by
    ``strategy`` ("direct", "bluegreen" or "canary" with ``steps``). The hook a pipeline step
    calls after ``log_model`` to ship what it trained; the rollout's verification and
    analysis decide whether it takes traffic."""
    from funade.errors import NotFoundError

    client = client or default_client()
    target = name or model
    pinned = None if version is None else str(version)
    try:
        client.get_deployment(target)
    except NotFoundError:
        fields: dict[str, Any] = {"name": target, "version": pinned}
        if replicas is not None:
            fields["replicas"] = replicas
        if project is not None:
            fields["project"] = project
        return client.create_deployment(model, **fields)
    rollout: dict[str, Any] = {"strategy": strategy}
    if steps is not None:
        rollout["steps"] = steps
    if pause_seconds is not None:
        rollout["pause_seconds"] = pause_seconds
    return client.update_deployment(target, version=pinned, replicas=replicas, rollout=rollout)
