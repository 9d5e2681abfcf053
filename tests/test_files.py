"""Atomic writes: complete files, the usual permissions, nothing left on failure."""

import os
import stat

import pytest

from lipmono.files import atomic_path, atomic_write_bytes


def test_write_replaces_whole_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old contents")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_permissions_follow_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "shared.bin", b"x")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "shared.bin").stat().st_mode)
    assert mode == 0o644


def test_failure_leaves_target_and_no_temporary(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"before")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.*does not exist"):
        atomic_write_bytes(tmp_path / "missing" / "f.bin", b"x")


def test_folder_as_destination_is_rejected(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError, match="'.*out' is a folder; give a file path"):
        atomic_write_bytes(tmp_path / "out", b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert list((tmp_path / "out").iterdir()) == []
