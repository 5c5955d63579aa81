"""The command line's error boundary: every failure ends in one stderr line and an exit code.

A failure the user or the environment caused prints ``multidomain COMMAND: error: MESSAGE`` (the
message names the problem and the fix) and exits with a code of the table in
:mod:`multidomain.errors`. Anything else is a bug: its traceback is printed, then a line saying
so, and the exit code is 1. ``-v`` adds the traceback to user errors too.

Which exceptions are the user's:

- the classes of :mod:`multidomain.errors` (their own ``exit_code``) and ``KeyboardInterrupt``;
- an ``OSError`` the operating system raised (it carries an ``errno``): disk full, read-only,
  permission denied, a file where a folder is expected, ... (4; a missing file: 2);
- ``ValueError``, ``KeyError`` and ``FileNotFoundError`` raised by multidomain's own code (the
  innermost frame of the traceback is in the package; calls into C such as ``int('x')`` count
  as the calling frame): the user-error types used before ``errors.py`` existed (2). The same
  types raised inside torch, the standard library or any other package are bugs: a usage
  error there means multidomain passed it something it should have checked.
"""

from __future__ import annotations

import errno
import os
import select
import sys
import traceback
from types import TracebackType

from multidomain.data.images import CorruptImageError
from multidomain.errors import (
    EXIT_BUG,
    EXIT_CLOSED_PIPE,
    EXIT_DATA,
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RANK_LOST,
    EXIT_STORAGE,
    EXIT_USAGE,
    MultidomainError,
)

EXIT_CODES_HELP = f"""exit codes:
  {EXIT_OK:<4} success
  {EXIT_BUG:<4} internal error: a bug in multidomain (the traceback is shown; please report it)
  {EXIT_USAGE:<4} configuration or usage: a bad setting, option, name, path or command
  {EXIT_DATA:<4} data: a devkit tree, annotation file or image that cannot be used as it is
  {EXIT_STORAGE:<4} storage: disk full, read-only or not permitted, a file where a folder is
       expected, a damaged checkpoint, a folder held by another process
  {EXIT_DIVERGED:<4} training diverged (non-finite loss or gradients)
  {EXIT_RANK_LOST:<4} another rank of a torchrun job died or hung; the last checkpoint is intact
  {EXIT_INTERRUPTED:<4} interrupted (Ctrl-C); a training run continues with --resume
  {EXIT_CLOSED_PIPE:<4} stdout closed by its reader (as in `multidomain params | head -1`)
"""

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOT_PERMITTED = {errno.EACCES, errno.EPERM}


def report_failure(command: str, err: BaseException, verbose: bool = False) -> int:
    """Print what went wrong on stderr (one line, or a traceback and a line); return the code."""
    prefix = f"multidomain {command}"
    explained = explain(err)
    if explained is None:
        traceback.print_exception(err, file=sys.stderr)
        print(
            f"{prefix}: internal error: this {type(err).__name__} is a bug in multidomain; "
            "please report it with the command you ran and the traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG
    code, message = explained
    if verbose:
        traceback.print_exception(err, file=sys.stderr)
    print(f"{prefix}: error: {one_line(message)}", file=sys.stderr)
    return code


def stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (``... | head -1`` once head has its
    line). A ``BrokenPipeError`` is that only when this holds: a loader worker's or another
    process's broken pipe is a failure to report."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or no real stdout
        return False
    return any(events & select.POLLERR for _, events in poller.poll(0))


def quit_on_closed_stdout() -> int:
    """End quietly after the reader of stdout went away; returns :data:`EXIT_CLOSED_PIPE`.

    Python's recipe (library docs, "Note on SIGPIPE"): point stdout at ``/dev/null`` so that
    the interpreter's last flush does not fail again with a traceback. The code is 141 (128 +
    SIGPIPE), what ``cat`` or ``yes`` end with in the same place, not 0: the output was cut,
    and ``set -o pipefail`` treats this command as it treats them.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_CLOSED_PIPE


def explain(err: BaseException) -> tuple[int, str] | None:
    """``(exit code, message)`` for a failure the user or the environment caused; None: a bug."""
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(err, CorruptImageError):
        return EXIT_DATA, f"{err} (train with --skip-bad to count and skip such images)"
    if isinstance(err, MultidomainError):
        return err.exit_code, str(err)
    if isinstance(err, OSError) and err.errno is not None:
        return explain_os_error(err)
    if isinstance(err, (ValueError, KeyError, FileNotFoundError)) and raised_by_multidomain(err):
        text = err.args[0] if isinstance(err, KeyError) and err.args else err
        return EXIT_USAGE, str(text)
    return None


def explain_os_error(err: OSError) -> tuple[int, str]:
    """The exit code and a message naming the file and the fix for an operating-system error."""
    file = _file_names(err)
    if err.errno in _DISK_FULL:
        return EXIT_STORAGE, (
            f"disk full: {file}: free space (or choose a folder on another disk) and run the "
            "command again; a training run continues with --resume"
        )
    if err.errno == errno.EROFS:
        return EXIT_STORAGE, (
            f"cannot write {file}: read-only file system; choose a writable folder"
        )
    if err.errno in _NOT_PERMITTED:
        return EXIT_STORAGE, (
            f"cannot write or read {file}: permission denied; change the folder's "
            "permissions or choose another folder"
        )
    if err.errno == errno.ENOTDIR:
        return EXIT_STORAGE, (
            f"cannot use {file}: a part of this path is a file, not a folder; choose another path"
        )
    if err.errno == errno.EEXIST:
        return EXIT_STORAGE, (
            f"cannot create {file}: a file of that name is in the way; move it or choose "
            "another path"
        )
    if err.errno == errno.EISDIR:
        return EXIT_STORAGE, f"{file} is a folder where a file is expected; give a file's path"
    if err.errno == errno.ENOENT:
        return EXIT_USAGE, f"{file}: no such file or folder; check the path"
    return EXIT_STORAGE, (
        f"{file}: {err.strerror or err}; check the disk and the path, then run the command again"
    )


def _file_names(err: OSError) -> str:
    if err.filename is None:
        return "(the operating system named no file)"
    if err.filename2 is not None:
        return f"{err.filename} -> {err.filename2}"
    return str(err.filename)


def raised_by_multidomain(err: BaseException) -> bool:
    """Whether the innermost Python frame of ``err``'s traceback is in the multidomain package."""
    tb: TracebackType | None = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__") or ""
    return module == "multidomain" or module.startswith("multidomain.")


def one_line(message: str) -> str:
    """``message`` with its line breaks turned into spaces (the boundary prints one line)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())
