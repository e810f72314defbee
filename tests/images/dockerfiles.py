"""Reading a written Containerfile back with BuildKit's own parser (the ``dockerfile`` package
wraps moby/buildkit's Go parser), and a LABEL value unquoted as BuildKit reads it."""

from __future__ import annotations

from typing import Any

import dockerfile


def parse(text: str) -> list[Any]:
    return list(dockerfile.parse_string(text))


def named(commands: list[Any], cmd: str) -> list[Any]:
    return [c for c in commands if c.cmd == cmd]


def unquote(word: str) -> str:
    """A double-quoted word as BuildKit's shell lexer reads it: ``\\"``, ``\\\\`` and ``\\$``
    stand for the character; any other backslash stays."""
    assert word.startswith('"'), word
    assert word.endswith('"'), word
    out: list[str] = []
    body = word[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body) and body[i + 1] in '"\\$':
            out.append(body[i + 1])
            i += 2
            continue
        assert ch not in '"$', f"unescaped {ch!r} in {word}"
        out.append(ch)
        i += 1
    return "".join(out)


def labels(commands: list[Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for command in named(commands, "LABEL"):
        pairs = command.value
        for key, value in zip(pairs[::2], pairs[1::2], strict=True):
            found[key] = unquote(value)
    return found
