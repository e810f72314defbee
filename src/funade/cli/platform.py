"""`funade platform manifests -o DIR`: funade itself for a cluster (control plane, gateway,
RBAC, Ingress), written as YAML without applying it (funade.deploy.k8s.platform)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Run funade itself on a cluster.", no_args_is_help=True)


@app.command("manifests")
def manifests(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory to write the YAML files into.")
    ],
    image: Annotated[
        str | None,
        typer.Option(
            help="An image with funade[postgres,s3,kubernetes] (default funade/platform:"
            "<this version>)."
        ),
    ] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Where funade runs.")
    ] = "funade",
    models_namespace: Annotated[
        str | None, typer.Option(help="Where the models' revisions run (default: --namespace).")
    ] = None,
    gateway_replicas: Annotated[int, typer.Option(help="Gateway replicas.")] = 3,
    api_host: Annotated[str, typer.Option(help="The Ingress host of the API.")] = (
        "funade.example.com"
    ),
    gateway_host: Annotated[str, typer.Option(help="The Ingress host of the gateway.")] = (
        "models.example.com"
    ),
    ingress_class: Annotated[str | None, typer.Option(help="The Ingress's class.")] = None,
    tls_secret: Annotated[
        str | None, typer.Option(help="A TLS Secret for both hosts (e.g. cert-manager's).")
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(help="The Ingress controller's network (repeatable; default 10.0.0.0/8)."),
    ] = None,
    images: Annotated[
        str, typer.Option(help="Where `funade build --push` puts models' images.")
    ] = "funade",
) -> None:
    """Write the objects that run funade on a cluster, one YAML file per object; the Secrets
    (database, artifact store) go to DIR/secrets/ with placeholders, to fill in and apply first."""
    import yaml

    from funade import __version__
    from funade.deploy.k8s.platform import PlatformOptions, render_platform
    from funade.deploy.k8s.render import file_name
    from funade.errors import InvalidInputError

    options = PlatformOptions(
        image=image or f"funade/platform:{__version__}",
        namespace=namespace,
        models_namespace=models_namespace,
        gateway_replicas=gateway_replicas,
        api_host=api_host,
        gateway_host=gateway_host,
        ingress_class=ingress_class,
        tls_secret=tls_secret,
        trusted_proxies=tuple(trusted_proxy or ["10.0.0.0/8"]),
        images=images,
    )
    objects, secrets = render_platform(options)
    if output.exists() and not output.is_dir():
        raise InvalidInputError(
            f"--output {str(output)!r} is a file, not a directory.",
            field="--output",
            value=str(output),
            fix="Name a directory (it is made if missing), e.g. -o funade-k8s/.",
        )
    (output / "secrets").mkdir(parents=True, exist_ok=True)
    for obj in secrets:
        path = output / "secrets" / file_name(obj)
        if path.exists():  # filled in already: never replaced by placeholders
            typer.echo(f"Kept {path} (it exists).")
            continue
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        path.chmod(0o600)
        typer.echo(f"Wrote {path} (Secret: fill in REPLACE-ME, apply once).")
    for obj in objects:
        path = output / file_name(obj)
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        typer.echo(f"Wrote {path} ({obj['kind']}).")
