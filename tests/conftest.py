"""Shared fixtures: small synthetic archives in the original formats and a local HTTP server."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from effunet.data import synthetic

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def dsb_zip(tmp_path_factory) -> Path:
    return synthetic.write_dsb2018_zip(tmp_path_factory.mktemp("dsb") / "stage1_train.zip", n_images=8)


def prepare_synthetic_dsb2018(work: Path, size=(32, 32), *, n_images: int, seed: int, test_fraction: float,
                              val_fraction: float) -> Path:
    """A synthetic DSB2018 archive in `work`, extracted, merged and prepared at `size` as the workflow's
    data half does; returns the folder for `PreparedData.in_folder` (labels/ at native size inside)."""
    from effunet.data import archives, dsb2018

    archives.extract(synthetic.write_dsb2018_zip(work / "d.zip", n_images=n_images, seed=seed), work / "raw")
    folder = work / "p"
    dsb2018.merge_masks(work / "raw", folder / "labels")
    dsb2018.resize(work / "raw", folder / "labels", folder / "images", folder / "masks", folder / "manifest.csv",
                   tuple(size), test_fraction=test_fraction, val_fraction=val_fraction, seed=0)
    return folder


@pytest.fixture(scope="session")
def drive_zip(tmp_path_factory) -> Path:
    return synthetic.write_drive_zip(tmp_path_factory.mktemp("drive") / "DRIVE.zip", n_train=3, n_test=2)


class FileServer(http.server.ThreadingHTTPServer):
    """Serves `files` (path -> bytes); supports Range; can cut the first response short."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.cut_first_after: int | None = None  # bytes sent before dropping the first connection
        self.ranges = True
        self.requests: list[dict] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server: FileServer = self.server
        server.requests.append({"path": self.path, "range": self.headers.get("Range")})
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if server.ranges and self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if server.cut_first_after is not None:
            cut, server.cut_first_after = server.cut_first_after, None
            self.wfile.write(payload[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def file_server():
    server = FileServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(folder: Path, backend_uri: str | None = None):
    """A real `mlflow server` on loopback (SQLite backend in `folder`); yields its URL, stops it after."""
    port = free_port()
    backend_uri = backend_uri or f"sqlite:///{folder}/server.db"
    log_path = folder / "mlflow-server.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
             "--artifacts-destination", str(folder / "served-artifacts"), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            stdout=log_file, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log_path)
            yield url
        finally:
            _stop(process)


def _wait_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"mlflow server did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.25)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
