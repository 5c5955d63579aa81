"""The errors a user can cause, each with the exit code the command line ends with.

Exit codes (README, "Reliability"):

====  ==========================================================================
0     success
1     internal error: a bug in multidomain (the traceback is shown)
2     configuration or usage: a bad setting, option, name or command
3     data: a devkit tree, annotation file or image that cannot be used as it is
4     storage: a file or folder that cannot be written or read back intact
      (disk full, read-only, damaged checkpoint, folder held by another process)
5     training diverged (non-finite loss or gradients)
6     a rank of a multi-process (torchrun) job died or hung; the others stop with this code
130   interrupted (Ctrl-C / SIGINT); a training run resumes with ``--resume``
141   stdout closed by its reader (``multidomain params | head -1``): nothing printed on stderr
====  ==========================================================================

Code raising these classes promises that the message names the problem and the fix; the
command line prints it on one line with no traceback. Each class also derives from the
built-in exception the Python API raised before (``ValueError``, ``OSError``), so callers
that catch those keep working.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_STORAGE = 4
EXIT_DIVERGED = 5
EXIT_RANK_LOST = 6
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE: what `cat` or `yes` end with in the same place


class MultidomainError(Exception):
    """Base of every error caused by input or environment, not by a bug."""

    exit_code = EXIT_USAGE


class ConfigError(MultidomainError, ValueError):
    """A setting, option or name that is wrong or out of range."""

    exit_code = EXIT_USAGE


class InputNotFound(ConfigError, FileNotFoundError):
    """A file or folder named by a setting or an option does not exist (a usage error)."""

    exit_code = EXIT_USAGE


class DataError(MultidomainError, ValueError):
    """Data that cannot be used as it is: a devkit tree, annotations, images."""

    exit_code = EXIT_DATA


class StorageError(MultidomainError, OSError):
    """A file or folder that cannot be written, or read back intact (checksum, damage, lock)."""

    exit_code = EXIT_STORAGE


class TrainingDiverged(MultidomainError, RuntimeError):
    """The loss or the gradients became NaN or infinite; the last good checkpoint is intact."""

    exit_code = EXIT_DIVERGED


class RankLost(MultidomainError, RuntimeError):
    """Another rank of a torchrun job died or hung past the process-group timeout."""

    exit_code = EXIT_RANK_LOST


class Interrupted(MultidomainError):
    """The user stopped the command (Ctrl-C); the message says how to continue."""

    exit_code = EXIT_INTERRUPTED
