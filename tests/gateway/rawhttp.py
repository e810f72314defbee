"""HTTP/1.1 over a raw socket, for tests that send what no client library would (pipelined,
malformed, half-sent requests) and read answers one by one, parsed with httptools."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools


@dataclass
class Answer:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    version: str = ""
    keep_alive: bool = True


class Reader:
    """Reads the answers on one connection in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.raw = b""
        """Bytes received and not fed to the parser (only ``head`` leaves any)."""
        self.answers: list[Answer] = []
        self.current = Answer()
        self.parser = httptools.HttpResponseParser(self)
        self.open = False

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.current = Answer()
        self.chunks: list[bytes] = []
        self.open = True

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers[name.decode().lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.open = False
        got = self.current
        got.status = self.parser.get_status_code()
        got.version = self.parser.get_http_version()
        got.keep_alive = self.parser.should_keep_alive()
        got.body = b"".join(self.chunks)
        self.answers.append(got)

    def answer(self, timeout: float = 20) -> Answer:
        """The next answer (its body read to its end)."""
        self.sock.settimeout(timeout)
        if self.raw:
            data, self.raw = self.raw, b""
            self.parser.feed_data(data)
        while not self.answers:
            data = self.sock.recv(1 << 20)
            if not data:
                if (
                    self.open
                    and self.current.status
                    and "content-length" not in (self.current.headers)
                ):
                    self.on_message_complete()  # a body that ends with the connection
                    continue
                raise ConnectionError("closed before the answer was whole")
            self.parser.feed_data(data)
        return self.answers.pop(0)

    def head(self, timeout: float = 20) -> tuple[bytes, dict[str, str]]:
        """The status line and headers of an answer to HEAD (on a connection not read yet)."""
        self.sock.settimeout(timeout)
        while b"\r\n\r\n" not in self.raw:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed before the head was whole: {self.raw!r}")
            self.raw += data
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        return status.encode(), headers

    def closed(self, timeout: float = 20) -> bool:
        """Whether the server closes the connection (nothing more comes) within ``timeout``."""
        if self.raw or self.answers:
            return False
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return socket.create_connection((parts.hostname, parts.port), timeout=20)


def request(
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    version: str = "1.1",
) -> bytes:
    """A request's bytes; ``content-length`` added for a body unless ``headers`` frames it."""
    lines = [f"{method} {target} HTTP/{version}", "host: test"]
    headers = dict(headers or {})
    framed = {k.lower() for k in headers} & {"content-length", "transfer-encoding"}
    if body and not framed:
        headers["content-length"] = str(len(body))
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [b"%x\r\n%b\r\n" % (len(body[i : i + size]), body[i : i + size])
             for i in range(0, len(body), size)]  # fmt: skip
    return b"".join(parts) + b"0\r\n\r\n"
