"""Loopback HTTP fakes that speak IMM's and OSS's wire protocols.

The real SDKs talk to them unchanged (only the endpoint differs), so tests,
``autoanim invoke`` and the benchmarks exercise signing, encoding and error
mapping for real. They listen on 127.0.0.1 only, decode what arrives and
record it; nothing here is imported by the functions.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 (ephemeral port) in a daemon thread; a context manager."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, http: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackServer:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

            def _dispatch(self) -> None:
                try:
                    emulator.handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (its timeout): nothing to answer

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _dispatch

            def log_message(self, format: str, *args: Any) -> None:  # silence per-request lines
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def read_body(http: BaseHTTPRequestHandler) -> bytes:
    length = int(http.headers.get("Content-Length") or 0)
    return http.rfile.read(length) if length else b""


def send(
    http: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> None:
    http.send_response(status)
    for name, value in (headers or {}).items():
        http.send_header(name, value)
    http.send_header("Content-Length", str(len(body)))
    http.end_headers()
    if body and http.command != "HEAD":
        http.wfile.write(body)


def serve_over_pipe(conn: Any, servers: list[LoopbackServer], oss: Any, bucket: str,
                    commands: dict[str, Callable[[Any], Any]]) -> None:
    """Run ``servers`` (a benchmark's emulators, in their own process) until told to stop.

    Through ``conn`` (a Pipe end): first their endpoints, in order; then each
    ``(command, argument)`` is answered: ``seed`` puts ``[(key, data, tags), ...]`` into
    ``oss``'s ``bucket``, a name in ``commands`` calls it with the argument, anything
    else stops the servers (answered ``None``).
    """
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.enter_context(server)
        conn.send(tuple(server.endpoint for server in servers))
        while True:
            command, argument = conn.recv()
            if command == "seed":
                for key, data, tags in argument:
                    oss.put_object(bucket, key, data, tags=tags)
                conn.send(len(argument))
            elif command in commands:
                conn.send(commands[command](argument))
            else:
                conn.send(None)
                return
