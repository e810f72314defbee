"""The gateway's plain-ASGI plumbing: refusals as JSON errors, bodies read under a limit, and
the parts of a request the gateway looks at (deployment, key, sticky user)."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

from funade.web.call import Call as Call  # the gateway's names for the shared types
from funade.web.call import Headers as Headers
from funade.web.call import Receive as Receive
from funade.web.call import Reply as Reply
from funade.web.call import Scope as Scope
from funade.web.call import Send as Send
from funade.web.call import error_body as error_body

STICKY_HEADER = b"x-funade-user"
STICKY_COOKIE = "funade-user"
# Request headers passed to replicas (everything else, credentials included, stays here).
FORWARD = frozenset(
    {
        b"content-type",
        b"content-encoding",
        b"accept",
        b"accept-encoding",
        b"inference-header-content-length",
        b"x-request-id",
    }
)


class Refused(Exception):
    """A request the gateway answers itself, with a JSON error (and headers such as
    Retry-After)."""

    revision: int | None = None
    """The revision that failed to answer (502, 504), counted as its error."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fix: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fix = status, code, message, fix
        self.headers = headers or {}


def missing_deployment(name: str) -> Refused:
    """The answer for a deployment that does not exist, and the same answer, byte for byte, for
    one in a project the caller's key cannot see (so a key learns nothing about other
    projects)."""
    return Refused(
        404,
        "not_found",
        f"Deployment {name!r} does not exist.",
        "Check the name (or the link you were given); `funade deployments list` lists them.",
    )


def deployment_of(path: str) -> str:
    rest = path[len("/v2/models/") :]
    if path.startswith("/v1/"):
        return rest.split("/", 1)[0].split(":", 1)[0]
    return rest.split("/", 1)[0]


def token_of(headers: dict[bytes, bytes]) -> str | None:
    header = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return key or None


def sticky_of(headers: dict[bytes, bytes]) -> str | None:
    """Who the request is for, to keep them on one variant: the X-Funade-User header, the
    funade-user cookie, else none (each request drawn anew)."""
    value = headers.get(STICKY_HEADER)
    if value:
        return value.decode("latin-1")
    cookie = headers.get(b"cookie")
    if cookie:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie.decode("latin-1"))
        except Exception:
            return None
        if STICKY_COOKIE in jar:
            return jar[STICKY_COOKIE].value
    return None


async def read_body(
    receive: Receive, headers: dict[bytes, bytes], limit: int, whole: bytes | None = None
) -> bytes:
    """The whole body, refused past ``limit`` bytes (413): by its declared length before any of
    it is read, else as it streams in. ``whole``: the body the front already holds in full
    (``Call.body``), taken as it is after the same checks."""
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(
            413,
            "payload_too_large",
            f"The body has {int(declared):,} bytes; this deployment takes at most {limit:,}.",
            "Send fewer rows per request.",
        )
    if whole is not None:
        if len(whole) > limit:
            raise _over(limit)
        return whole
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(
                400, "invalid_input", "The client went away before sending the whole body."
            )
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _over(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _over(limit: int) -> Refused:
    return Refused(
        413,
        "payload_too_large",
        f"The body is over the {limit:,} bytes this deployment takes.",
        "Send fewer rows per request.",
    )


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def error(send: Send, refusal: Refused) -> None:
    body = error_body(refusal.code, refusal.message, refusal.fix)
    extra = [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
    await respond(send, refusal.status, body, b"application/json", extra)


def error_reply(refusal: Refused) -> Reply:
    """``error``'s answer as a ``Reply``."""
    body = error_body(refusal.code, refusal.message, refusal.fix)
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
    return refusal.status, headers, body


_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

PASSED_BACK = frozenset({b"content-type", b"content-encoding", b"inference-header-content-length"})
"""The replica's answer headers a client gets (besides the gateway's own)."""


def upstream_target(call: Call) -> str:
    """The path and query the replica is asked for, as the client sent them (still encoded:
    the decoded path could carry characters, a CR or LF, that are not allowed on a request
    line)."""
    raw, query = call.raw_path, call.query
    return (raw + b"?" + query).decode("latin-1") if query else raw.decode("latin-1")


def forwarded_headers(headers: dict[bytes, bytes]) -> list[tuple[str, str]]:
    """The request headers a replica gets (``FORWARD``); a value that is not printable ASCII,
    which HTTP allows as opaque bytes but no replica reads (and a control character could end
    the header on the way to the replica), is refused with a 400 naming the header."""
    out = []
    for name, value in headers.items():
        if name in FORWARD:
            if not value.isascii() or _CONTROL.search(value):
                header = name.decode()
                raise Refused(
                    400,
                    "invalid_input",
                    f"Header {header!r} holds bytes that are not printable ASCII.",
                    f"Send {header} as ASCII text without control characters.",
                )
            out.append((name.decode(), value.decode()))
    return out
