"""The build record: every file a mini-decathlon build wrote, with its SHA-256.

A rebuild or a resumed build deletes a file only when the record lists it and its content still
has the recorded digest: a file the user added, edited or copied in is never deleted. Two hidden
files at the root of the tree hold the record:

- ``.building`` while a build runs: a journal, ``{"params": ...}`` on its first line, then one
  ``<sha256> <relative path>`` line per file, appended *before* the file is written (a file is
  written under a hidden ``.<name>.part`` name and renamed, so a build stopped at any moment
  leaves each listed file either absent or complete);
- ``.complete.json`` once it has finished: ``{"params": ..., "files": {path: sha256}}``.

A non-empty folder with neither is not ours: the builder refuses it (its ``.lock`` aside).

A ``.complete.json`` without ``files`` was written by the builder before the record existed:
:func:`legacy_files` reads its record off the tree (the files that builder wrote and named).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from multidomain.data.benchmark import BENCHMARK_FILE
from multidomain.data.devkit import (
    SPLITS,
    annotation_path,
    file_name_problem,
    read_json,
    write_json_atomic,
)
from multidomain.errors import DataError
from multidomain.io import atomic_path, file_sha256
from multidomain.locks import LOCK_FILE

COMPLETE_MARKER = ".complete.json"
BUILDING_MARKER = ".building"
PART_SUFFIX = ".part"


def has_record(out: Path) -> bool:
    """Whether ``out`` holds a build record of ours (finished or not)."""
    return (out / COMPLETE_MARKER).is_file() or (out / BUILDING_MARKER).is_file()


def building_params(out: Path) -> dict[str, Any] | None:
    """The parameters of the unfinished build in ``out``, or None (no journal, or an old one)."""
    header = _journal_lines(out)[:1]
    try:
        return json.loads(header[0])["params"] if header else None
    except (ValueError, KeyError, TypeError):
        return None


def recorded_files(out: Path) -> dict[str, set[str]]:
    """Relative path -> the SHA-256 digests builds recorded for it (finished and unfinished)."""
    files: dict[str, set[str]] = {}
    if (out / COMPLETE_MARKER).is_file():
        marker = read_json(out / COMPLETE_MARKER)
        listed = (marker.get("files") or {}) if "files" in marker else legacy_files(out)
        for name, digest in listed.items():
            files.setdefault(name, set()).add(digest)
    for line in _journal_lines(out)[1:]:
        digest, _, name = line.partition(" ")
        if len(digest) == 64 and name:  # a line cut short by a crash is no record
            files.setdefault(name, set()).add(digest)
    return files


def legacy_files(out: Path) -> dict[str, str]:
    """The record of a finished build made before records existed (``.complete.json`` holds
    its params only), read off the tree.

    The marker proves that the builder wrote the tree, and that builder wrote only what it
    named: ``benchmark.json`` (a mini-decathlon one), the annotation files of each domain that
    file lists, and the images those annotation files list under ``data/<domain>/``. These are
    the record, each with the digest it has now; a file none of them names (a note, an image
    of the user's, one dropped from an annotation file) is never taken for ours.

    Raises:
        DataError: no mini-decathlon ``benchmark.json`` stands beside the marker, so nothing
            in the tree is provably ours.
    """
    content = _json_or_none(out / BENCHMARK_FILE)
    domains = content.get("domains") if isinstance(content, dict) else None
    if not isinstance(domains, dict) or content.get("name") != "mini-decathlon":
        raise DataError(
            f"{out} has a {COMPLETE_MARKER} without a file list (an old build) but no "
            f"mini-decathlon {BENCHMARK_FILE} beside it, so nothing in it is provably the "
            "builder's: nothing was deleted; build into a new folder"
        )
    names = {BENCHMARK_FILE}
    for domain in domains:
        paths = [annotation_path("", domain, split).as_posix() for split in SPLITS]
        paths.append(annotation_path("", domain, "test", stripped=True).as_posix())
        names.update(paths)
        for path in paths:
            names.update(_listed_images(out, path, f"data/{domain}/"))
    return {
        name: file_sha256(out / name)
        for name in sorted(names)
        if (out / name).is_file() and not (out / name).is_symlink()
    }


def _listed_images(out: Path, annotation: str, prefix: str) -> set[str]:
    """The image file names an annotation file lists under ``prefix`` (none if unreadable)."""
    document = _json_or_none(out / annotation)
    images = document.get("images") if isinstance(document, dict) else None
    if not isinstance(images, list):
        return set()
    names = {image.get("file_name") for image in images if isinstance(image, dict)}
    return {
        name
        for name in names
        if isinstance(name, str) and name.startswith(prefix) and not file_name_problem(out, name)
    }


def _json_or_none(path: Path) -> Any:
    try:
        return read_json(path) if path.is_file() else {}
    except ValueError:
        return {}


def _journal_lines(out: Path) -> list[str]:
    path = out / BUILDING_MARKER
    if not path.is_file():
        return []
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def _part(path: Path) -> Path:
    return path.with_name(f".{path.name}{PART_SUFFIX}")


def _is_ours(path: Path, digests: set[str]) -> bool:
    return path.is_file() and not path.is_symlink() and file_sha256(path) in digests


def _safe_names(out: Path, files: dict[str, set[str]]) -> dict[str, set[str]]:
    """Only paths inside ``out``: a damaged record must not reach outside the tree."""
    return {name: d for name, d in files.items() if file_name_problem(out, name) is None}


def refuse_foreign_folder(out: Path) -> None:
    """Raise :class:`DataError` when ``out`` has entries (its ``.lock`` aside) and no record."""
    if has_record(out):
        return
    entries = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE) if out.is_dir() else []
    if entries:
        raise DataError(
            f"{out} is not empty (it holds {', '.join(entries[:3])}"
            f"{', ...' if len(entries) > 3 else ''}) and has no build record of the "
            f"mini-decathlon builder ({COMPLETE_MARKER} or {BUILDING_MARKER}): nothing in it "
            "will be deleted; build into an empty folder or a new one, or, if it holds a "
            "devkit tree, use it as it is (data.root pointing at it, without "
            "data.prepare_offline)"
        )


def _refuse_changed_files(out: Path, files: dict[str, set[str]]) -> None:
    changed = [
        name
        for name, digests in sorted(files.items())
        if ((out / name).exists() or (out / name).is_symlink())
        and not _is_ours(out / name, digests)
    ]
    if changed:
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        raise DataError(
            f"{len(changed)} file(s) of the previous build in {out} were changed since it wrote "
            f"them ({shown}): nothing was deleted; move them out of {out} (or delete them "
            "yourself) and build again, or build into a new folder"
        )


def _remove_own_files(out: Path, files: dict[str, set[str]]) -> None:
    """Delete the listed files that still hold a recorded digest, their leftover ``.part``
    files, and the folders this leaves empty (never a folder holding anything else)."""
    folders: set[Path] = set()
    for name, digests in files.items():
        path = out / name
        part = _part(path)
        if part.is_file() and not part.is_symlink():
            part.unlink()
        if _is_ours(path, digests):
            path.unlink()
        folders.update(p for p in path.parents if p != out and p.is_relative_to(out))
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()


def start_build(out: Path, params: dict[str, Any]) -> BuildJournal:
    """Clear the previous build of ours in ``out`` and open the journal of a new one.

    Call it holding ``folder_lock(out)``. Nothing is deleted when it raises.

    Raises:
        DataError: when ``out`` is not empty and holds no record of ours, or when a file the
            previous build wrote was changed since (it is the user's now).
    """
    refuse_foreign_folder(out)
    files = _safe_names(out, recorded_files(out))
    _refuse_changed_files(out, files)
    # the journal takes over the whole record before the completion marker goes: a crash
    # while clearing leaves every remaining file of ours listed
    lines = [json.dumps({"params": params}, sort_keys=True)]
    lines += [f"{digest} {name}" for name, digests in sorted(files.items()) for digest in digests]
    with atomic_path(out / BUILDING_MARKER) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / COMPLETE_MARKER).unlink(missing_ok=True)
    for leftover in out.glob(f".{COMPLETE_MARKER}.*.tmp"):
        leftover.unlink()
    _remove_own_files(out, files)
    return BuildJournal(out)


class BuildJournal:
    """Writes a build's files, each recorded in the journal before it is written.

    Thread-safe: image encoders in a thread pool call :meth:`write` together.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: dict[str, str] = {}
        self._lock = threading.Lock()
        self._handle = open(out / BUILDING_MARKER, "a", encoding="utf-8")  # noqa: SIM115

    def __enter__(self) -> BuildJournal:
        return self

    def __exit__(self, *exc_info) -> None:
        self._handle.close()

    def write(self, name: str, data: bytes) -> None:
        """Write ``data`` to ``out/name`` (a relative POSIX path), recorded first.

        Raises:
            DataError: when another file is in the way (the same bytes are no conflict).
        """
        digest = hashlib.sha256(data).hexdigest()
        target = self.out / name
        same = target.exists() and _is_ours(target, {digest})
        if (target.exists() or target.is_symlink()) and not same:
            raise DataError(
                f"{target} is in the way of the mini-decathlon build and was not written by it: "
                f"move it out of {self.out}, or build into a new folder"
            )
        with self._lock:
            self._handle.write(f"{digest} {name}\n")
            self._handle.flush()
            self.files[name] = digest
        if same:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        part = _part(target)
        part.write_bytes(data)
        os.replace(part, target)

    def write_json(self, name: str, content: Any, indent: int | None = None) -> None:
        """Write JSON as ``devkit.write_json_atomic`` does (sorted keys, one final newline)."""
        text = json.dumps(content, indent=indent, sort_keys=True) + "\n"
        self.write(name, text.encode("utf-8"))

    def finish(self, params: dict[str, Any]) -> None:
        """Write ``.complete.json`` (params and every file written) and drop the journal."""
        self._handle.close()
        record = {"params": params, "files": dict(sorted(self.files.items()))}
        write_json_atomic(self.out / COMPLETE_MARKER, record, indent=2)
        (self.out / BUILDING_MARKER).unlink(missing_ok=True)
