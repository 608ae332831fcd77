"""A real local HTTP server for tests: fixture feeds, pages and misbehaving routes.

Routes map a path (with query string, if any) to a handler returning a `Reply`.
Runs in a thread; every request is recorded so tests can assert how we behaved
(conditional headers sent, how many probes, which User-Agent).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: bytes | Iterator[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    close: bool = False  # drop the connection after writing (a server dying mid-body)


Handler = Callable[[Request], Reply]


class LocalServer:
    """`server.route("/feed.xml", Reply(body=...))` then fetch `server.url("/feed.xml")`."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:
                outer._serve(self)

            def do_HEAD(self) -> None:
                outer._serve(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        # A short poll interval: stop() waits up to one interval (0.5 s by default, per test).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, reply: Reply | Handler) -> None:
        self.routes[path] = reply if callable(reply) else (lambda _req, r=reply: r)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        req = Request(h.command, h.path, {k.lower(): v for k, v in h.headers.items()})
        self.requests.append(req)
        handler = self.routes.get(h.path)
        reply = (
            handler(req)
            if handler
            else Reply(404, b"<html><body>Not found</body></html>", {"Content-Type": "text/html"})
        )
        if reply.delay:
            time.sleep(reply.delay)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up
            self._write(h, reply)
        if reply.close:
            h.close_connection = True

    @staticmethod
    def _write(h: BaseHTTPRequestHandler, reply: Reply) -> None:
        h.send_response(reply.status)
        for key, value in reply.headers.items():
            h.send_header(key, value)
        if isinstance(reply.body, bytes):
            # A Content-Length given by the route wins: it may lie on purpose.
            if not any(key.lower() == "content-length" for key in reply.headers):
                h.send_header("Content-Length", str(len(reply.body)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(reply.body)
            return
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for chunk in reply.body:
            h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            h.wfile.flush()
        h.wfile.write(b"0\r\n\r\n")
