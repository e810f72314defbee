"""A replica's Unix socket: only funade's user (and the replica) can connect, every request but
a probe needs the replica's token over it too, and a socket directory that someone else made,
or a path too long for a socket, is refused with the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from funade.deploy.backends.sockets import SocketDirs, socket_base
from funade.deploy.replicaurl import ReplicaHTTP
from funade.errors import InvalidInputError
from funade.serving.server import bind_unix
from tests.deploy.test_replicaurl import TOKEN, served  # noqa: F401 - a shared fixture

SETPRIV = shutil.which("setpriv")
NOBODY = 65534
CONNECT = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
BODY = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]}


def connect_as_nobody(path: Path) -> subprocess.CompletedProcess[str]:
    """Connect to the socket at ``path`` as uid/gid 65534 with no groups (system Python: the
    one other users can run)."""
    assert SETPRIV is not None
    return subprocess.run(
        [
            SETPRIV,
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            CONNECT,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def base() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sec-") as directory:
        yield Path(directory) / "funade-base"


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None or not os.path.exists("/usr/bin/python3"),
    reason="needs root, setpriv and /usr/bin/python3 to act as another user",
)


@needs_root
@pytest.mark.parametrize("shared", [False, True], ids=["0700", "0711"])
def test_another_user_cannot_connect_to_a_replicas_socket(base: Path, shared: bool) -> None:
    dirs = SocketDirs(base, shared=shared)
    path = dirs.make("churn-r1-abcdef")
    listener = bind_unix(str(path))
    listener.listen()
    try:
        os.chmod(base.parent, 0o755)  # noqa: S103 - the temporary directory above is not what is tested
        refused = connect_as_nobody(path)
        assert refused.returncode != 0
        assert "PermissionError" in refused.stderr, refused.stderr
        # Even with the directories opened, the socket's own mode (0600) refuses them.
        os.chmod(base, 0o755)  # noqa: S103 - opened on purpose, to test the next layer
        os.chmod(path.parent, 0o755)  # noqa: S103
        refused = connect_as_nobody(path)
        assert "PermissionError" in refused.stderr, refused.stderr
        # The check can fail: with the socket opened too, the same user connects.
        os.chmod(path, 0o666)  # noqa: S103
        opened = connect_as_nobody(path)
        assert opened.returncode == 0, opened.stderr
    finally:
        listener.close()


def test_the_socket_and_its_directories_have_private_modes(base: Path) -> None:
    dirs = SocketDirs(base, shared=False)
    path = dirs.make("churn-r1-abcdef")
    listener = bind_unix(str(path))
    try:
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        assert oct(path.parent.stat().st_mode & 0o777) == oct(0o700)
        assert oct(base.stat().st_mode & 0o777) == oct(0o700)
        assert base.stat().st_uid == os.geteuid()
    finally:
        listener.close()


@pytest.mark.parametrize("token", [None, "not-the-token", f"{TOKEN}x"])
def test_a_missing_or_wrong_token_over_the_socket_is_refused(
    served: tuple[str, int],  # noqa: F811
    token: str | None,
) -> None:
    url, _ = served
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    with ReplicaHTTP(10) as http:
        for method, path in (
            ("POST", "/v2/models/calc/infer"),
            ("GET", "/v2/models/calc"),
            ("GET", "/metrics"),
        ):
            answer = http.request(method, url, path, json=BODY, headers=headers)
            assert answer.status_code == 401, (path, answer.text)
            assert answer.json()["code"] == "unauthenticated"
        right = http.post(
            url, "/v2/models/calc/infer", json=BODY, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert right.status_code == 200, "the check can fail: the right token opens it"


@needs_root
def test_a_base_directory_someone_else_made_is_refused(base: Path) -> None:
    base.mkdir(mode=0o777)
    os.chown(base, NOBODY, NOBODY)
    with pytest.raises(InvalidInputError) as raised:
        SocketDirs(base, shared=False).make("churn-r1-abcdef")
    error = raised.value
    assert error.field == "replica_transport"
    assert error.message == (
        f"{str(base)!r} is not a directory of funade's user (uid 0): someone else made it "
        f"(uid {NOBODY}), so replicas' sockets cannot go there."
    )
    assert f"Remove {base}" in (error.fix or "")
    assert not list(base.iterdir()), "nothing was made in it"


def test_a_symlink_in_place_of_the_base_directory_is_refused(base: Path, tmp_path: Path) -> None:
    base.parent.mkdir(exist_ok=True)
    base.symlink_to(tmp_path)
    with pytest.raises(InvalidInputError, match="is not a directory of funade's user"):
        SocketDirs(base, shared=False).make("churn-r1-abcdef")
    assert list(tmp_path.iterdir()) == []


def test_a_socket_path_too_long_is_refused_naming_the_fix() -> None:
    long = Path("/tmp") / ("d" * 90)
    with pytest.raises(InvalidInputError) as raised:
        SocketDirs(socket_base(long, Path("/home/x")), shared=False)
    error = raised.value
    assert (error.field, error.value) == ("replica_transport", "unix")
    assert error.message.startswith(f"Replicas' Unix sockets under '{long}/funade-")
    assert error.message.endswith(
        "would have paths of 135 bytes, more than the 107 a Unix socket can have."
    )
    assert error.fix == (
        "Set TMPDIR to a shorter directory (e.g. /tmp), or FUNADE_REPLICA_TRANSPORT=tcp to reach "
        "replicas over loopback TCP."
    )


def test_funade_serve_refuses_a_socket_path_too_long_or_a_file_in_its_place(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "FUNADE_HOME": str(tmp_path / "home")}

    def serve(path: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "funade", "serve", "calc:1", "--uds", path],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    long = "/tmp/" + "s" * 120
    done = serve(long)
    assert done.returncode == 2, done.stdout + done.stderr
    said = " ".join(done.stderr.split())
    assert f"The socket path '{long}' is not an absolute path of at most 107 bytes" in said
    assert "(it has 125)" in said
    occupied = tmp_path / "file"
    occupied.write_text("keep me")
    done = serve(str(occupied))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"'{occupied}' exists and is not a socket." in " ".join(done.stderr.split())
    assert occupied.read_text() == "keep me"
