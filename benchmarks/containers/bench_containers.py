"""Containers: a replica started in a container against a local process, and the image build of
a small scikit-learn model with the builder's cache warm, in one run (issue 22's targets).

    .venv/bin/python -m benchmarks.containers.bench_containers --rounds 5
    .venv/bin/python -m benchmarks.containers.bench_containers --rounds 1 --no-results  # a look

What it does (Linux, root, podman as ``scripts/podman-setup`` leaves it; its containers.conf
is used when ``CONTAINERS_CONF`` is not set):

1. fits a LogisticRegression (``benchmarks.serving.models``: 100 rows, 20 features), saves it as
   a funade package (the sklearn flavor, a skops file) and packs it; a wheel of this checkout
   is built for the image (funade is not on the package index here);
2. **image build**: ``funade.images.ondemand.ensure_image`` (what the container backend runs on
   the first start of a version) once, to fill the builder's cache (the ``pip install`` layer
   of funade and scikit-learn; its time is printed as the cold build when the cache was
   empty), then ``--rounds`` times: the version's image removed (``podman rmi``), built again.
   Every layer but the model's comes from the cache, as for a new version of a model of the
   same flavor and pins. Target: 30 s or less;
3. **replica start**: ``--rounds`` pairs, in alternating order, of the container backend's
   ``start`` to READY (its health check answered 200, polled every 20 ms) and the local
   backend's, on the same package; then each replica stopped. Target: container ≤ 1.5x local
   (medians).

The machine is shared and noisy: read the ratios within a run, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import funade
from benchmarks.registry import harness
from funade.artifacts.tarball import pack_directory
from funade.deploy.backends import ReplicaSpec, ReplicaState
from funade.deploy.backends.container import ContainerBackend
from funade.deploy.backends.local import LocalBackend
from funade.images.containerfile import default_tag
from funade.images.engine import ContainerEngine
from funade.images.ondemand import ensure_image
from funade.sandbox.layout import Sandbox
from funade.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).with_name("RESULTS.md")
BASE = os.environ.get("FUNADE_BASE_IMAGE", "localhost/funade-base:bookworm-py311")
CONF = Path(os.environ.get("FUNADE_CI_CACHE", "/var/cache/funade-ci")) / "containers.conf"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="builds and start pairs")
    parser.add_argument("--base", default=BASE, help="base image (scripts/podman-setup's)")
    parser.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    return parser.parse_args()


class Package:
    """The model's package tar, served by digest as the artifact store would."""

    def __init__(self, tar: Path, digest: str) -> None:
        self.tar, self.digest = tar, digest

    def open(self, digest: str) -> Iterator[bytes]:
        assert digest == self.digest, digest
        with open(self.tar, "rb") as handle:
            while block := handle.read(1 << 20):
                yield block


def prepare(work: Path) -> tuple[Package, Path]:
    """The LogisticRegression's package and a wheel of this checkout."""
    from sklearn.linear_model import LogisticRegression

    from benchmarks.serving.models import dataset
    from funade.registry.package import build_package

    x, y = dataset()
    build_package(LogisticRegression().fit(x, y), work / "lr", sample_input=x[:2])
    info = pack_directory(work / "lr", work / "lr.tar")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work), str(ROOT)],
        check=True,
    )
    (wheel,) = work.glob("funade-*.whl")
    return Package(work / "lr.tar", info.digest), wheel


def build_once(
    engine: ContainerEngine, package: Package, wheel: Path, base: str, work: Path
) -> float:
    began = time.perf_counter()
    ensure_image(
        engine,
        project="default",
        model="lr",
        version=1,
        digest=package.digest,
        fetch=package.open,
        scratch=work / "builds",
        log=work / "builds.log",
        funade_version=funade.__version__,
        base=base,
        funade_wheel=wheel,
    )
    return time.perf_counter() - began


def to_ready(backend: ContainerBackend | LocalBackend, spec: ReplicaSpec) -> tuple[float, str]:
    """Seconds from ``start`` to READY, and the replica's id."""
    began = time.perf_counter()
    replica = backend.start(spec)
    deadline = time.monotonic() + 120
    while True:
        seen = {r.id: r for r in backend.replicas()}.get(replica.id)
        if seen is not None and seen.state is ReplicaState.READY:
            return time.perf_counter() - began, replica.id
        if seen is None or seen.state in (ReplicaState.EXITED, ReplicaState.FAILED):
            raise RuntimeError(f"{replica.id} did not start: {seen}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{replica.id} was not ready in 120 s")
        time.sleep(0.02)


def main() -> None:
    args = parse_args()
    if "CONTAINERS_CONF" not in os.environ and CONF.is_file():
        os.environ["CONTAINERS_CONF"] = str(CONF)
    engine = ContainerEngine.find("podman")
    with tempfile.TemporaryDirectory(prefix="bench-containers-") as scratch:
        work = Path(scratch)
        work.chmod(0o711)  # as root, the local replica runs as its project's user
        package, wheel = prepare(work)
        tag = default_tag("lr", 1, package.digest)
        engine.run("rmi", "--force", tag, check=False)
        first = build_once(engine, package, wheel, args.base, work)
        print(f"first build (fills the cache if it was empty): {first:.1f} s")
        builds = []
        for _ in range(args.rounds):
            engine.run("rmi", "--force", tag)
            builds.append(build_once(engine, package, wheel, args.base, work))
            print(f"build, cache warm: {builds[-1]:.1f} s")

        settings = Settings(home=work / "home", sandbox_dir=work / "sandbox")
        container = ContainerBackend(
            engine,
            work / "containers",
            owner=f"bench-{os.getpid()}",
            fetch=package.open,
            funade_version=funade.__version__,
            base_image=args.base,
            funade_wheel=wheel,
        )
        local = LocalBackend(
            work / "replicas", sandbox=Sandbox.from_settings(settings), fetch=package.open
        )
        spec = ReplicaSpec(deployment="lr", revision=1, source="lr:1", digest=package.digest)
        starts: dict[str, list[float]] = {"container": [], "local": []}
        try:
            for round_ in range(args.rounds):
                order: list[tuple[str, ContainerBackend | LocalBackend]] = [
                    ("container", container),
                    ("local", local),
                ]
                for name, backend in order if round_ % 2 == 0 else order[::-1]:
                    took, replica_id = to_ready(backend, spec)
                    starts[name].append(took)
                    backend.stop(replica_id, grace_seconds=5)
                print(
                    f"start to ready: container {starts['container'][-1]:.2f} s, "
                    f"local {starts['local'][-1]:.2f} s"
                )
        finally:
            container.stop_all(grace_seconds=5)
            local.stop_all(grace_seconds=5)
            container.close()
            local.close()
            engine.run("rmi", "--force", tag, check=False)

    report(first, builds, starts, args)


def report(
    first: float, builds: list[float], starts: dict[str, list[float]], args: argparse.Namespace
) -> None:
    def seconds(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s ({min(values):.2f} to {max(values):.2f})"

    ratio = statistics.median(starts["container"]) / statistics.median(starts["local"])
    warm = statistics.median(builds)
    rows = [
        ["first build in this run (cold only if the cache was empty)", f"{first:.1f} s", ""],
        [f"image build, cache warm (median of {len(builds)})", seconds(builds),
         f"≤ 30 s: {'met' if warm <= 30 else 'NOT met'}"],
        [f"replica start to ready, container (median of {len(starts['container'])})",
         seconds(starts["container"]), ""],
        [f"replica start to ready, local process (median of {len(starts['local'])})",
         seconds(starts["local"]), ""],
        ["container / local start", f"{ratio:.2f}x",
         f"≤ 1.5x: {'met' if ratio <= 1.5 else 'NOT met'}"],
    ]  # fmt: skip
    body = f"{harness.machine()}\n\n" + harness.table(["measure", "result", "target"], rows)
    print("\n" + body)
    if not args.no_results:
        with mock.patch.object(harness, "RESULTS", RESULTS):
            harness.write_section("containers", "Replica start and image build", body)


if __name__ == "__main__":
    main()
