"""``read_body``: a body the front holds whole (``whole``) is taken as the same ``Body``, and
refused with the same errors, as one read through ``receive``."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import pytest

from funade.errors import InvalidInputError, PayloadTooLargeError
from funade.gateway.http import Refused
from funade.gateway.http import read_body as gateway_read_body
from funade.serving.bodies import Body, UnsupportedMediaTypeError, read_body


def _receive(data: bytes) -> Any:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": data, "more_body": False}

    return receive


def _never() -> Any:
    async def receive() -> dict[str, Any]:
        raise AssertionError("a whole body is not read through receive")

    return receive


def _both(headers: list[tuple[bytes, bytes]], data: bytes, **options: Any) -> list[Any]:
    """What each way gives (the Body, or the error's type and message)."""
    out: list[Any] = []
    for receive, whole in ((_receive(data), None), (_never(), data)):
        try:
            out.append(asyncio.run(read_body(headers, receive, 100, 5.0, whole=whole, **options)))
        except Exception as exc:
            out.append((type(exc), str(exc), getattr(exc, "field", None)))
    return out


def _headers(data: bytes, **extra: str) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-length", str(len(data)).encode())]
    return headers + [(k.replace("_", "-").encode(), v.encode()) for k, v in extra.items()]


def test_a_whole_body_is_the_same_body() -> None:
    data = b'{"inputs": []}'
    streamed, whole = _both(_headers(data, content_type="application/json"), data)
    assert isinstance(whole, Body)
    assert whole == streamed
    assert whole.data == data
    assert whole.kind == "json"


def test_a_whole_compressed_body_is_decompressed() -> None:
    data = b'{"inputs": []}'
    packed = gzip.compress(data)
    streamed, whole = _both(_headers(packed, content_encoding="gzip"), packed)
    assert whole == streamed
    assert whole.data == data


@pytest.mark.parametrize(
    ("data", "extra", "error"),
    [
        (b"x" * 101, {}, PayloadTooLargeError),
        (gzip.compress(b" " * 1000), {"content_encoding": "gzip"}, PayloadTooLargeError),
        (gzip.compress(b"{}")[:-4], {"content_encoding": "gzip"}, InvalidInputError),
        (b"{}", {"content_encoding": "br"}, UnsupportedMediaTypeError),
        (b"{}", {"content_type": "text/html"}, UnsupportedMediaTypeError),
    ],
    ids=["over-the-limit", "over-once-decompressed", "cut-off-gzip", "encoding", "type"],
)
def test_a_whole_body_is_refused_as_a_read_one(
    data: bytes, extra: dict[str, str], error: type[Exception]
) -> None:
    streamed, whole = _both(_headers(data, **extra), data)
    assert whole == streamed
    assert whole[0] is error


def test_a_whole_body_over_the_limit_without_a_length_is_413() -> None:
    with pytest.raises(PayloadTooLargeError, match=r"more than 100 bytes \(101\)"):
        asyncio.run(read_body([], _never(), 100, 5.0, whole=b"x" * 101))


def test_binary_is_refused_the_same_where_it_is_not_taken() -> None:
    data = b"\x00"
    headers = _headers(data, content_type="application/octet-stream")
    streamed, whole = _both(headers, data, binary_allowed=False)
    assert whole == streamed
    assert whole[0] is UnsupportedMediaTypeError


def test_the_gateway_takes_a_whole_body_within_its_limits() -> None:
    data = b"x" * 50
    headers = dict(_headers(data))
    assert asyncio.run(gateway_read_body(_never(), headers, 100, whole=data)) == data
    big = b"x" * 101
    refusals = []
    for receive, whole in ((_receive(big), None), (_never(), big)):
        with pytest.raises(Refused) as caught:
            asyncio.run(gateway_read_body(receive, dict(_headers(big)), 100, whole=whole))
        refusals.append((caught.value.status, caught.value.code, caught.value.message))
    assert refusals[0] == refusals[1] == (413, "payload_too_large", refusals[0][2])
    assert "101 bytes" in refusals[0][2]
    with pytest.raises(Refused, match="over the 100 bytes"):
        asyncio.run(gateway_read_body(_never(), {}, 100, whole=big))


def test_a_body_taken_whole_still_reaches_a_route_answered_through_starlette() -> None:
    """A request to an inference path with another method goes through Starlette's routing
    (``_through``): a body the front took whole is handed to it as one message."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from funade.serving.fastpath import InferenceFastPath
    from funade.web.call import Call

    async def echo(request: Request) -> Response:
        return Response(await request.body())

    async def unused(_call: Call, _params: dict[str, str]) -> Any:
        raise AssertionError("not an inference call")

    app = InferenceFastPath(
        Starlette(routes=[Route("/v2/models/m/infer", echo, methods=["PUT"])]),
        v2=unused,
        v1=unused,
    )
    path = "/v2/models/m/infer"
    call = Call("PUT", path, path.encode(), b"", [], None, _never(), b"the body")
    status, _, body = asyncio.run(app.reply(call))
    assert (status, body) == (200, b"the body")
