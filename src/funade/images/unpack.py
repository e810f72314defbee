"""``python -m funade.images.unpack TAR DIGEST DEST``: the step of an image build that puts a
model package in place. The tar must hash to ``DIGEST`` (else the build fails, naming both),
and is extracted with the checks every package tar gets (no absolute paths, no '..', no links
out, no devices) into ``DEST``, readable by all and writable by none but root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from funade.artifacts.digest import parse_digest, sha256_file
from funade.errors import DigestMismatchError, FunadeError


def unpack_package(tar: Path, digest: str, dest: Path) -> Path:
    """Check ``tar`` against ``digest`` and extract it into ``dest`` (which must not exist)."""
    from funade.artifacts.tarball import unpack

    digest = parse_digest(digest)
    actual = sha256_file(tar)
    if actual != digest:
        raise DigestMismatchError(
            f"The package {str(tar)!r} hashes to {actual}, not {digest}.",
            field="digest",
            value=actual,
            fix="Write the build context again with `funade build --containerfile-only`.",
        )
    dest.mkdir(parents=True)
    unpack(tar, dest)
    for root, _dirs, files in os.walk(dest):
        os.chmod(root, 0o755)  # noqa: S103 (the server runs as another user than root)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):  # a link's mode is its target's, inside the package
                os.chmod(path, 0o644)
    return dest


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m funade.images.unpack TAR DIGEST DEST", file=sys.stderr)
        return 2
    try:
        unpack_package(Path(argv[0]), argv[1], Path(argv[2]))
    except FunadeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
