import hashlib
import zipfile

import pytest

from conftest import free_port
from effunet.data import download
from effunet.errors import EffunetError

PAYLOAD = bytes(range(256)) * 8000  # 2 MB: several 1 MiB chunks


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_verifies_checksum_and_logs_progress(file_server, tmp_path, caplog):
    file_server.files["/data.bin"] = PAYLOAD
    caplog.set_level("INFO")
    path = download.download(file_server.url("/data.bin"), tmp_path / "data.bin", sha256=sha(PAYLOAD))
    assert path.read_bytes() == PAYLOAD
    assert "sha256 of" in caplog.text and "MB" in caplog.text
    assert not (tmp_path / "data.bin.part").exists()


def test_interrupted_transfer_resumes_with_range(file_server, tmp_path):
    file_server.files["/data.bin"] = PAYLOAD
    file_server.cut_first_after = 700_000
    path = download.download(file_server.url("/data.bin"), tmp_path / "data.bin", sha256=sha(PAYLOAD), backoff_s=0)
    assert path.read_bytes() == PAYLOAD
    assert [r["range"] for r in file_server.requests] == [None, "bytes=700000-"]


def test_server_without_range_support_restarts_cleanly(file_server, tmp_path):
    file_server.files["/data.bin"] = PAYLOAD
    file_server.cut_first_after, file_server.ranges = 500_000, False
    path = download.download(file_server.url("/data.bin"), tmp_path / "data.bin", backoff_s=0)
    assert path.read_bytes() == PAYLOAD


def test_checksum_mismatch_removes_the_download(file_server, tmp_path):
    file_server.files["/data.bin"] = PAYLOAD
    with pytest.raises(EffunetError, match="checksum mismatch for .*data.bin"):
        download.download(file_server.url("/data.bin"), tmp_path / "data.bin", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_existing_download_is_reused_without_a_request(file_server, tmp_path):
    (tmp_path / "data.bin").write_bytes(PAYLOAD)
    download.download(file_server.url("/data.bin"), tmp_path / "data.bin", sha256=sha(PAYLOAD))
    assert file_server.requests == []


def test_unreachable_url_names_it(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/stage1_train.zip"
    with pytest.raises(EffunetError, match=f"cannot download {url} after 2 attempts"):
        download.download(url, tmp_path / "x.zip", retries=2, backoff_s=0)
    assert list(tmp_path.iterdir()) == []


def test_http_404_is_not_retried(file_server, tmp_path):
    with pytest.raises(EffunetError, match="HTTP 404"):
        download.download(file_server.url("/missing.zip"), tmp_path / "m.zip", backoff_s=0)
    assert len(file_server.requests) == 1


def test_fetch_url_archive_end_to_end(file_server, tmp_path, dsb_zip):
    file_server.files["/stage1_train.zip"] = dsb_zip.read_bytes()
    raw = download.fetch(
        "dsb2018",
        file_server.url("/stage1_train.zip"),
        tmp_path / "raw",
        tmp_path / "downloads",
        sha256=sha(dsb_zip.read_bytes()),
    )
    assert len(list(raw.glob("*/images/*.png"))) == 8
    assert (tmp_path / "downloads" / "stage1_train.zip").exists()


def test_fetch_local_archive_file_url_and_folder(tmp_path, dsb_zip):
    by_path = download.fetch("dsb2018", str(dsb_zip), tmp_path / "a", tmp_path / "dl")
    by_url = download.fetch("dsb2018", dsb_zip.as_uri(), tmp_path / "b", tmp_path / "dl")
    by_folder = download.fetch("dsb2018", str(by_path), tmp_path / "c", tmp_path / "dl")
    names = [sorted(p.relative_to(root) for p in root.rglob("*.png")) for root in (by_path, by_url, by_folder)]
    assert names[0] == names[1] == names[2] and len(names[0]) > 8


def test_fetch_synthetic_writes_original_layout(tmp_path):
    raw = download.fetch(
        "drive", "synthetic", tmp_path / "raw", tmp_path / "dl", synthetic_options={"n_train": 2, "n_test": 1}
    )
    assert (raw / "DRIVE/training/images/21_training.tif").exists()
    assert not (tmp_path / "dl").exists()  # the generated archive is temporary


def test_drive_without_source_says_where_to_get_it(tmp_path):
    with pytest.raises(EffunetError, match="datasets.drive.source") as error:
        download.fetch("drive", None, tmp_path / "raw", tmp_path / "dl")
    assert "drive.grand-challenge.org" in str(error.value)
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize("source", ["ftp://example.org/x.zip", "s3://bucket/x.zip"])
def test_unknown_scheme_names_the_key(tmp_path, source):
    with pytest.raises(EffunetError, match="datasets.dsb2018.source: unknown source scheme"):
        download.fetch("dsb2018", source, tmp_path / "raw", tmp_path / "dl")


def test_missing_local_source_and_local_checksum(tmp_path, dsb_zip):
    with pytest.raises(EffunetError, match="nope.zip does not exist"):
        download.fetch("dsb2018", str(tmp_path / "nope.zip"), tmp_path / "raw", tmp_path / "dl")
    with pytest.raises(EffunetError, match="checksum mismatch"):
        download.fetch("dsb2018", str(dsb_zip), tmp_path / "raw", tmp_path / "dl", sha256="f" * 64)
    assert not (tmp_path / "raw").exists()


def test_a_download_that_is_no_archive_leaves_the_cache_and_names_url_and_key(file_server, tmp_path, dsb_zip):
    """With sha256 null, a wrong file (an HTML error page) is not reused forever: the next run
    downloads again and succeeds once the server serves the archive."""
    url = file_server.url("/stage1_train.zip")
    file_server.files["/stage1_train.zip"] = b"<html>Service unavailable</html>"
    with pytest.raises(EffunetError) as error:
        download.fetch("dsb2018", url, tmp_path / "raw", tmp_path / "dl")
    assert "config key datasets.dsb2018.source" in str(error.value) and url in str(error.value)
    assert "removed from the download cache" in str(error.value)
    assert list((tmp_path / "dl").iterdir()) == [] and not (tmp_path / "raw").exists()
    file_server.files["/stage1_train.zip"] = dsb_zip.read_bytes()
    raw = download.fetch("dsb2018", url, tmp_path / "raw", tmp_path / "dl")
    assert len(list(raw.glob("*/images/*.png"))) == 8 and len(file_server.requests) == 2


def test_a_truncated_local_zip_is_called_truncated_and_names_the_key(tmp_path, dsb_zip):
    data = dsb_zip.read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 3])
    with pytest.raises(EffunetError, match="datasets.dsb2018.source: .*cut.zip is a truncated or corrupt zip"):
        download.fetch("dsb2018", str(tmp_path / "cut.zip"), tmp_path / "raw", tmp_path / "dl")


def corrupt_one_mask(folder):
    mask = sorted(folder.glob("*/masks/*.png"))[0]
    mask.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return mask


def test_errors_in_a_folder_source_name_the_users_file(tmp_path, dsb_zip):
    from effunet.data import archives, dsb2018

    user = tmp_path / "my data"
    archives.extract(dsb_zip, user)
    broken = corrupt_one_mask(user)
    raw = download.fetch("dsb2018", str(user), tmp_path / "raw", tmp_path / "dl")
    with pytest.raises(EffunetError) as error:
        dsb2018.merge_masks(raw, tmp_path / "labels")
    message = str(error.value)
    assert f"cannot read image {broken}" in message and "datasets.dsb2018.source" in message
    assert str(raw) not in message


def test_errors_in_an_archive_source_name_the_entry_and_the_archive(tmp_path, dsb_zip):
    from effunet.data import archives, dsb2018

    folder = tmp_path / "unpacked"
    archives.extract(dsb_zip, folder)
    broken = corrupt_one_mask(folder).relative_to(folder)
    with zipfile.ZipFile(tmp_path / "mine.zip", "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    raw = download.fetch("dsb2018", str(tmp_path / "mine.zip"), tmp_path / "raw", tmp_path / "dl")
    with pytest.raises(EffunetError, match=f"{broken.as_posix()} in {tmp_path / 'mine.zip'}"):
        dsb2018.merge_masks(raw, tmp_path / "labels", workers=2)


def test_local_source_state_follows_the_users_files(tmp_path):
    import os

    folder = tmp_path / "src"
    (folder / "a").mkdir(parents=True)
    (folder / "a/x.png").write_bytes(b"1")
    first = download.local_source_state(str(folder))
    assert download.local_source_state(str(folder)) == first and first.startswith("1 files")
    os.utime(folder / "a/x.png", ns=(1, 1))
    touched = download.local_source_state(str(folder))
    (folder / "a/y.png").write_bytes(b"2")
    added = download.local_source_state(str(folder))
    assert len({first, touched, added}) == 3
    assert download.local_source_state(folder.as_uri()) == added
    assert download.local_source_state(str(tmp_path / "gone")) == "missing"
    for other in ("synthetic", "https://example.org/x.zip", None):
        assert download.local_source_state(other) is None
