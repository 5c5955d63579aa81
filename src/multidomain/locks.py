"""Exclusive locks on folders: one process at a time may change a run folder or a data build.

The lock is ``fcntl.flock`` on a ``.lock`` file inside the folder: the kernel releases it when
the holder exits, killed or not, so a crash never leaves a stale lock. Cleaning up temporary
files left by a crash is safe only while the lock is held (no other writer can own them).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from multidomain.errors import StorageError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "folder") -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (created if missing) for the ``with`` block.

    Raises:
        StorageError: when another process holds it (naming that process when it can).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            raise StorageError(
                f"{what} {folder} is in use by another multidomain process{holder}: wait for it "
                "to finish, or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield folder
    finally:
        os.close(fd)  # closing releases the flock


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
