"""Fetch a data set's source: an http(s) URL, a local archive or folder, or the synthetic demo data."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from effunet.data import archives, formats, origin
from effunet.errors import EffunetError
from effunet.files import atomic_dir

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str | None) -> None:
    if not expected:
        return
    actual = sha256_of(path)
    if actual.lower() != expected.lower():
        raise EffunetError(f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}")
    log.info("sha256 of %s verified", path)


class _Progress:
    """Logs one readable line every few seconds instead of a terminal bar."""

    def __init__(self, name: str, total: int | None, every_s: float = 5.0):
        self.name, self.total, self.every_s = name, total, every_s
        self.start = self.last = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every_s:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9) / 1e6
        if self.total:
            log.info(
                "%s: %.1f / %.1f MB (%.0f%%), %.1f MB/s",
                self.name,
                done / 1e6,
                self.total / 1e6,
                100 * done / self.total,
                rate,
            )
        else:
            log.info("%s: %.1f MB, %.1f MB/s", self.name, done / 1e6, rate)


def _open_from(url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "effunet"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=timeout)


def _transfer(url: str, part: Path, timeout: float) -> None:
    """Append the rest of `url` to `part`, resuming where a previous attempt stopped."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open_from(url, offset, timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416:  # the partial file is not a prefix the server recognises
            part.unlink()
            raise ConnectionError("server refused to resume; restarting cleanly") from error
        raise
    with response:
        if offset and response.status != 206:
            log.info("server does not resume transfers; restarting %s from the beginning", url)
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length else None
        progress = _Progress(Path(part.name).stem, total)
        done = offset
        with open(part, "ab" if offset else "wb") as sink:
            while block := response.read(CHUNK):
                sink.write(block)
                done += len(block)
                progress.update(done)
        progress.update(done, final=True)
        if total is not None and done < total:
            raise http.client.IncompleteRead(b"", total - done)


def download(
    url: str,
    destination: str | os.PathLike,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    backoff_s: float = 2.0,
) -> Path:
    """Download `url` to `destination` via a `.part` file that resumes; rename only when complete."""
    destination = Path(destination)
    if destination.exists():
        try:
            verify_sha256(destination, sha256)
            log.info("using the existing download %s", destination)
            return destination
        except EffunetError:
            log.warning("existing %s does not match its checksum; downloading again", destination)
            destination.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    for attempt in range(1, retries + 1):
        try:
            log.info("downloading %s (attempt %d of %d)", url, attempt, retries)
            _transfer(url, part, timeout)
            break
        except urllib.error.HTTPError as error:
            if error.code < 500:
                raise EffunetError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
            reason = f"HTTP {error.code}"
        except (
            urllib.error.URLError,
            ConnectionError,
            http.client.HTTPException,
            socket.timeout,
            TimeoutError,
        ) as error:
            reason = str(getattr(error, "reason", error)) or type(error).__name__
        log.warning("download of %s interrupted: %s", url, reason)
        if attempt == retries:
            raise EffunetError(f"cannot download {url} after {retries} attempts: {reason}")
        time.sleep(backoff_s * 2 ** (attempt - 1))
    try:
        verify_sha256(part, sha256)
    except EffunetError:
        part.unlink()
        raise EffunetError(
            f"checksum mismatch for {destination} downloaded from {url}: "
            f"expected sha256 {sha256}, got a different file (deleted)"
        ) from None
    os.replace(part, destination)
    return destination


def _copy_folder(source: Path, target: Path) -> None:
    with atomic_dir(target) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True, symlinks=False)


def fetch(
    dataset: str,
    source: str | None,
    raw_dir: str | os.PathLike,
    downloads_dir: str | os.PathLike,
    sha256: str | None = None,
    synthetic_options: dict | None = None,
    fmt: str | None = None,
) -> Path:
    """Put the original files of `dataset` (format `fmt`; by default the one its name implies)
    under `raw_dir`, whatever kind of source it has."""
    raw_dir, downloads_dir = Path(raw_dir), Path(downloads_dir)
    key = f"datasets.{dataset}.source"
    fmt = fmt or formats.default_format(dataset, {})
    if not source:
        raise EffunetError(formats.missing_source(dataset, fmt) if fmt else f"config key {key} is not set")
    if source == "synthetic":
        with tempfile.TemporaryDirectory() as scratch:
            archive = Path(scratch) / f"{dataset}-synthetic.zip"
            formats.write_synthetic(fmt, archive, **(synthetic_options or {}))
            archives.extract(archive, raw_dir)
        return raw_dir
    archive = _local_or_downloaded(source, key, downloads_dir, sha256)
    if archive.is_dir():
        _copy_folder(archive, raw_dir)
        origin.write_note(raw_dir, str(archive.resolve()), "folder", key)
        return raw_dir
    if not _is_url(source):
        archives.extract(archive, raw_dir)
        origin.write_note(raw_dir, str(archive.resolve()), "archive", key)
        return raw_dir
    try:
        archives.extract(archive, raw_dir)
    except EffunetError as error:
        # A cached download that cannot be extracted would otherwise be reused forever.
        archive.unlink(missing_ok=True)
        hint = "" if sha256 else f"; set datasets.{dataset}.sha256 to catch a wrong file before extracting"
        raise EffunetError(
            f"config key {key}: the file downloaded from {source} cannot be extracted ({error}); "
            f"it was removed from the download cache, so the next run downloads it again"
            f"{hint}"
        ) from error
    origin.write_note(raw_dir, source, "url", key)
    return raw_dir


def _is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https")


def _local_or_downloaded(source: str, key: str, downloads_dir: Path, sha256: str | None) -> Path:
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        name = Path(urllib.parse.unquote(parsed.path)).name or "download"
        return download(source, downloads_dir / name, sha256)
    if parsed.scheme == "file":
        source = urllib.parse.unquote(parsed.path)
    elif "://" in source:
        raise EffunetError(
            f"config key {key}: unknown source scheme {parsed.scheme!r} in {source!r}; "
            "use an http(s) URL, a local archive or folder, or 'synthetic'"
        )
    path = Path(source).expanduser()
    if not path.exists():
        raise EffunetError(f"config key {key}: {path} does not exist")
    if path.is_file():
        try:
            verify_sha256(path, sha256)
        except EffunetError as error:
            raise EffunetError(f"config key {key}: {error}") from None
        if not archives.is_archive(path):
            raise EffunetError(f"config key {key}: {path} is {archives.not_an_archive(path)}")
    return path


def local_path(source: str | None) -> Path | None:
    """The local file or folder a source names, or None for URLs, 'synthetic' and unset sources."""
    if not source or source == "synthetic":
        return None
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if "://" in source:
        return None
    return Path(source).expanduser()


def local_source_state(source: str | None) -> str | None:
    """A digest of the size and mtime of a local source's files (every file of a folder).

    The workflow passes it as a param of `download`, so changing, adding or removing a file of the
    user's source reruns `download` and everything after it. None for URLs and synthetic sources.
    """
    path = local_path(source)
    if path is None:
        return None
    if not path.exists():
        return "missing"
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        status = file.stat()
        digest.update(
            f"{file.relative_to(path) if file != path else ''}\0{status.st_size}\0{status.st_mtime_ns}\n".encode()
        )
    return f"{len(files)} files, {digest.hexdigest()[:16]}"
