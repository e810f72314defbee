"""What the HTTP server under the gateway costs per request: uvicorn (httptools + uvloop, as the
gateway ran it), funade's lean front (``funade.web.front``, its direct entry: what the
gateway's model routes take with ``gateway_server = "lean"``) and a minimal HTTP/1.1 protocol on
the same parser and loop, each serving a fixed answer to wrk at concurrency 8, in CPU
microseconds per request (servers on core 0, wrk on core 1), in one run.

    .venv/bin/python -m benchmarks.gateway.front --duration 5 --rounds 2

Neither does any work of its own, so the difference is the server's: uvicorn's request cycle
(the scope, ASGI messages, a task and an event per request, header checks) over llhttp's
parsing and the socket calls both make.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.registry.harness import cpu_seconds, machine
from benchmarks.serving.load import wrk_binary
from benchmarks.serving.servers import free_port

ANSWER = b'{"predictions":[1]}'
BODY = b'{"instances":[[1.0,2.0]]}'


async def asgi_app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def,type-arg]
    if scope["type"] != "http":
        return
    message = await receive()
    while message.get("more_body"):
        message = await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"19")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


def run_uvicorn(port: int) -> None:
    import uvicorn

    uvicorn.run(asgi_app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                http="httptools", loop="uvloop")  # fmt: skip


def run_lean(port: int) -> None:
    import socket as sockets

    from funade.web.call import Call, Reply
    from funade.web.front import Front

    class Fixed:
        """A direct entry reading the body and answering, as the gateway's model routes do."""

        def takes(self, path: str) -> bool:
            return True

        async def reply(self, call: Call) -> Reply:
            message = await call.receive()
            while message.get("more_body"):
                message = await call.receive()
            return 200, [(b"content-type", b"application/json")], ANSWER

        async def __call__(self, scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def,type-arg]
            if scope["type"] == "lifespan":
                while (await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                await send({"type": "lifespan.shutdown.complete"})

    sock = sockets.socket()
    sock.bind(("127.0.0.1", port))
    app = Fixed()
    Front(app, direct=app).run([sock])


def run_minimal(port: int) -> None:
    import httptools
    import uvloop

    response = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        % len(ANSWER)
        + ANSWER
    )

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.body: list[bytes] = []

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:  # a task per request, as a server would make
            asyncio.get_running_loop().create_task(self.answer(b"".join(self.body)))
            self.body = []

        async def answer(self, body: bytes) -> None:
            self.transport.write(response)  # type: ignore[attr-defined]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Protocol, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


def measure(kind: str, seconds: float) -> tuple[float, float]:
    """(CPU µs per request, requests per second) of server ``kind``."""
    port = free_port()
    server = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            "-m",
            "benchmarks.gateway.front",
            "--serve",
            kind,
            "--port",
            str(port),
        ],
    )
    script = Path(os.environ.get("TMPDIR", "/tmp")) / "funade-front-post.lua"
    script.write_text(
        f"wrk.method = \"POST\"\nwrk.body = '{BODY.decode()}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {kind} server did not start") from None
                time.sleep(0.1)
        command = ["taskset", "-c", "1", wrk_binary(), "-t1", "-c8", "-s", str(script)]
        url = f"http://127.0.0.1:{port}/v1/models/m:predict"
        subprocess.run([*command, "-d1s", url], capture_output=True, check=True)
        before = cpu_seconds(server.pid)
        done = subprocess.run(
            [*command, f"-d{round(seconds)}s", url], capture_output=True, text=True, check=True
        )
        used = cpu_seconds(server.pid) - before
        requests = int(
            next(ln for ln in done.stdout.splitlines() if "requests in" in ln).split()[0]
        )
        return 1e6 * used / requests, requests / seconds
    finally:
        server.terminate()
        server.wait()


KINDS = {"uvicorn": run_uvicorn, "lean": run_lean, "minimal": run_minimal}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", choices=list(KINDS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        KINDS[args.serve](args.port)
        return
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for kind in KINDS:
            got = measure(kind, args.duration)
            if kind not in best or got[0] < best[kind][0]:
                best[kind] = got
            print(f"{kind:<8} {got[0]:6.1f} µs CPU/request  {got[1]:8,.0f} req/s", flush=True)
    print(f"\n{machine()}\n")
    print("| server | CPU µs per request (best of rounds) | req/s |\n|---|---|---|")
    for kind, (cpu, rate) in best.items():
        print(f"| {kind} | {cpu:.1f} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
