"""Where the raw files came from, so that errors about them name the user's original file.

`download` copies or extracts a source into `resources/raw/...` and leaves a note there; the data
steps wrap their work in `original_names(raw_dir)`, which rewrites the paths of raw copies in an
error message into the user's file (a folder source) or the archive entry (an archive or URL).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from effunet.errors import EffunetError

NOTE = ".effunet-source.json"


def write_note(raw_dir: str | os.PathLike, source: str, kind: str, key: str) -> None:
    """Record the source of `raw_dir`: kind is 'folder', 'archive' or 'url'; key its config key."""
    note = {"source": source, "kind": kind, "key": key}
    (Path(raw_dir) / NOTE).write_text(json.dumps(note) + "\n")


def read_note(raw_dir: str | os.PathLike) -> dict | None:
    try:
        return json.loads((Path(raw_dir) / NOTE).read_text())
    except (OSError, ValueError):
        return None


def original_name(raw_dir: str | os.PathLike, path: str | os.PathLike) -> str:
    """The user's name for `path`, a file under `raw_dir`; the path itself if there is no note."""
    note = read_note(raw_dir)
    try:
        relative = Path(path).relative_to(raw_dir).as_posix()
    except ValueError:
        return str(path)
    if note is None:
        return str(path)
    if note["kind"] == "folder":
        return str(Path(note["source"]) / relative)
    return f"{relative} in {note['source']}"


@contextlib.contextmanager
def original_names(raw_dir: str | os.PathLike):
    """Re-raise EffunetErrors with raw copies' paths replaced by the user's names for them."""
    try:
        yield
    except EffunetError as error:
        note = read_note(raw_dir)
        if note is None:
            raise
        prefix = re.escape(str(raw_dir).rstrip("/"))
        message = re.sub(
            prefix + r"(/[^\s:,;'\"()]*)?", lambda match: original_name(raw_dir, match.group(0)), str(error)
        )
        if message == str(error):
            raise
        raise type(error)(f"{message} (config key {note['key']})") from error
