"""A configured data set's raw files checked where they are (`effunet check-data`): above the format
registry (`effunet.data.formats`) and the download step (`effunet.data.download`), which it uses."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from effunet.data import archives, download, formats
from effunet.errors import ConfigError


def check_source(name: str, settings: dict, workers: int = 1, raw_dir: str | os.PathLike | None = None):
    """Check a configured data set's raw files (`effunet check-data`): a local folder as it is, a local
    archive or a synthetic source in a scratch folder, a URL where the workflow has downloaded it
    (`raw_dir`). Returns an `effunet.data.checks.Report`."""
    entry = formats.get(settings["format"])
    source = settings.get("source")
    with tempfile.TemporaryDirectory() as scratch:
        if raw_dir is not None and Path(raw_dir).is_dir():
            raw = Path(raw_dir)
        elif not source:
            raise ConfigError(f"config key datasets.{name}.source is not set: nothing to check")
        elif source == "synthetic":
            raw = Path(scratch) / "raw"
            archives.extract(
                formats.write_synthetic(
                    entry.name, Path(scratch) / "synthetic.zip", **formats.synthetic_options(settings)
                ),
                raw,
            )
        elif download.local_path(source) is None:
            raise ConfigError(
                f"config key datasets.{name}.source: {source} is not downloaded yet; run the "
                f"workflow's download step first (it stops at the checks if they fail)"
            )
        else:
            path = download.local_path(source)
            if not path.exists():
                raise ConfigError(f"config key datasets.{name}.source: {path} does not exist")
            raw = path
            if path.is_file():
                raw = Path(scratch) / "raw"
                archives.extract(path, raw)
        return entry.check(raw, settings, name, workers)
