"""Safe extraction of zip and tar archives: no entry may escape the target folder."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from effunet.errors import EffunetError
from effunet.files import atomic_dir

log = logging.getLogger(__name__)


def _safe_relative(archive: Path, name: str) -> PurePosixPath:
    """The entry's path inside the target folder, or an error if it would land outside it."""
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if normalised.startswith("/") or path.is_absolute() or (path.parts and ":" in path.parts[0]):
        raise EffunetError(f"unsafe archive {archive}: entry {name!r} has an absolute path")
    if ".." in path.parts:
        raise EffunetError(f"unsafe archive {archive}: entry {name!r} would escape the target folder")
    return path


def _zip_entries(archive: Path, handle: zipfile.ZipFile):
    for info in handle.infolist():
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise EffunetError(f"unsafe archive {archive}: entry {info.filename!r} is a link")
        yield _safe_relative(archive, info.filename), info.is_dir(), info


def _tar_entries(archive: Path, handle: tarfile.TarFile):
    for member in handle.getmembers():
        if member.issym() or member.islnk():
            raise EffunetError(f"unsafe archive {archive}: entry {member.name!r} is a link")
        if not (member.isfile() or member.isdir()):
            raise EffunetError(f"unsafe archive {archive}: entry {member.name!r} is a device or pipe")
        yield _safe_relative(archive, member.name), member.isdir(), member


def _extract_all(archive: Path, target: Path, entries, open_entry) -> int:
    files = 0
    for relative, is_dir, entry in list(entries):
        destination = target.joinpath(*relative.parts)
        if is_dir:
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        with open_entry(entry) as source, open(destination, "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
        files += 1
    return files


def is_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


MAGIC = {b"PK\x03\x04": "zip", b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}


def not_an_archive(path: Path) -> str:
    """Why `path` cannot be extracted, for a file `is_archive` rejects: truncated, or not an archive."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            return (
                f"a truncated or corrupt {kind} archive (it starts like one but cannot be read to the end; "
                "download or copy it again)"
            )
    if not head:
        return "an empty file, not a zip/tar archive"
    return "neither a folder nor a zip/tar archive"


def extract(archive: str | os.PathLike, target: str | os.PathLike) -> int:
    """Extract `archive` (zip or tar, any compression) into `target`, atomically. Returns file count."""
    archive, target = Path(archive), Path(target)
    log.info("extracting %s to %s", archive, target)
    with atomic_dir(target) as staging:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as handle:
                    files = _extract_all(archive, staging, _zip_entries(archive, handle), handle.open)
            elif tarfile.is_tarfile(archive):
                with tarfile.open(archive) as handle:
                    files = _extract_all(archive, staging, _tar_entries(archive, handle), handle.extractfile)
            else:
                raise EffunetError(f"{archive} is {not_an_archive(archive)}")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
            raise EffunetError(f"corrupt archive {archive}: {error}") from error
        if files == 0:
            raise EffunetError(f"empty archive {archive}: it holds no files")
    log.info("extracted %d files from %s", files, archive)
    return files
