"""Local test servers that count the bytes they serve: a folder over HTTP, or an S3 (moto).

Run as ``python serve.py http FOLDER`` or ``python serve.py s3 [FOLDER BUCKET]`` (the S3 one
starts with FOLDER's files in BUCKET, keys ``FOLDER-name/...``: put through moto's backend
directly, not file by file over HTTP); it listens on 127.0.0.1 only (a free port), prints the
port on one line, and serves until killed. Every response body
sent is counted; the control paths (never part of the count) are:

- ``GET /__stats__``: ``{"bytes": N, "requests": M}`` served since the last reset;
- ``GET /__reset__``: zero the counts;
- ``GET /__drop__?n=K&match=TEXT`` (HTTP only): the next ``K`` responses whose path contains
  ``TEXT`` send half their body, then the connection is closed, as a network drop does.

The HTTP server honours ``Range`` requests (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``), as
web servers and S3 do, so sharded Zarr reads fetch only the byte ranges they need.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.Lock()
STATS = {"bytes": 0, "requests": 0}
DROPS = {"n": 0, "match": ""}


def _count(n: int) -> None:
    with LOCK:
        STATS["bytes"] += n
        STATS["requests"] += 1


def _control(path: str) -> bytes | None:
    """The answer to a control path, or None for an ordinary request."""
    url = urlparse(path)
    if url.path == "/__stats__":
        with LOCK:
            return json.dumps(STATS).encode()
    if url.path == "/__reset__":
        with LOCK:
            STATS.update(bytes=0, requests=0)
        return b"{}"
    if url.path == "/__drop__":
        query = parse_qs(url.query)
        with LOCK:
            DROPS["n"] = int(query.get("n", ["1"])[0])
            DROPS["match"] = query.get("match", [""])[0]
        return b"{}"
    return None


def _take_drop(path: str) -> bool:
    with LOCK:
        if DROPS["n"] > 0 and DROPS["match"] in path:
            DROPS["n"] -= 1
            return True
    return False


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` of a single ``bytes=`` range, or None to send the whole file."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes=") :].partition("-")
    if first == "":
        start, stop = max(0, size - int(last)), size
    else:
        start = int(first)
        stop = min(size, int(last) + 1) if last else size
    return (start, stop) if start < stop else None


class CountingHandler(SimpleHTTPRequestHandler):
    """Serves files with ``Range`` support and counts the body bytes it sends."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    def _reply(self, status: int, body: bytes, content_range: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if content_range:
            self.send_header("Content-Range", content_range)
        self.end_headers()
        if self.command == "HEAD":
            return
        if _take_drop(self.path):
            half = body[: len(body) // 2]
            self.wfile.write(half)
            self.wfile.flush()
            _count(len(half))
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)
        _count(len(body))

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        answer = _control(self.path)
        if answer is not None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            return
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self._reply(404, b"not found")
            return
        with open(path, "rb") as f:
            data = f.read()
        span = _byte_range(self.headers.get("Range"), len(data))
        if span is None:
            self._reply(200, data)
            return
        start, stop = span
        self._reply(206, data[start:stop], f"bytes {start}-{stop - 1}/{len(data)}")


def serve_http(folder: str) -> None:
    """Serve ``folder`` on 127.0.0.1 (a free port) until killed."""

    def handler(*args, **kwargs):
        return CountingHandler(*args, directory=folder, **kwargs)

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def _preload(folder: str, bucket: str) -> None:
    """Put every file under ``folder`` into a new ``bucket`` of moto's default account."""
    from pathlib import Path

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(bucket, "us-east-1")
    root = Path(folder)
    for path in root.rglob("*"):
        if path.is_file():
            key = f"{root.name}/{path.relative_to(root).as_posix()}"
            backend.put_object(bucket, key, path.read_bytes())


def serve_s3(folder: str | None = None, bucket: str | None = None) -> None:
    """moto's S3 on 127.0.0.1 (a free port), counting response body bytes, until killed."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    moto = DomainDispatcherApplication(create_backend_app)
    if folder is not None:
        _preload(folder, bucket)

    def app(environ, start_response):
        answer = _control(environ.get("PATH_INFO", "") + "?" + environ.get("QUERY_STRING", ""))
        if answer is not None:
            start_response("200 OK", [("Content-Length", str(len(answer)))])
            return [answer]
        body = b"".join(moto(environ, start_response))
        if environ["REQUEST_METHOD"] == "GET":
            _count(len(body))
        return [body]

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "http":
        serve_http(sys.argv[2])
    else:
        serve_s3(*sys.argv[2:4])
