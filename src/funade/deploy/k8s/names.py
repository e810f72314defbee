"""Kubernetes' rules for names and labels, and how funade's names are made to fit them.

A model may be called ``Churn_Model.v2`` (128 characters of letters, digits, ``.``, ``_``,
``-``); Kubernetes object names are DNS-1035 labels (Services, Knative Services: 1-63 lowercase
letters, digits and ``-``, starting with a letter) and label values are at most 63 characters.
A name funade *derives* (from the model's) is made to fit: lowercased, every run of other
characters made one ``-``, cut to length, and, when that changed it, the first 8 hex of the
original's sha256 appended, so two models never share an object name. A name a person *gives*
(``--name``, ``--namespace``, a Secret) is checked and refused with the rule, never rewritten:
they meant that name. The original is always kept in an annotation.
"""

from __future__ import annotations

import hashlib
import re

from funade.errors import InvalidNameError

# RFC 1035 label as Kubernetes checks it (IsDNS1035Label): Service names.
DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
# RFC 1123 label (IsDNS1123Label): namespaces.
DNS1123_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
# RFC 1123 subdomain (IsDNS1123Subdomain): Secrets, claims; at most 253 characters.
DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
)
# A label value (IsValidLabelValue): empty, or 1-63 of these, alphanumeric at both ends.
LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
# A qualified label key: [DNS-1123 subdomain prefix/]name.
_LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def _fitted(text: str, limit: int) -> str:
    """``text`` made a DNS-1035 label of at most ``limit`` characters (see the module)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if slug and not slug[0].isalpha():
        slug = f"m-{slug}"
    if slug == text and len(slug) <= limit:
        return slug
    suffix = hashlib.sha256(text.encode()).hexdigest()[:8]
    head = slug[: limit - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}" if head else f"m-{suffix}"


def object_name(text: str, *, limit: int = 63) -> str:
    """A DNS-1035 label of at most ``limit`` characters derived from ``text`` (a model's name)."""
    return _fitted(text, limit)


def label_value(text: str) -> str:
    """``text`` as a label value: itself when it is one, else fitted as ``object_name``."""
    if LABEL_VALUE.fullmatch(text) and len(text) <= 63:
        return text
    return _fitted(text, 63)


def check_label_name(text: str, *, option: str, limit: int = 63) -> str:
    """``text`` if it is a DNS-1035 label of at most ``limit`` characters, else an error naming
    ``option``."""
    if not DNS1035_LABEL.fullmatch(text) or len(text) > limit:
        raise InvalidNameError(
            f"{option} {text!r} is not a valid Kubernetes name.",
            field=option,
            value=text,
            fix=f"Use 1-{limit} lowercase letters, digits and '-', starting with a letter and "
            "ending with a letter or digit, e.g. 'churn'.",
        )
    return text


def check_namespace(text: str, *, option: str = "--namespace") -> str:
    if not DNS1123_LABEL.fullmatch(text):
        raise InvalidNameError(
            f"{option} {text!r} is not a valid Kubernetes namespace.",
            field=option,
            value=text,
            fix="Use 1-63 lowercase letters, digits and '-', starting and ending with a letter "
            "or digit, e.g. 'models'.",
        )
    return text


def check_subdomain(text: str, *, option: str, what: str = "name", example: str = "regcred") -> str:
    """``text`` if it is a DNS-1123 subdomain (the names of Secrets and claims)."""
    if not DNS1123_SUBDOMAIN.fullmatch(text) or len(text) > 253:
        raise InvalidNameError(
            f"{option} {text!r} is not a valid Kubernetes {what}.",
            field=option,
            value=text,
            fix="Use lowercase letters, digits, '-' and '.', starting and ending with a letter "
            f"or digit (at most 253), e.g. {example!r}.",
        )
    return text


def check_label_key(text: str, *, option: str) -> str:
    """``text`` if it is a qualified label key (``[prefix/]name``)."""
    prefix, slash, name = text.rpartition("/")
    valid = bool(_LABEL_NAME.fullmatch(name)) and (
        not slash or (bool(DNS1123_SUBDOMAIN.fullmatch(prefix)) and len(prefix) <= 253)
    )
    if not valid:
        raise InvalidNameError(
            f"{option} key {text!r} is not a valid Kubernetes label key.",
            field=option,
            value=text,
            fix="Write an optional DNS prefix and '/', then 1-63 letters, digits, '-', '_' and "
            "'.', e.g. 'cloud.google.com/gke-accelerator'.",
        )
    return text


def check_label_value(text: str, *, option: str) -> str:
    if not LABEL_VALUE.fullmatch(text) or len(text) > 63:
        raise InvalidNameError(
            f"{option} value {text!r} is not a valid Kubernetes label value.",
            field=option,
            value=text,
            fix="Use at most 63 letters, digits, '-', '_' and '.', starting and ending with a "
            "letter or digit, e.g. 'nvidia-l4'.",
        )
    return text
