"""Crash-safe file writing: a file is either its old version or its complete new one.

Also: per-file SHA-256 checksums of a folder (``checksums.json``), temporary files and folders
that honour the umask (``mkstemp``/``mkdtemp`` alone would make them 0600/0700), and removal of
the temporaries a crash left behind.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from multidomain.errors import DataError, StorageError

CHECKSUMS_FILE = "checksums.json"
CHECKSUMS_FORMAT = "multidomain.checksums/1"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto it.

    A crash or interrupt before the rename leaves ``path`` untouched (and no partial file).
    An ``OSError`` that names no file (a write on a full disk) is given ``path`` as its file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # the mode a plain open() gives: mkstemp, and writers such as safetensors, make 0600
        os.chmod(tmp_path, 0o666 & ~process_umask())
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except OSError as err:
        if err.filename is None:  # the error line then says which file could not be written
            err.filename = str(path)
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(
    path: str | os.PathLike, data: Any, indent: int | None = 2, sort_keys: bool = False
) -> None:
    """Write ``data`` as JSON, atomically (``sort_keys`` for byte-reproducible files)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Read JSON with an error that names the file when it is missing or malformed.

    Raises:
        FileNotFoundError: when ``path`` is not a file.
        DataError: when it is not valid JSON (a ``ValueError`` too).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}): rewrite or re-create it") from err


@functools.cache
def process_umask() -> int:
    """The process's umask (read once: reading it means setting it, briefly)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """``tempfile.mkdtemp`` with the permissions of a plain ``mkdir`` (the umask's)."""
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    os.chmod(folder, 0o777 & ~process_umask())
    return folder


def remove_temporaries(folder: str | os.PathLike, prefixes: tuple[str, ...]) -> list[str]:
    """Remove the hidden temporaries a crashed writer left directly in ``folder``.

    Only names this project's writers make are touched: ``.NAME.XXXX.tmp`` files of
    :func:`atomic_path`, and entries starting with one of ``prefixes`` (hidden, e.g.
    ``".model."``). Call it only while holding the folder's lock (``multidomain.locks``).

    Returns:
        The names removed.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in sorted(folder.iterdir()):
        name = entry.name
        ours = (name.startswith(".") and name.endswith(".tmp") and entry.is_file()) or any(
            name.startswith(prefix) for prefix in prefixes
        )
        if not ours or entry.is_symlink():
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(name)
    return removed


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listed_files(folder: Path) -> list[str]:
    """Relative paths of the files a checksum covers: all but hidden ones and the list itself.

    A sub-folder with its own ``checksums.json`` (a model inside a checkpoint) is covered by
    that file alone: its files are hashed once, when it is written, and verified through it.
    """
    files = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == CHECKSUMS_FILE:
            continue
        if path.is_dir() and (path / CHECKSUMS_FILE).is_file():
            files.append(f"{path.name}/{CHECKSUMS_FILE}")
        elif path.is_dir():
            files += [f"{path.name}/{name}" for name in _listed_files(path)]
        elif path.is_file():
            files.append(path.name)
    return files


def write_checksums(folder: str | os.PathLike) -> dict[str, str]:
    """Record the SHA-256 of every file under ``folder`` in ``folder/checksums.json``."""
    folder = Path(folder)
    files = {name: file_sha256(folder / name) for name in _listed_files(folder)}
    write_json(
        folder / CHECKSUMS_FILE,
        {"format": CHECKSUMS_FORMAT, "algorithm": "sha256", "files": files},
        sort_keys=True,
    )
    return files


def checksum_problems(folder: str | os.PathLike) -> list[str] | None:
    """What differs from ``folder/checksums.json``: ``[]`` when intact, None when the folder
    has no checksums (written before they existed: nothing to verify)."""
    folder = Path(folder)
    path = folder / CHECKSUMS_FILE
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError):
        return [f"{CHECKSUMS_FILE} is unreadable"]
    problems = []
    for name, expected in sorted(recorded.items()):
        target = folder / name
        if not target.is_file():
            problems.append(f"{name} is missing")
        elif file_sha256(target) != expected:
            problems.append(f"{name} does not match its checksum")
        elif target.name == CHECKSUMS_FILE:  # a sub-folder's own list: verify what it lists
            inner = checksum_problems(target.parent) or []
            problems += [f"{target.parent.relative_to(folder).as_posix()}/{p}" for p in inner]
    return problems


def verify_checksums(folder: str | os.PathLike, what: str = "folder") -> None:
    """Raise :class:`StorageError` naming each damaged or missing file of ``folder``."""
    problems = checksum_problems(folder)
    if problems:
        raise StorageError(
            f"{what} {folder} is damaged ({'; '.join(problems[:5])}): restore it from a copy, "
            "or re-create it"
        )
