import os

import pytest

from effunet.files import atomic_dir, atomic_path, write_text_atomic


def test_atomic_path_publishes_with_normal_permissions(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "done")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").read_text() == "done"
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_block_leaves_the_old_file_and_no_temporary(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert (tmp_path / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_dir_replaces_only_on_success(tmp_path):
    with atomic_dir(tmp_path / "d") as staging:
        (staging / "x").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "d") as staging:
            (staging / "y").write_text("2")
            raise RuntimeError
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["x"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]
