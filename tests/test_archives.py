import io
import stat
import tarfile
import zipfile

import pytest

from effunet.data import archives
from effunet.errors import EffunetError


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as handle:
        for name, data in entries:
            handle.writestr(name, data)
    return path


def make_tar(path, members):
    with tarfile.open(path, "w:gz") as handle:
        for info, data in members:
            handle.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_zip_extracts_nested_files(tmp_path):
    archive = make_zip(tmp_path / "a.zip", [("top/", b""), ("top/x/y.txt", b"hello"), ("z.txt", b"z")])
    assert archives.extract(archive, tmp_path / "out") == 2
    assert (tmp_path / "out/top/x/y.txt").read_bytes() == b"hello"
    assert (tmp_path / "out/z.txt").read_bytes() == b"z"


def test_tar_gz_extracts(tmp_path):
    info = tarfile.TarInfo("d/f.bin")
    info.size = 3
    archive = make_tar(tmp_path / "a.tar.gz", [(info, b"abc")])
    assert archives.extract(archive, tmp_path / "out") == 1
    assert (tmp_path / "out/d/f.bin").read_bytes() == b"abc"


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/etc/evil.txt", "C:/evil.txt"])
def test_zip_slip_and_absolute_paths_are_refused(tmp_path, name):
    archive = make_zip(tmp_path / "bad.zip", [("ok.txt", b"ok"), (name, b"x")])
    with pytest.raises(EffunetError, match="unsafe archive .*bad.zip"):
        archives.extract(archive, tmp_path / "out" / "target")
    assert not (tmp_path / "out" / "target").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_zip_symlink_is_refused(tmp_path):
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "l.zip", "w") as handle:
        handle.writestr(info, "/etc/passwd")
    with pytest.raises(EffunetError, match="is a link"):
        archives.extract(tmp_path / "l.zip", tmp_path / "out")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_links_are_refused(tmp_path, kind):
    info = tarfile.TarInfo("link")
    info.type, info.linkname = kind, "../../etc/passwd"
    archive = make_tar(tmp_path / "l.tar.gz", [(info, None)])
    with pytest.raises(EffunetError, match="is a link"):
        archives.extract(archive, tmp_path / "out")


def test_empty_archive_is_an_error(tmp_path):
    archive = make_zip(tmp_path / "empty.zip", [("only-a-folder/", b"")])
    with pytest.raises(EffunetError, match="empty archive .*empty.zip"):
        archives.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_an_archive(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"not a zip at all")
    with pytest.raises(EffunetError, match="x.zip is neither a folder nor a zip/tar archive"):
        archives.extract(tmp_path / "x.zip", tmp_path / "out")


def test_truncated_zip_leaves_previous_output_intact(tmp_path):
    good = make_zip(tmp_path / "good.zip", [("a.txt", b"a" * 5000)])
    archives.extract(good, tmp_path / "out")
    data = good.read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[:60] + data[-22:])  # central directory points to junk
    with pytest.raises(EffunetError, match="cut.zip"):
        archives.extract(tmp_path / "cut.zip", tmp_path / "out")
    assert (tmp_path / "out/a.txt").read_bytes() == b"a" * 5000


def test_truncated_zip_is_called_truncated(tmp_path):
    good = make_zip(tmp_path / "good.zip", [("a.txt", bytes(range(256)) * 40)])
    data = good.read_bytes()
    (tmp_path / "half.zip").write_bytes(data[: len(data) // 2])  # a download cut short
    with pytest.raises(EffunetError, match="half.zip is a truncated or corrupt zip archive"):
        archives.extract(tmp_path / "half.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()
