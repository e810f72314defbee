"""The README and docs/*.md read as the tests of tests/docs/ need them: fenced code blocks (with
the marker comment before each), prose by section, and the inline code spans of the prose."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^( *)```([\w-]*)\s*$")
_MARKER = re.compile(r"^<!--\s*example:\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its page, the line of its opening fence, its language and text."""

    page: str
    line: int
    lang: str
    text: str
    marker: str | None
    """What the ``<!-- example: ... -->`` comment right before the block says, if there is one."""

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.text.splitlines() if line.strip()), "")

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.lang or 'no language'}: {self.first_line[:50]!r})"


@dataclass(frozen=True)
class Prose:
    """One line of text outside code blocks, and the headings it is under."""

    page: str
    line: int
    text: str
    headings: tuple[str, ...]


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def parse(path: Path) -> tuple[list[Block], list[Prose]]:
    blocks: list[Block] = []
    prose: list[Prose] = []
    headings: list[tuple[int, str]] = []
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence:
            indent, lang = fence.groups()
            start = index
            index += 1
            body: list[str] = []
            while index < len(lines) and lines[index].strip() != "```":
                body.append(lines[index].removeprefix(indent))
                index += 1
            before = next((x.strip() for x in reversed(lines[:start]) if x.strip()), "")
            marker = _MARKER.match(before)
            blocks.append(
                Block(
                    relative(path),
                    start + 1,
                    lang,
                    "\n".join(body) + "\n",
                    marker.group(1) if marker else None,
                )
            )
        else:
            heading = re.match(r"^(#+)\s+(.*)$", line)
            if heading:
                level = len(heading.group(1))
                headings = [h for h in headings if h[0] < level] + [(level, heading.group(2))]
            prose.append(Prose(relative(path), index + 1, line, tuple(h for _, h in headings)))
        index += 1
    return blocks, prose


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in parse(page)[0]]


def all_prose() -> list[Prose]:
    return [line for page in PAGES for line in parse(page)[1]]
