"""Atomic file writes: a temporary file in the target's folder, fsync, then rename.

A reader never sees a half-written file, and a crash or Ctrl-C leaves the previous
version (or nothing) in place, never a truncated one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from digitnet.errors import DigitnetError


def make_folder(folder: str | os.PathLike) -> Path:
    """``folder`` and its parents, made if missing; one line naming it when they cannot be."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        nearest = nearest_existing(folder)
        raise cannot_make(folder, f"{nearest} is a file, not a folder" if nearest and not nearest.is_dir()
                          else e.strerror or str(e)) from e
    return folder


def check_folder(folder: str | os.PathLike) -> None:
    """Refuse now, in one line, a folder that ``make_folder`` could only refuse after long work
    (a file on its way, a folder this user may not write); makes nothing."""
    folder = Path(folder)
    nearest = nearest_existing(folder)
    if nearest is None:
        return
    if not nearest.is_dir():
        raise cannot_make(folder, f"{nearest} is a file, not a folder")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise cannot_make(folder, f"{nearest} is not writable")


def nearest_existing(folder: Path) -> Path | None:
    """``folder`` or its nearest ancestor that exists: where making ``folder`` would start."""
    return next((p for p in [folder, *folder.parents] if p.exists()), None)


def cannot_make(folder: Path, reason: str) -> DigitnetError:
    return DigitnetError(f"cannot make the folder {folder}: {reason}; choose a folder you may write to")


def check_writable(path: str | os.PathLike) -> None:
    """Refuse now, in one line, a ``path`` that a command could only write after long work."""
    os.unlink(temporary_sibling(Path(path)))


def temporary_sibling(path: Path) -> str:
    """A new empty file beside ``path`` (its folder made if missing), for writing ``path``."""
    make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise DigitnetError(f"cannot write {path}: {e.strerror or e}; choose a folder you may "
                            "write to") from e
    os.close(fd)
    return tmp


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path``; on success it replaces ``path``, on error it goes.

    A folder that cannot be made or written, or a full disk, is a ``DigitnetError`` naming
    ``path`` (not the temporary file), and the previous ``path`` is left as it was."""
    path = Path(path)
    tmp = temporary_sibling(path)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result gets normal permissions
    try:
        with open(tmp, mode) as f:  # f.name is the temporary path, for checks before the rename
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise DigitnetError(f"cannot write {path}: {e.strerror}; free some space and run "
                                "again (the previous file, if any, is unchanged)") from e
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
