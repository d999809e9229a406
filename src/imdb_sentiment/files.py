"""Writes that never leave a half-written file or folder behind."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class UserError(Exception):
    """A problem the user can fix (missing file, bad data, no network): printed without a
    traceback."""

    exit_code = 2


@contextmanager
def atomic_file(path: Path):
    """Yields a temporary sibling path to write; renames it to `path` only if the block succeeds.

    The temporary name keeps the file's suffix, for writers that insist on one (Keras, numpy).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f".partial{path.suffix}"
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a serving user may need to read it
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_model(model, path: Path) -> None:
    """model.save() under a temporary name, then renamed: a crash never leaves a truncated .keras
    file."""
    with atomic_file(path) as tmp:
        model.save(tmp)


def write_json(path: Path, obj) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, default=str) + "\n")


@contextmanager
def atomic_dir(final: Path):
    """Yields a temporary sibling folder; renames it to `final` only if the block succeeds.

    The temporary name starts with a dot and is not an integer, so TF Serving never loads it.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".partial"))
    try:
        yield tmp
        if final.exists():
            raise FileExistsError(f"{final} already exists")
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; TF Serving may run as another user
        _fsync_tree(tmp)
        os.rename(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fsync_dir(folder: Path) -> None:
    """Makes a rename inside `folder` durable: until the folder itself is fsynced, a power cut can
    bring back its old entry even though the renamed file's data was on disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Every file and folder under root on disk, before root is renamed into place."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(Path(folder))


def discard_dir(path: Path) -> None:
    """Removes a folder so that it is never seen half-deleted: it is renamed to a hidden sibling
    first (one atomic step), then deleted; a crash in between leaves only that hidden sibling."""
    path = Path(path)
    doomed = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".discarded"))
    os.replace(path, doomed)
    fsync_dir(path.parent)
    shutil.rmtree(doomed)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, sha256: str, folder: Path, fname: str) -> Path:
    """folder/fname, downloaded from url unless a copy with the right SHA-256 is already there.

    keras.utils.get_file downloads (progress bar, HTTP errors) under a temporary name; the file
    is renamed to fname only once its hash matches. A killed or corrupted download therefore never
    sits under the real name, and a cached copy that does not match is fetched again.
    """
    import keras  # here: files is imported at every command's start, TensorFlow only when needed

    folder = Path(folder)
    final = folder / fname
    if final.exists():
        if sha256_of(final) == sha256:
            return final
        log.info(f"{final}: SHA-256 does not match (truncated or corrupted); fetching it again")
        final.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{fname}.partial"
    try:
        keras.utils.get_file(
            tmp.name,
            url,
            file_hash=sha256,
            hash_algorithm="sha256",
            cache_dir=str(folder),
            cache_subdir=".",
            force_download=True,
        )
        os.replace(tmp, final)
    except Exception as e:  # get_file raises bare Exceptions for HTTP and network errors
        raise UserError(f"could not download {url}: {e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return final
