"""Rules for the names people choose: projects, models, aliases, keys.

Names become parts of URLs, file paths and Kubernetes object names, so they are checked once,
here, with messages that say what is allowed.
"""

from __future__ import annotations

import re

from funade.errors import InvalidNameError

# Matched whole (fullmatch): "$" also matches before a final newline, so "churn\n" would pass.
_PROJECT = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MODEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?")
_ALIAS = re.compile(r"[a-z](?:[a-z0-9_-]{0,62})")
_TAG_KEY = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")


def check_project_name(name: str, *, field: str = "project") -> str:
    if not _PROJECT.fullmatch(name):
        raise InvalidNameError(
            f"Project name {name!r} is not allowed.",
            field=field,
            value=name,
            fix="Use 1-63 lowercase letters, digits and '-', starting and ending with a letter "
            "or digit, e.g. 'sandbox'.",
        )
    return name


def check_model_name(name: str, *, field: str = "name") -> str:
    if not _MODEL.fullmatch(name) or ".." in name:
        raise InvalidNameError(
            f"Model name {name!r} is not allowed.",
            field=field,
            value=name,
            fix="Use 1-128 letters, digits, '.', '_' and '-', starting and ending with a letter "
            "or digit (no '/' or '..'), e.g. 'churn'.",
        )
    return name


def check_alias_name(name: str, *, field: str = "alias") -> str:
    if not _ALIAS.fullmatch(name) or name == "latest":
        raise InvalidNameError(
            f"Alias {name!r} is not allowed.",
            field=field,
            value=name,
            fix="An alias starts with a lowercase letter and has up to 63 lowercase letters, "
            "digits, '_' and '-' (not a number, and not 'latest', which always means the newest "
            "version), e.g. 'production' or 'staging'.",
        )
    return name


def check_tags(tags: dict[str, str], *, field: str = "tags") -> dict[str, str]:
    for key, value in tags.items():
        if not _TAG_KEY.fullmatch(key):
            raise InvalidNameError(
                f"Tag key {key!r} is not allowed.",
                field=f"{field}.{key}",
                value=key,
                fix="Tag keys have 1-128 letters, digits and '_.:/-'.",
            )
        if not isinstance(value, str) or len(value) > 512:
            raise InvalidNameError(
                f"Tag {key!r} has a value that is not a string of at most 512 characters.",
                field=f"{field}.{key}",
                value=value,
                fix="Give tag values as short strings, e.g. {'branch': 'main'}.",
            )
    return tags


def parse_model_ref(text: str) -> tuple[str, str]:
    """``churn`` → (churn, latest); ``churn:3`` → (churn, 3); ``churn@production`` → alias."""
    if "@" in text:
        name, _, ref = text.partition("@")
        check_alias_name(ref, field="ref") if ref != "latest" else None
    elif ":" in text:
        name, _, ref = text.rpartition(":")
        if not (ref.isascii() and ref.isdigit()):
            raise InvalidNameError(
                f"Model reference {text!r} has {ref!r} after ':', which is not a version number.",
                field="ref",
                value=text,
                fix="Write 'name:3' for a version, 'name@alias' for an alias, or 'name' for "
                "the latest version.",
            )
    else:
        name, ref = text, "latest"
    check_model_name(name, field="ref")
    return name, ref
