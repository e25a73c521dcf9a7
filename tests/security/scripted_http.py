"""A real HTTP server on loopback whose replies each test scripts: an identity provider or a
policy server that misbehaves in one named way."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ScriptedServer(ThreadingHTTPServer):
    """Answers each path with the next of its scripted (status, body) replies (the last repeats);
    a body that is not a dict is sent as it is, not as JSON. Unscripted paths answer 404."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.replies: dict[str, list[tuple[int, Any]]] = {}

    def answer(self, path: str, *replies: tuple[int, Any]) -> None:
        self.replies[path] = list(replies)


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedServer

    def _reply(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        replies = self.server.replies.get(self.path) or [(404, {"error": "not_found"})]
        status, body = replies.pop(0) if len(replies) > 1 else replies[0]
        data = json.dumps(body).encode() if isinstance(body, dict) else str(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply()

    def do_POST(self) -> None:
        self._reply()

    def log_message(self, format: str, *args: Any) -> None:
        return None


Server = TypeVar("Server", bound=ScriptedServer)


@contextmanager
def scripted_server(kind: type[Server]) -> Iterator[Server]:
    """A `kind` of scripted server serving on a thread until the block ends."""
    server = kind()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
