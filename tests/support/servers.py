"""Servers the remote-source tests start on loopback (127.0.0.1) only: an HTTP server with Range,
ETag and If-Match support that can misbehave on request (5xx, bodies cut short, a file
replaced mid-run, a HEAD that lies or hangs, a body that stalls, a login), and an S3 server
(moto)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Faults:
    """What the HTTP server does wrong, counted down as requests come: ``fail`` GETs answered
    503, ``cut`` GET bodies closed at ``cut_at`` (a fraction of the body), the first GET of
    every file cut so with ``cut_first_of_each``, and after ``replace_after`` GETs every file's
    ETag changes (as if it were replaced)."""

    def __init__(self) -> None:
        # Hostile servers: a HEAD that declares another size, answers another status, or hangs
        # (sends nothing); a GET that sends its headers and then nothing; a login required.
        self.head_size: int | None = None
        self.head_status: int | None = None
        self.get_status: int | None = None
        self.stall_head = False
        self.stall_get = False
        self.login: str | None = None  # "user:password" for HTTP Basic authentication
        self.delay = 0.0  # seconds before each answer: a far server's round trip
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.release = threading.Event()  # set when the server stops: stalled handlers end
        self.fail = 0
        self.cut = 0
        self.cut_at = 0.5
        self.cut_first_of_each = False
        self.cut_files: set[str] = set()
        self.replace_after: int | None = None
        self.gets = 0
        self.ranges: list[str] = []
        self.sent = 0  # body bytes sent
        self.lock = threading.Lock()


def _handler(root: Path, faults: Faults) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _file(self) -> Path | None:
            name = urllib.parse.unquote(self.path.split("?")[0].lstrip("/"))
            path = (root / name).resolve()
            if root.resolve() not in path.parents or not path.is_file():
                return None
            return path

        def _etag(self, path: Path) -> str:
            st = path.stat()
            version = (
                "v2"
                if faults.replace_after is not None and faults.gets > faults.replace_after
                else "v1"
            )
            return (
                '"'
                + hashlib.sha1(f"{st.st_size}-{st.st_mtime_ns}-{version}".encode()).hexdigest()
                + '"'
            )

        def _headers(self, path: Path, length: int, status: int = 200, extra: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            self.send_header("ETag", self._etag(path))
            self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
            self.send_header("Accept-Ranges", "bytes")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()

        def _refused(self, method: str) -> bool:
            """Answers what ``faults`` say instead of serving; whether it did."""
            with faults.lock:
                faults.requests.append((method, self.path))
            if faults.delay:
                time.sleep(faults.delay)
            if faults.login is not None:
                want = "Basic " + base64.b64encode(faults.login.encode()).decode()
                if self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="data"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return True
            status = faults.head_status if method == "HEAD" else faults.get_status
            if status is not None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return True
            if method == "HEAD" and faults.stall_head:
                faults.release.wait(600)  # nothing at all: not even a status line
                return True
            return False

        def do_HEAD(self) -> None:
            if self._refused("HEAD"):
                return
            path = self._file()
            if path is None:
                self.send_error(404 if "forbidden" not in self.path else 403)
                return
            size = path.stat().st_size if faults.head_size is None else faults.head_size
            self._headers(path, size)

        def do_GET(self) -> None:
            if self._refused("GET"):
                return
            path = self._file()
            if "forbidden" in self.path:
                self.send_error(403)
                return
            if path is None:
                self.send_error(404)
                return
            with faults.lock:
                faults.gets += 1
                fail = faults.fail > 0
                faults.fail -= fail
                cut = not fail and faults.cut > 0
                faults.cut -= cut
                if faults.cut_first_of_each and not fail and path.name not in faults.cut_files:
                    faults.cut_files.add(path.name)
                    cut = True
            if fail:
                self.send_error(503)
                return
            if_match = self.headers.get("If-Match")
            if if_match and if_match != self._etag(path):
                self.send_response(412)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = path.stat().st_size
            start, end = 0, size
            status, extra = 200, {}
            rng = self.headers.get("Range")
            if rng:
                faults.ranges.append(rng)
                first, _, last = rng.removeprefix("bytes=").partition("-")
                start = int(first)
                end = min(int(last) + 1, size) if last else size
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
                extra["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            self._headers(path, end - start, status, extra)
            if faults.stall_get:
                self.wfile.flush()
                faults.release.wait(600)  # headers sent, then nothing (slowloris)
                self.close_connection = True
                return
            send = int((end - start) * faults.cut_at) if cut else end - start
            with faults.lock:
                faults.sent += send
            with path.open("rb") as f, contextlib.suppress(OSError):
                offset, left = start, send
                while left > 0:
                    n = os.sendfile(self.wfile.fileno(), f.fileno(), offset, left)
                    if n == 0:
                        break
                    offset, left = offset + n, left - n
            if cut:
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)

    return Handler


@contextlib.contextmanager
def http_server(root: Path) -> Iterator[tuple[str, Faults]]:
    """Serves the files under ``root`` at ``http://127.0.0.1:PORT``; yields (base URL, faults)."""
    faults = Faults()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, faults))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", faults
    finally:
        faults.release.set()
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """An S3 server (moto) on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_env(endpoint: str) -> dict[str, str]:
    """The environment a client of the moto server needs (dummy credentials)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_REGION": "us-east-1",
    }


def upload(endpoint: str, bucket: str, files: dict[str, Path]) -> None:
    """Creates ``bucket`` and puts each file under its key."""
    import boto3

    env = s3_env(endpoint)
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )
    with contextlib.suppress(Exception):
        s3.create_bucket(Bucket=bucket)
    for key, path in files.items():
        s3.upload_file(os.fspath(path), bucket, key)
