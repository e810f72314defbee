"""One typed settings object, read once by entry points (CLI, SDK) and passed down.

Sources, highest precedence first: arguments given in code, ``FUNADE_*`` environment variables,
the TOML config file (``FUNADE_CONFIG``, else ``$FUNADE_HOME/config.toml`` when it exists),
then the defaults below. Nothing else in funade reads the environment.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from funade.errors import InvalidInputError

DEFAULT_PORT = 8470


class Settings(BaseSettings):
    """funade's configuration. Every field is also the environment variable ``FUNADE_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="FUNADE_",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(
        default=Path("~/.funade"),
        description="Directory for the local SQLite database, artifacts, cache and credentials.",
    )
    config: Path | None = Field(
        default=None,
        description="TOML file with settings; defaults to `$FUNADE_HOME/config.toml` if present.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata store, e.g. "
        "`postgresql+psycopg://user@host/db`. Default: SQLite at `$FUNADE_HOME/funade.db`.",
    )
    artifacts_url: str | None = Field(
        default=None,
        description="fsspec URL of the artifact store, e.g. `s3://bucket/prefix`. "
        "Default: `$FUNADE_HOME/artifacts`.",
    )
    artifacts_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec storage options for the artifact store as JSON, e.g. "
        '`{"endpoint_url": "http://127.0.0.1:9000"}` for an S3-compatible server.',
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Local read-through cache of artifacts, by digest. "
        "Default: `$FUNADE_HOME/cache`.",
    )
    host: str = Field(default="127.0.0.1", description="Address the control plane listens on.")
    port: int = Field(
        default=DEFAULT_PORT, ge=0, le=65535, description="Port of the control plane."
    )
    gateway_port: int = Field(
        default=8480,
        ge=0,
        le=65535,
        description="Port of the gateway `funade up` starts (0 picks a free one).",
    )
    gateway_server: Literal["lean", "uvicorn"] = Field(
        default="lean",
        description="The gateway's HTTP server. `lean`: funade's own HTTP/1.1 server on "
        "httptools and uvloop, which calls the model routes without ASGI (its own CPU per "
        "request about a third of uvicorn's; docs/gateway.md). `uvicorn`: uvicorn on the same "
        "parser and loop.",
    )
    gateway_merge: bool = Field(
        default=True,
        description="Whether the gateway merges concurrent requests to one revision into one "
        "call to its replica (each request keeps its own answer, errors and headers; "
        "docs/gateway.md). Off: every request is its own call, as the benchmark's unmerged "
        "row measures.",
    )
    serve_server: Literal["lean", "uvicorn"] = Field(
        default="lean",
        description="The HTTP server of `funade serve` (every replica) with one worker. `lean`: "
        "funade's own HTTP/1.1 server on httptools and uvloop (the gateway's), which calls the "
        "inference routes without ASGI (docs/serving.md). `uvicorn`: uvicorn on the same parser "
        "and loop. With `--workers` above 1, uvicorn always (its worker processes).",
    )
    gateway_url: str | None = Field(
        default=None,
        description="The gateway's address as browsers and phones reach it (for try-it links "
        "and QR codes), e.g. `http://192.168.1.5:8480`. Default: this host at `gateway_port`.",
    )
    url: str | None = Field(
        default=None,
        description="URL of a running control plane. When set, the SDK and CLI talk to it over "
        "HTTP; when unset they run the same API in-process over `$FUNADE_HOME`.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key for the SDK and CLI. Default: the key `funade up` stored in "
        "`$FUNADE_HOME/credentials`.",
    )
    project: str = Field(
        default="default", description="Project (namespace) the SDK and CLI work in."
    )
    allow_cidrs: list[str] = Field(
        default_factory=list,
        description="If not empty, the control plane answers only clients whose address is in "
        'one of these networks, e.g. `["127.0.0.1/32", "10.0.0.0/8"]`.',
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies (addresses or networks) whose `X-Forwarded-For` and "
        "`X-Forwarded-Proto` headers the control plane and the gateway believe, e.g. "
        '`["10.0.0.5/32"]`. Default: none, so the client\'s address is always the peer that '
        "connected. The client is the right-most forwarded address that is not a trusted proxy.",
    )
    max_artifact_bytes: int = Field(
        default=64 * 1024**3,
        gt=0,
        description="Largest artifact the control plane accepts, in bytes (default 64 GiB).",
    )
    max_json_bytes: int = Field(
        default=16 * 1024**2,
        gt=0,
        description="Largest JSON request body the control plane accepts, in bytes.",
    )

    run_token_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 30,
        description="How long a pipeline run's token lasts at most (it is also revoked when "
        "the run ends). A run that takes longer loses its credential: raise this for it.",
    )
    backend: Literal["local", "podman", "docker", "kubernetes"] = Field(
        default="local",
        description="Where the controller runs replicas. `local`: `funade serve` processes on "
        "this machine. `podman`, `docker`: a container each, from the version's image (built "
        "on demand, docs/containers.md). `kubernetes`: a Deployment and a Service per revision "
        "(docs/kubernetes.md).",
    )
    container_base_image: str | None = Field(
        default=None,
        description="Base image of the images the podman and docker backends build (as "
        "`funade build --base`). Default: `python:3.X-slim` of the Python the model was saved "
        "with; where no registry is in reach, a local one (scripts/podman-setup makes one).",
    )
    container_funade_wheel: Path | None = Field(
        default=None,
        description="A funade wheel those images install funade from (as `funade build "
        "--funade-wheel`), instead of this funade's version from the package index.",
    )
    replica_transport: Literal["unix", "tcp"] = Field(
        default="unix",
        description="How the gateway and the controller reach the replicas of the local and "
        "container backends. `unix`: a Unix socket each, in a private directory "
        "(`$TMPDIR/funade-<hash of home>`, or a directory mounted into the container), with no "
        "port open: each request spares loopback TCP's kernel time (and, for containers, the "
        "bridge and its NAT). `tcp`: a free loopback port each (containers: published on "
        "127.0.0.1). Kubernetes replicas are reached over their Service, always TCP.",
    )
    cpu_scheduling: Literal["batch", "normal"] = Field(
        default="batch",
        description="How Linux schedules funade's servers: `funade up` (its API, controller, "
        "gateway and local replicas), `funade gateway` and `funade serve`. `batch`: "
        "SCHED_BATCH, for throughput: a server woken by a request does not preempt the one "
        "running on its core, so where the gateway and a replica share a core each finishes "
        "what it holds before the other runs (fewer switches, bigger batches; "
        "docs/gateway.md#performance has the figures); a core with nothing else to run still "
        "wakes it at once. `normal`: Linux's default (SCHED_OTHER). Ignored where the "
        "platform has no such policies, and a policy set from outside (real-time, idle) is "
        "left alone.",
    )
    isolation: Literal["auto", "users", "none"] = Field(
        default="auto",
        description="How model code (replicas) and pipelines started by the control plane are "
        "kept from the platform and from each other. `users`: each project's processes run "
        "as a user of their own (needs root); `none`: as the control plane's own user, one "
        "trust domain (the container and Kubernetes backends are the boundary then); `auto`: "
        "`users` when funade runs as root.",
    )
    sandbox_dir: Path | None = Field(
        default=None,
        description="Where projects' processes get their files (read-only model packages, "
        "private home and temp directories). Every directory above it must be searchable by "
        "other users (mode o+x) when isolation is `users`. Default: `$FUNADE_HOME/sandbox`, "
        "or `/var/lib/funade/sandbox-<hash of home>` when the home is not reachable.",
    )
    sandbox_uid_base: int = Field(
        default=2_000_000_000,
        ge=1000,
        le=4_000_000_000,
        description="Project N's processes run as uid and gid `sandbox_uid_base + N` (with "
        "isolation `users`). Pick a range no real user or container mapping uses.",
    )
    kubernetes_kubeconfig: Path | None = Field(
        default=None,
        description="The Kubernetes backend's kubeconfig file. Default: the in-cluster "
        "service account of the pod the controller runs in.",
    )
    kubernetes_context: str | None = Field(
        default=None, description="The kubeconfig context to use. Default: its current one."
    )
    kubernetes_namespace: str | None = Field(
        default=None,
        description="Where the Kubernetes backend makes revisions' objects. Default: the "
        "kubeconfig context's namespace, or the controller's pod's, else `default`.",
    )
    kubernetes_api_url: str | None = Field(
        default=None,
        description="The control plane's URL as the Kubernetes backend's pods reach it, e.g. "
        "`http://funade-control-plane.funade.svc:8470`. Default: the address it listens on.",
    )
    kubernetes_images: str = Field(
        default="funade",
        description="The registry path of the images `funade build --push` made, e.g. "
        "`ghcr.io/acme/models`: a revision runs `<this>/<model>:<version>-<digest>`.",
    )
    kubernetes_runtime_image: str | None = Field(
        default=None,
        description="A runtime image (`funade build --runtime`) for every revision instead: "
        "each pod pulls its version from the control plane at start, with its revision's key.",
    )
    kubernetes_pods: dict[str, Any] = Field(
        default_factory=dict,
        description="What every revision's pods get, as `funade manifests`' options: `cpu`, "
        "`memory`, `gpus`, `node_selector`, `tolerations`, `image_pull_secrets`, "
        "`model_cache`, `ready_timeout_seconds`, and `max_replicas`/`target_cpu` for an HPA.",
    )
    kubernetes_key_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 30,
        description="How long a revision's key (the read key its pods pull their model "
        "with) lasts; the backend renews it when half of that has passed.",
    )

    @field_validator(
        "home",
        "cache_dir",
        "config",
        "sandbox_dir",
        "kubernetes_kubeconfig",
        "container_funade_wheel",
        mode="after",
    )
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("allow_cidrs", "trusted_proxies", mode="after")
    @classmethod
    def _check_cidrs(cls, value: list[str], info: ValidationInfo) -> list[str]:
        import ipaddress

        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(
                    f"{info.field_name} entry {cidr!r} is not an IP network; "
                    "write it like '10.0.0.0/8' or '127.0.0.1/32'"
                ) from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    # Derived locations ---------------------------------------------------------------------

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'funade.db'}"

    @cached_property
    def resolved_artifacts_url(self) -> str:
        return self.artifacts_url or str(self.home / "artifacts")

    @cached_property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or self.home / "cache"

    @property
    def credentials_file(self) -> Path:
        return self.home / "credentials"


def _config_file() -> Path | None:
    # The one place settings read the environment before the model does: to find the file.
    explicit = os.environ.get("FUNADE_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise InvalidInputError(
                f"FUNADE_CONFIG names {str(path)!r}, which is not a file.",
                field="FUNADE_CONFIG",
                value=explicit,
                fix="Point it at a TOML file, or unset it.",
            )
        return path
    home = Path(os.environ.get("FUNADE_HOME", "~/.funade")).expanduser()
    candidate = home / "config.toml"
    return candidate if candidate.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Read settings once; turn validation failures into an error that names field and fix."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        raise InvalidInputError(
            f"Setting {field!r} is invalid: {first['msg']} (got {first.get('input')!r}).",
            field=field,
            value=first.get("input"),
            fix=f"Set FUNADE_{field.split('.')[0].upper()} or `{field}` in the config file "
            "to a valid value (see docs/configuration.md).",
        ) from None
