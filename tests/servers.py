"""Real servers on 127.0.0.1 for the remote-storage tests and benchmarks: moto's S3 server, a
Google Cloud Storage emulator, and an HTTP file server with range requests and fault injection
(dropped connections, 500s, 403s)."""
from __future__ import annotations

import http.server
import os
import re
import socket
import sys
import threading
from typing import Any, Optional


def start_moto() -> tuple[Any, dict]:
    """A moto S3 server on a free port of 127.0.0.1, and the s3fs storage_options that reach it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"key": "testing", "secret": "testing",
               "client_kwargs": {"endpoint_url": f"http://{host}:{port}"}}
    return server, options


class Faults:
    """Which requests go wrong: every ``drop_every``-th GET is cut off after half its body, every
    ``error_every``-th request (GET or HEAD) answers 500 (paths under /flaky/); under /broken/ every body is cut off,
    under /short/ every answer is a well-formed response of half the bytes asked for."""

    def __init__(self, drop_every: int = 0, error_every: int = 0) -> None:
        self.drop_every, self.error_every = drop_every, error_every
        self.count = self.dropped = self.errors = 0
        self.lock = threading.Lock()

    def next(self, path: str) -> Optional[str]:
        """The fault for this request: "drop", "error" or None."""
        if path.startswith("/broken/"):
            return "drop"
        if path.startswith("/short/"):
            return "short"
        if not path.startswith("/flaky/"):
            return None
        with self.lock:
            self.count += 1
            if self.drop_every and self.count % self.drop_every == 0:
                self.dropped += 1
                return "drop"
            if self.error_every and self.count % self.error_every == 0:
                self.errors += 1
                return "error"
        return None


class FileServer(http.server.ThreadingHTTPServer):
    """Serves ``files`` (URL path -> bytes) with HEAD, GET and single byte ranges, and an index
    page for a folder's URL; /forbidden/... answers 403; ``faults`` injects failures under /flaky/
    and /broken/."""

    daemon_threads = True

    def __init__(self, faults: Optional[Faults] = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.gets: list[tuple[str, int, int]] = []  # (path, start, stop) of every GET answered, in order
        self.faults = faults or Faults()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FileServer

    def log_message(self, *args: Any) -> None:  # quiet
        return

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?")[0]
        if path.startswith("/forbidden/"):
            return self._status(403)
        data = self.server.files.get(path)
        if data is None and path.endswith("/") and body:
            data = self._index_page(path)
        if data is None:
            return self._status(404)
        fault = self.server.faults.next(path)
        if not body and fault != "error":  # HEAD: only a 500 (no body to cut short)
            fault = None
        if fault == "error":
            return self._status(500)
        start, stop, code = 0, len(data), 200
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            start, stop, code = int(match[1]), min(int(match[2]) + 1 if match[2] else len(data), len(data)), 206
        if body:
            self.server.gets.append((path, start, stop))
        if fault == "short":  # a server that answers less than the range asked for, cleanly
            stop = start + (stop - start) // 2
        self.send_response(code)
        self.send_header("Content-Length", str(stop - start))
        self.send_header("Accept-Ranges", "bytes")
        if code == 206:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
        self.end_headers()
        if not body:
            return
        if fault == "drop":  # half the body, then the connection is gone
            self.wfile.write(data[start:start + (stop - start) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(data[start:stop])

    def _index_page(self, folder: str) -> Optional[bytes]:
        """An HTML page linking the files right under ``folder``, as ``python -m http.server`` or
        nginx's autoindex serve one; None where there are none."""
        names = sorted({path[len(folder):].split("/")[0] for path in self.server.files if path.startswith(folder)})
        if not names:
            return None
        return "".join(f'<a href="{name}">{name}</a>\n' for name in names).encode()

    def _status(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


def start_gcs() -> tuple[Any, dict]:
    """A Google Cloud Storage emulator (PyPI's gcp-storage-emulator, in memory, bucket "data") on a
    free port of 127.0.0.1, and the gcsfs storage_options that reach it.

    The emulator lacks two things of the real service: GCS's ``objects/move`` call (gcsfs's ``mv``
    tries it first and falls back to copy + delete only after a minute of retried 501s), added here
    as the copy + delete it amounts to, inside the server; and gRPC, which gcsfs's experimental
    filesystem asks for each bucket's type: GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false turns that off,
    set here before gcsfs is imported."""
    if "gcsfs" not in sys.modules:
        os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    elif os.environ.get("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "true").lower() in ("true", "1"):
        raise RuntimeError("gcsfs was imported with GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT on: it would ask the emulator "
                           "for gRPC; start the emulator before gcsfs is imported")
    from gcp_storage_emulator import server as emulator
    from gcp_storage_emulator.handlers import objects

    def move(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
        params = request.params
        params["dest_bucket_name"] = params["bucket_name"]
        objects.copy(request, response, storage)
        if response.status == 200:
            objects.delete(request, response, storage)

    route = (rf"^{emulator.settings.API_ENDPOINT}/b/(?P<bucket_name>[-.\w]+)/o/(?P<object_id>.*[^/]+)"
             r"/moveTo/o/(?P<dest_object_id>.*[^/]+)$", {emulator.POST: move})
    if route[0] not in (regex for regex, _ in emulator.HANDLERS):
        emulator.HANDLERS = (route, *emulator.HANDLERS)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = emulator.create_server("127.0.0.1", port, in_memory=True, default_bucket="data")
    server.start()
    return server, {"endpoint_url": f"http://127.0.0.1:{port}", "token": "anon"}
