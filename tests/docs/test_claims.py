"""What the README and docs/*.md claim, read against what ships: every `funade …` command they
name is a command of the real CLI with options it has, and no feature is called future (being
built, coming next, planned…) outside a section marked as the roadmap, nor when it ships."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

import pytest
import typer.main

from funade.cli import app
from tests.docs.markdown import ROOT, all_blocks, all_prose

SHELL_LANGS = {"sh", "bash", "console", "text"}


@dataclass(frozen=True)
class Mention:
    where: str
    command: str


def mentions() -> list[Mention]:
    """Every `funade …` command line in shell blocks and in inline code spans of the prose."""
    found: list[Mention] = []
    for block in all_blocks():
        if block.lang not in SHELL_LANGS:
            continue
        # A line continued with a backslash is one command with the lines after it.
        text = re.sub(r"\\\n\s*", " ", block.text)
        for offset, line in enumerate(text.splitlines(), start=1):
            if block.lang in ("console", "text"):
                if not line.startswith("$ "):
                    continue  # output, not a command
                line = line[2:]
            line = re.sub(r"(^|\s)#\s.*$", "", line)  # a comment
            for piece in re.split(r"&&|;", line):
                if match := re.search(r"(?:^|[\s/])(funade\s+.*)$", piece.strip()):
                    found.append(Mention(f"{block.page}:{block.line + offset}", match.group(1)))
    for prose in all_prose():
        for span in re.findall(r"`(funade\s[^`]+)`", prose.text):
            found.append(Mention(f"{prose.page}:{prose.line}", span))
    return found


def _options(command: Any) -> set[str]:
    return {
        opt
        for param in command.params
        if param.param_type_name == "option"
        for opt in [*param.opts, *param.secondary_opts]
    } | {"--help"}


def problems(command_line: str) -> list[str]:
    """What in ``funade …`` the CLI does not have: a command, a subcommand or an option.

    Synopsis notation is read as the docs use it: ``status|promote|abort`` names alternatives,
    ``[--last 5m]`` an optional part, ``--public/--private`` both forms of a flag, and
    ``list | show churn`` alternatives of one group (a ``|`` followed by anything else is a
    shell pipe, the end of the command; a backslash before ``|`` escapes it in a table)."""
    text = command_line.replace("\\|", "|").replace("[", " ").replace("]", " ")
    try:
        tokens = shlex.split(text)
    except ValueError:  # a quote closed on a later line
        tokens = text.split()
    assert tokens[0] == "funade", command_line
    root = typer.main.get_command(app)
    found: list[str] = []
    group: Any = root
    leaves: list[Any] = []
    expect_command = True
    for token in tokens[1:]:
        if token == "|":
            expect_command = True
            continue
        if token.startswith("-") and not re.fullmatch(r"-\d.*", token):
            expect_command = False
            for name in token.split("=", 1)[0].split("/"):
                if leaves and not any(name in _options(leaf) for leaf in leaves):
                    found.append(f"`{' '.join(c.name for c in leaves)}` has no option {name}")
            continue
        if not expect_command:
            continue  # an argument or an option's value
        targets = leaves[0] if leaves and hasattr(leaves[0], "commands") else group
        if not hasattr(targets, "commands"):
            break
        names = token.split("|")
        if not all(name in targets.commands for name in names):
            if leaves and targets is group:
                break  # `| jq …`: a pipe to another program
            missing = [name for name in names if name not in targets.commands]
            found.append(
                f"`{targets.name}` has no command {', '.join(missing)} "
                f"(it has {', '.join(sorted(targets.commands))})"
            )
            break
        if leaves and hasattr(leaves[0], "commands"):
            group = leaves[0]
        leaves = [targets.commands[name] for name in names]
        expect_command = hasattr(leaves[0], "commands")
    return found


def test_every_funade_command_the_docs_name_exists_with_its_options() -> None:
    seen = mentions()
    assert len(seen) > 50, "the extraction found too few commands to be reading the docs"
    wrong = [
        f"{mention.where}: `{mention.command}`: {problem}"
        for mention in seen
        for problem in problems(mention.command)
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("funade models lst", "`models` has no command lst"),
        ("funade deploy churn --verison 2", "`deploy` has no option --verison"),
        ("funade rollout status|resume|abort churn", "`rollout` has no command resume"),
        ("funade deployments lst | show churn", "`deployments` has no command lst"),
        ("funade projects update x --trust-code/--no-trust", "has no option --no-trust"),
        ("funade traffic churn rev-3=90 [--shadow 4 | --no-shade]", "has no option --no-shade"),
        ("funade dashboard", "`funade` has no command dashboard"),
    ],
)
def test_a_command_or_option_that_does_not_exist_is_named(command: str, problem: str) -> None:
    found = problems(command)
    assert len(found) == 1, found
    assert problem in found[0]


@pytest.mark.parametrize(
    "command",
    [
        "funade deployments list | show churn | stats churn [--last 5m] | delete churn",
        "funade traffic churn rev-3=90 rev-4=10 [--shadow 4 | --no-shadow]",
        "funade models versions churn --metric 'auc>0.9' --json | jq '.[0]'",
        "funade audit --json | jq .",
        "funade serve churn[:3 \\| @production] [--port P]",
        "funade models versions churn [--archived/--active]",
        "funade keys create ci --scope write --project default --expires 90d",
    ],
)
def test_synopsis_notation_and_pipes_are_read_as_the_docs_mean_them(command: str) -> None:
    assert problems(command) == []


FUTURE = re.compile(
    r"being built|coming soon|\b(?:built|added|comes?|coming|arrives?|done) next\b"
    r"|\bplanned\b|\bwill (?:be (?:added|built|supported|available|implemented)|add|support)\b"
    r"|\blater issues?\b|\bfuture (?:issues?|releases?|versions?)\b",
    re.IGNORECASE,
)
ROADMAP = re.compile(r"roadmap|not yet", re.IGNORECASE)
"""A heading that marks its section as what does not ship yet."""

SHIPPED = {
    "dashboard": "src/funade/ui",
    "gateway": "src/funade/gateway",
    "deployment": "src/funade/deploy",
    "verif": "src/funade/deploy/verify.py",
    "graphql": "src/funade/api/graph.py",
    "pipeline": "src/funade/pipelines",
    "schedule": "src/funade/pipelines/schedules.py",
}
"""Features that ship (each with where its code is): never called future, roadmap or not."""


def future_claims(text: str, headings: tuple[str, ...]) -> list[str]:
    if not FUTURE.search(text):
        return []
    shipped = [word for word in SHIPPED if word in text.lower()]
    if shipped:
        return [f"calls {', '.join(shipped)} future, but it ships"]
    if not any(ROADMAP.search(heading) for heading in headings):
        return ["a future claim outside a section marked as the roadmap"]
    return []


def test_the_shipped_features_are_where_the_list_says() -> None:
    missing = [path for path in SHIPPED.values() if not (ROOT / path).exists()]
    assert not missing


def test_no_feature_is_called_future_outside_the_roadmap_or_when_it_ships() -> None:
    wrong = [
        f"{line.page}:{line.line}: {problem}: {line.text.strip()!r}"
        for line in all_prose()
        for problem in future_claims(line.text, line.headings)
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("text", "headings", "problem"),
    [
        ("The web dashboard is being built next (see the issues).", ("funade",), "ships"),
        ("Kubernetes will be supported.", ("Deployments",), "outside a section"),
        ("The gateway comes next.", ("Roadmap",), "calls gateway future"),
    ],
)
def test_future_claims_are_found(text: str, headings: tuple[str, ...], problem: str) -> None:
    [found] = future_claims(text, headings)
    assert problem in found


def test_a_future_claim_in_the_roadmap_about_what_does_not_ship_is_fine() -> None:
    assert future_claims("Kubernetes will be supported.", ("Architecture", "Roadmap")) == []
