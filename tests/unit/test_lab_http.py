"""The lab's one HTTP/1.0 GET (gossipha/lab/observe.http_get): the client's "who
answered" and the fleet's /status reads both go through it."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from gossipha.lab.fleet import http_get_json
from gossipha.lab.observe import http_get, http_get_once


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        pages = {"/": b"<h1>slave server</h1>", "/status": json.dumps({"holder": "n0"}).encode()}
        body = pages.get(self.path)
        if self.path == "/big":
            body = b"x" * 100_000
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"no")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_body_of_a_200_and_none_otherwise(port: int) -> None:
    assert http_get("127.0.0.1", port, "/", 2.0) == b"<h1>slave server</h1>"
    assert http_get("127.0.0.1", port, "/missing", 2.0) is None
    assert http_get("127.0.0.1", port, "/big", 2.0) == b"x" * 100_000
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert http_get("127.0.0.1", closed, "/", 0.5) is None


def test_the_client_and_the_fleet_read_through_it(port: int) -> None:
    assert http_get_once("127.0.0.1", port, 2.0) == "slave"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    assert http_get_json(sock, "127.0.0.1", port, "/status", 2.0) == {"holder": "n0"}
    assert sock.fileno() == -1, "the given socket is closed"
    assert http_get_json(socket.socket(), "127.0.0.1", port, "/", 2.0) is None  # not JSON
