"""Let other users search the directories above this Python, its library and this checkout
(mode o+x), so that funade's isolation by users can run model code as a project's own user.

Run as root on a machine where the interpreter lives under a private directory (pyenv under
/root, say). Directories only get the search bit, never read: nothing in them can be listed.
Prints what it changed; changes nothing when all is reachable already."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path


def main() -> None:
    wanted = [
        Path(os.path.realpath(sys.executable)),
        Path(sys.base_prefix) / "lib",
        Path(sys.prefix),
        Path(__file__).resolve().parents[1],
    ]
    for path in wanted:
        for directory in [*reversed(path.parents), path]:
            if not directory.is_dir():
                continue
            mode = stat.S_IMODE(directory.stat().st_mode)
            if not mode & stat.S_IXOTH:
                directory.chmod(mode | stat.S_IXOTH)
                print(f"open_interpreter: {directory} {mode:o} -> {mode | stat.S_IXOTH:o}")


if __name__ == "__main__":
    main()
