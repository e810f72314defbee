"""`funade manifests REF --target kubernetes|kserve|knative -o DIR`: the objects that serve a
model version on a cluster, written as YAML without applying them (funade.deploy.k8s.render)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from funade.cli.output import PROJECT_HELP, client

if TYPE_CHECKING:
    from funade.api.schemas import VersionOut
    from funade.deploy.k8s.render import ModelVersion, Target

TARGETS = ("kubernetes", "kserve", "knative")


def manifests(
    ref: Annotated[str, typer.Argument(help="churn, churn:3 or churn@production")],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Directory to write the YAML files into; '-': one multi-document YAML on "
            "stdout (for `kubectl apply -f -`).",
        ),
    ],
    target: Annotated[
        str,
        typer.Option(
            help="kubernetes (Deployment, Service, HPA), kserve (InferenceService) or knative "
            "(Knative Service and Istio VirtualService)."
        ),
    ] = "kubernetes",
    name: Annotated[
        str | None, typer.Option(help="Deployment name (default: made from the model's).")
    ] = None,
    revision: Annotated[int, typer.Option(help="The deployment's revision this is.")] = 1,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace (default: none set).")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(help="Image (default: the tag `funade build` gives this version)."),
    ] = None,
    replicas: Annotated[int, typer.Option(help="Replicas (without autoscaling).")] = 1,
    min_replicas: Annotated[int | None, typer.Option(help="Autoscaling: fewest replicas.")] = None,
    max_replicas: Annotated[int | None, typer.Option(help="Autoscaling: most replicas.")] = None,
    target_cpu: Annotated[
        int | None, typer.Option(help="Autoscaling: average CPU use to aim at, in percent.")
    ] = None,
    cpu: Annotated[str | None, typer.Option(help="CPU request per replica: 2, 500m.")] = None,
    memory: Annotated[
        str | None, typer.Option(help="Memory request and limit per replica: 4Gi.")
    ] = None,
    gpus: Annotated[int, typer.Option(help="NVIDIA GPUs per replica (nvidia.com/gpu).")] = 0,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes per replica (default: the image's).")
    ] = None,
    max_batch_size: Annotated[
        int | None, typer.Option(help="Most rows per model call (default: the image's).")
    ] = None,
    node_selector: Annotated[
        list[str] | None,
        typer.Option("--node-selector", help="KEY=VALUE a node must carry; repeat for more."),
    ] = None,
    toleration: Annotated[
        list[str] | None,
        typer.Option(help="KEY[=VALUE]:EFFECT of a taint to tolerate; repeat for more."),
    ] = None,
    image_pull_secret: Annotated[
        list[str] | None,
        typer.Option(help="Secret to pull the image with; repeat for more."),
    ] = None,
    credential_secret: Annotated[
        str | None,
        typer.Option(
            help="Secret with the replica's token (key replica-token) and, with "
            "--registry-url, an API key (key api-key). Default: <name>-r<revision>-credentials."
        ),
    ] = None,
    registry_url: Annotated[
        str | None,
        typer.Option(help="For an image built with --fetch: the control plane it pulls from."),
    ] = None,
    model_cache: Annotated[
        str | None,
        typer.Option(help="hostpath:/DIR or pvc:CLAIM: a cache of model packages by digest."),
    ] = None,
    ready_timeout: Annotated[
        str | None,
        typer.Option(help="Time a replica may take to load its model, e.g. '20m' (default 10m)."),
    ] = None,
    canary_weight: Annotated[
        int | None, typer.Option(help="kserve, knative: percent of traffic for this revision.")
    ] = None,
    stable_revision: Annotated[
        int | None, typer.Option(help="knative: the revision that keeps the rest of it.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="knative: the VirtualService's host.")] = None,
    istio_gateway: Annotated[
        str, typer.Option(help="knative: the VirtualService's gateway (mesh or NS/NAME).")
    ] = "mesh",
    project: Annotated[str | None, typer.Option("--project", "-p", help=PROJECT_HELP)] = None,
) -> None:
    """Write the Kubernetes objects that serve a model version, one YAML file per object,
    without applying them (`kubectl apply -f DIR`), or one stream of them (-o -)."""
    import yaml

    from funade.deploy.k8s import render as k8s
    from funade.durations import parse_seconds
    from funade.errors import InvalidInputError
    from funade.names import parse_model_ref

    options = k8s.RenderOptions(
        target=_target(target),
        deployment=name,
        served_name=name,
        revision=revision,
        namespace=namespace,
        image=image,
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_cpu=target_cpu,
        cpu=cpu,
        memory=memory,
        gpus=gpus,
        workers=workers,
        max_batch_size=max_batch_size,
        node_selector=dict(_pair(text) for text in node_selector or []),
        tolerations=[k8s.parse_toleration(text) for text in toleration or []],
        image_pull_secrets=image_pull_secret or [],
        credential_secret=credential_secret,
        registry_url=registry_url,
        model_cache=k8s.parse_model_cache(model_cache) if model_cache is not None else None,
        ready_timeout_seconds=(
            parse_seconds(ready_timeout, field="--ready-timeout", label="--ready-timeout")
            if ready_timeout is not None
            else k8s.DEFAULT_READY_TIMEOUT
        ),
        canary_weight=canary_weight,
        stable_revision=stable_revision,
        host=host,
        istio_gateway=istio_gateway,
    )
    k8s.check_options(options)
    to_stdout = str(output) == "-"
    if not to_stdout and output.exists() and not output.is_dir():
        raise InvalidInputError(
            f"--output {str(output)!r} is a file, not a directory.",
            field="--output",
            value=str(output),
            fix="Name a directory (it is made if missing), e.g. -o k8s/.",
        )
    model, version_ref = parse_model_ref(ref)
    with client(project) as api:
        version = api.get_version(model, version_ref)
    objects = k8s.render(_model_version(version), options)
    if to_stdout:
        typer.echo(yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True), nl=False)
        return
    output.mkdir(parents=True, exist_ok=True)
    for obj in objects:
        path = output / k8s.file_name(obj)
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        typer.echo(f"Wrote {path} ({obj['kind']}).")


def _target(text: str) -> Target:
    from funade.deploy.k8s.render import Target
    from funade.errors import InvalidInputError

    if text not in TARGETS:
        raise InvalidInputError(
            f"--target {text!r} is not a target.",
            field="--target",
            value=text,
            fix=f"Use one of: {', '.join(TARGETS)}.",
        )
    return Target(text)


def _pair(text: str) -> tuple[str, str]:
    from funade.errors import InvalidInputError

    key, equals, value = text.partition("=")
    if not equals:
        raise InvalidInputError(
            f"--node-selector {text!r} is not KEY=VALUE.",
            field="--node-selector",
            value=text,
            fix="Write the node's label as KEY=VALUE, e.g. "
            "'cloud.google.com/gke-accelerator=nvidia-l4'.",
        )
    return key, value


def _model_version(version: VersionOut) -> ModelVersion:
    from funade.deploy.k8s.render import ModelVersion

    git = version.lineage.get("git") or {}
    commit = git.get("commit") if isinstance(git, dict) else None
    return ModelVersion(
        model=version.model,
        version=version.version,
        digest=version.artifact.digest,
        project=version.project,
        flavor=version.flavor,
        git_commit=commit if isinstance(commit, str) else "",
    )
