"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): the share of samples in which
each function appears (inclusive) and on top of the stack (self), most first.

    .venv/bin/python -m benchmarks.gateway.topstacks /tmp/prof/v1-inputs-c8x64-gateway.txt
"""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    short = "/".join(path.split("/")[-2:])
    return f"{match['name']} ({short})"


def summary(path: Path, top: int = 30) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    lines = [f"{path.name}: {total} samples", "self %  incl %  function"]
    for name, count in own.most_common(top):
        lines.append(f"{100 * count / total:6.1f}  {100 * inclusive[name] / total:6.1f}  {name}")
    lines.append("-- inclusive")
    for name, count in inclusive.most_common(top):
        lines.append(f"{100 * own[name] / total:6.1f}  {100 * count / total:6.1f}  {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(summary(Path(argument)))
