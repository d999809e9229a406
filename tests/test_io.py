"""Durable writes: a file or folder renamed into place is on disk, and so is the rename itself."""

import os
import stat

from imdb_sentiment.files import atomic_dir, atomic_write_text, fsync_dir


def fsynced(monkeypatch) -> list[tuple[int, bool]]:
    """Records (inode, is a folder) of every os.fsync call, which still runs for real."""
    calls, real = [], os.fsync

    def spy(fd):
        st = os.fstat(fd)
        calls.append((st.st_ino, stat.S_ISDIR(st.st_mode)))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


def test_atomic_file_flushes_the_file_then_its_folder(tmp_path, monkeypatch):
    calls = fsynced(monkeypatch)
    atomic_write_text(tmp_path / "a.json", "{}\n")
    file, folder = (tmp_path / "a.json").stat().st_ino, tmp_path.stat().st_ino
    assert calls.index((file, False)) < calls.index((folder, True))  # the rename after the data


def test_atomic_dir_flushes_every_file_and_folder_then_the_parent(tmp_path, monkeypatch):
    calls = fsynced(monkeypatch)
    final = tmp_path / "models" / "1"
    with atomic_dir(final) as tmp:
        (tmp / "variables").mkdir()
        (tmp / "variables" / "data").write_bytes(b"weights")
        (tmp / "saved_model.pb").write_bytes(b"graph")

    def inode(p):
        return p.stat().st_ino

    inside = [
        (inode(final / "variables" / "data"), False),
        (inode(final / "saved_model.pb"), False),
        (inode(final / "variables"), True),
        (inode(final), True),
    ]
    assert set(inside) <= set(calls)
    assert calls[-1] == (inode(final.parent), True)  # the new name, flushed last
    fsync_dir(tmp_path)  # and on a real folder, directly
