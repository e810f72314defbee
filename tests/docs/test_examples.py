"""Every example of the README and docs/*.md either runs here, against a real platform, or is
listed in docs/examples-not-run.md with the reason it cannot.

A runnable block is marked by an ``<!-- example: run -->`` comment on the line before it. The
platform is `funade up --demo` (control plane, gateway, the demo's ``churn@production``
deployed), started once for the module; blocks run in page order, as a reader would run them,
with ``FUNADE_URL``, ``FUNADE_API_KEY`` (the admin key) and ``PREDICT_KEY`` (the key the demo
printed) in their environment. The addresses the docs use are the platform's defaults, replaced
by where the test's processes listen: ``127.0.0.1:8470`` (the control plane), ``127.0.0.1:8480``
(the gateway), and ``localhost:8080`` / ``localhost:8081``, which are `funade serve` of the
models in ``SERVED``, started when a block first needs one.

- ``sh`` blocks: each command runs with bash (``set -euo pipefail``). Lines after a command
  that are not a command are what it prints: compared as JSON when they parse as JSON (an
  object shown may leave out fields; numbers match to the digits shown), as text otherwise.
- ``python`` blocks run as a script in a fresh interpreter and must exit 0.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.docs.markdown import ROOT, Block, all_blocks
from tests.security.platform import Up, funade_up

NOT_RUN = ROOT / "docs" / "examples-not-run.md"
SERVED = {"localhost:8080": "churn@production", "localhost:8081": "churn-fr@production"}
"""The model servers the docs' examples call, by the address they use."""

COMMAND = re.compile(r"\s*(?:curl|funade|python3?|export|jq|cat|echo)\b")


def not_run() -> dict[str, dict[str, str]]:
    """docs/examples-not-run.md: page → (start of the block's first line → why it is not run)."""
    listed: dict[str, dict[str, str]] = {}
    page = ""
    for line in NOT_RUN.read_text().splitlines():
        if heading := re.fullmatch(r"## (\S+)", line):
            page = heading.group(1)
            listed[page] = {}
        elif line.startswith("- "):
            item = re.fullmatch(r"- `([^`]+)`: (.+)", line)
            assert item, f"{line!r} is not '- `<start of the first line>`: <why>'"
            assert page, f"{line!r} is under no page heading"
            assert item.group(1) not in listed[page], f"{page}: {item.group(1)!r} twice"
            listed[page][item.group(1)] = item.group(2)
    return listed


def _listed_reason(block: Block, listed: dict[str, dict[str, str]]) -> str | None:
    matches = [
        r for start, r in listed.get(block.page, {}).items() if block.first_line.startswith(start)
    ]
    assert len(matches) <= 1, f"{block} matches several entries of {NOT_RUN.name}"
    return matches[0] if matches else None


RUNNABLE = [block for block in all_blocks() if block.marker is not None]


def test_every_example_is_run_or_listed_with_the_reason() -> None:
    listed = not_run()
    unaccounted = []
    for block in all_blocks():
        reason = _listed_reason(block, listed)
        if block.marker is not None:
            assert block.marker == "run", f"{block}: unknown marker {block.marker!r}"
            assert block.lang in ("sh", "python"), f"{block}: only sh and python blocks run"
            assert reason is None, f"{block} is run, and listed as not run"
        elif reason is None:
            unaccounted.append(str(block))
    assert not unaccounted, (
        f"examples neither marked <!-- example: run --> nor listed in {NOT_RUN.name}:\n"
        + "\n".join(unaccounted)
    )


def test_every_listed_example_still_exists() -> None:
    blocks = all_blocks()
    stale = [
        f"{page}: {start!r}"
        for page, entries in not_run().items()
        for start in entries
        if not any(b.page == page and b.first_line.startswith(start) for b in blocks)
    ]
    assert not stale, f"{NOT_RUN.name} lists examples that are gone:\n" + "\n".join(stale)


def test_the_readme_deployments_and_serving_pages_have_examples_that_run() -> None:
    for page in ("README.md", "docs/deployments.md", "docs/serving.md"):
        assert any(b.page == page for b in RUNNABLE), f"no example of {page} runs"


# The runner.


@dataclass
class Docs:
    """The platform the examples run against, and the model servers started for them."""

    up: Up
    env: dict[str, str]
    cwd: Path
    stack: ExitStack
    addresses: dict[str, str] = field(default_factory=dict)

    def address(self, doc_address: str) -> str:
        if doc_address not in self.addresses:
            self.addresses[doc_address] = self.stack.enter_context(
                _serve(SERVED[doc_address], self.env, self.cwd)
            )
        return self.addresses[doc_address]

    def substitute(self, text: str) -> str:
        text = text.replace("http://127.0.0.1:8470", self.up.url)
        text = text.replace("http://127.0.0.1:8480", self.up.gateway_url)
        for doc_address in SERVED:
            if doc_address in text:
                text = text.replace(doc_address, self.address(doc_address))
        return text


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory, sandboxes: Path) -> Iterator[Docs]:
    base = tmp_path_factory.mktemp("docs-examples")
    sandbox = str(sandboxes / "docs-examples")
    with ExitStack() as stack:
        up = stack.enter_context(funade_up(base / "home", "--demo", FUNADE_SANDBOX_DIR=sandbox))
        printed = "".join(up.seen)
        predict_key = re.search(r"Bearer (fnd_\S+)'", printed)
        assert predict_key, printed
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            HOME=str(base),
            FUNADE_HOME=str(base / "client-home"),
            FUNADE_SANDBOX_DIR=sandbox,
            FUNADE_URL=up.url,
            FUNADE_API_KEY=up.key,
            PREDICT_KEY=predict_key.group(1),
        )
        yield Docs(up, env, base, stack)


@contextmanager
def _serve(source: str, env: dict[str, str], cwd: Path) -> Iterator[str]:
    """`funade serve SOURCE --port 0` against the platform; its ``host:port`` once ready."""
    log = cwd / f"serve-{source.replace('@', '-')}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "funade", "serve", source, "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )
    try:
        deadline = time.monotonic() + 120
        address = None
        while True:
            printed = log.read_text(errors="replace")
            assert process.poll() is None, printed
            assert time.monotonic() < deadline, printed
            if address is None and (match := re.search(r"at http://(\S+?:\d+)", printed)):
                address = match.group(1)
            if address is not None:
                try:
                    if httpx.get(f"http://{address}/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _open(lines: list[str]) -> bool:
    """Whether a command goes on past these lines: a quote, a backslash or a heredoc open."""
    text = "\n".join(lines)
    if text.rstrip().endswith("\\"):
        return True
    if heredoc := re.search(r"<<-?\s*'?(\w+)'?", text):
        return not any(line.strip() == heredoc.group(1) for line in lines[1:])
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return True
    return False


def commands(text: str) -> list[tuple[str, str]]:
    """An ``sh`` block as (command, what it prints) pairs; comments between commands dropped."""
    pairs: list[tuple[list[str], list[str]]] = []
    for line in text.splitlines():
        if pairs and not pairs[-1][1] and _open(pairs[-1][0]):
            pairs[-1][0].append(line)
        elif not line.strip() or line.lstrip().startswith("#"):
            continue
        elif COMMAND.match(line):
            pairs.append(([line], []))
        else:
            assert pairs, f"output before any command: {line!r}"
            pairs[-1][1].append(line)
    return [("\n".join(command), "\n".join(printed)) for command, printed in pairs]


def differences(actual: Any, expected: Any, where: str = "") -> list[str]:
    """How ``actual`` differs from what the docs show: objects may leave out fields; a number
    matches to the digits shown (``0.0329`` is 0.03285 to 0.03295)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where or 'the answer'}: {actual!r}, the docs show an object"]
        return [
            problem
            for key, value in expected.items()
            for problem in (
                differences(actual[key], value, f"{where}.{key}")
                if key in actual
                else [f"{where}.{key} is missing"]
            )
        ]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: {actual!r}, the docs show {expected!r}"]
        return [
            p
            for i, (a, e) in enumerate(zip(actual, expected, strict=True))
            for p in differences(a, e, f"{where}[{i}]")
        ]
    if isinstance(expected, _Number):
        if isinstance(actual, int | float) and not isinstance(actual, bool):
            digits = len(expected.text.split(".", 1)[1]) if "." in expected.text else 0
            if math.isclose(actual, float(expected.text), abs_tol=0.5001 * 10**-digits):
                return []
        return [f"{where}: {actual!r}, the docs show {expected.text}"]
    if actual != expected:
        return [f"{where}: {actual!r}, the docs show {expected!r}"]
    return []


@dataclass(frozen=True)
class _Number:
    text: str
    """As the docs write it: ``0.0329`` is 0.03285 to 0.03295."""


def _shown(text: str) -> Any:
    """JSON as the docs show it, each number with the digits it was written with."""
    return json.loads(
        text,
        parse_float=_Number,
        parse_int=_Number,
    )


def check_printed(actual: str, expected: str, where: str) -> None:
    try:
        shown = _shown(expected)
    except json.JSONDecodeError:
        assert actual.strip() == expected.strip(), f"{where} printed:\n{actual}"
        return
    try:
        answer = json.loads(actual)
    except json.JSONDecodeError:
        pytest.fail(f"{where} printed no JSON:\n{actual}")
    wrong = differences(answer, shown)
    assert not wrong, f"{where} printed {actual}\n" + "\n".join(wrong)


def run_block(block: Block, docs: Docs) -> None:
    text = docs.substitute(block.text)
    if block.lang == "python":
        result = subprocess.run(
            [sys.executable, "-c", text],
            env=docs.env,
            cwd=docs.cwd,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, f"{block} failed:\n{result.stdout}\n{result.stderr}"
        return
    for command, expected in commands(text):
        result = subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{command}"],
            env=docs.env,
            cwd=docs.cwd,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        where = f"{block}: `{command.splitlines()[0]}`"
        assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"
        if expected:
            check_printed(result.stdout, expected, where)


@pytest.mark.parametrize("block", RUNNABLE, ids=str)
def test_the_example_runs(block: Block, docs: Docs) -> None:
    run_block(block, docs)


# The runner's own reading, without a platform.


def test_a_block_is_read_as_commands_and_what_they_print() -> None:
    text = """# a comment
curl -s x -d '{
  "a": 1
}'
{"a": 1}
# between
curl -s y \\
  --data-binary @- <<'EOF'
{"b": 2}
EOF
curl -s z
"""
    assert commands(text) == [
        ("curl -s x -d '{\n  \"a\": 1\n}'", '{"a": 1}'),
        ("curl -s y \\\n  --data-binary @- <<'EOF'\n{\"b\": 2}\nEOF", ""),
        ("curl -s z", ""),
    ]


@pytest.mark.parametrize(
    ("actual", "shown", "problem"),
    [
        ({"a": 0.0335}, '{"a": 0.0329}', ".a: 0.0335, the docs show 0.0329"),
        ({"a": 2}, '{"a": 1}', ".a: 2, the docs show 1"),
        ({"b": 1}, '{"a": 1}', ".a is missing"),
        ({"a": [1, 2]}, '{"a": [1]}', ".a: [1, 2], the docs show"),
        ({"a": "x"}, '{"a": "y"}', ".a: 'x', the docs show 'y'"),
        ({"a": True}, '{"a": 1}', ".a: True, the docs show 1"),
    ],
)
def test_an_answer_that_differs_from_the_page_is_named(
    actual: Any, shown: str, problem: str
) -> None:
    [found] = differences(actual, _shown(shown))
    assert problem in found


def test_an_answer_matches_to_the_digits_shown_and_may_have_more_fields() -> None:
    assert (
        differences({"a": 0.03287, "b": 1, "c": [1, 2]}, _shown('{"a": 0.0329, "c": [1, 2]}')) == []
    )
