"""One error boundary (issue 8, section 3): every failure a user or the environment causes ends
in one stderr line ``multidomain COMMAND: error: ...`` and an exit code from the table in
``multidomain.errors``; a bug shows its traceback and says it is a bug (exit 1)."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import pytest
import torch

import multidomain
from multidomain.cli import main
from multidomain.errors import (
    EXIT_BUG,
    EXIT_DATA,
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_STORAGE,
    EXIT_USAGE,
    DataError,
    Interrupted,
    StorageError,
    TrainingDiverged,
)

PARAMS = ["params", "--domains", "a:2,b:3", "--width", "0.125"]


def train_args(out, data_root=None) -> list[str]:
    """A valid ``train`` command, by default on data that does not exist: it fails creating the
    run folder or, where that succeeds, finding no data. Given the session's tiny tree
    (``data_root``), it reaches its first write (the run's config.yaml)."""
    data_root = data_root or out.parent / "no-data"
    settings = ["data.domains=[digits]", f"data.root={data_root}"]
    settings += ["data.prepare_offline=false", "model.width=0.125"]
    args = ["train", "--config", "mini/pretrain", "--out", str(out)]
    for setting in settings:
        args += ["--set", setting]
    return args


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"multidomain {command}: error: "), err
    return err


def params_raising(monkeypatch, raise_it) -> None:
    """Make ``multidomain params`` call ``raise_it()`` where it counts the parameters."""

    def count_parameters(model):
        raise_it()

    monkeypatch.setattr("multidomain.cli.params.count_parameters", count_parameters)


def raiser(error: BaseException):
    def raise_it():
        raise error

    return raise_it


# -- the environment: storage ------------------------------------------------------------------
def test_disk_full_while_writing_names_the_file_and_exits_4(root, tmp_path, monkeypatch, capsys):
    def fsync(fd):  # what a write on a full disk reports: no file name attached
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)
    assert main(train_args(tmp_path / "run", root)) == EXIT_STORAGE
    err = one_error_line(capsys, "train")
    assert "disk full" in err and str(tmp_path / "run" / "config.yaml") in err
    assert "free" in err  # the fix


def test_disk_quota_on_rename_names_the_file(root, tmp_path, monkeypatch, capsys):
    def replace(src, dst):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(dst))

    monkeypatch.setattr(os, "replace", replace)
    assert main(train_args(tmp_path / "run", root)) == EXIT_STORAGE
    err = one_error_line(capsys, "train")
    assert "disk full" in err and "config.yaml" in err


def test_a_file_given_as_out_folder_exits_4_naming_it(tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("keep")
    assert main(train_args(out)) == EXIT_STORAGE
    assert str(out) in one_error_line(capsys, "train")
    assert out.read_text() == "keep"


def test_an_out_folder_below_a_file_exits_4_naming_it(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep")
    assert main(train_args(tmp_path / "notes.txt" / "run")) == EXIT_STORAGE
    assert "notes.txt" in one_error_line(capsys, "train")


def deny_writes_below(folder: Path, monkeypatch, code: int) -> None:
    """Make creating anything in ``folder`` fail with ``code`` (EACCES, EROFS)."""
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if Path(path).parent == folder:
            raise OSError(code, os.strerror(code), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)


def test_a_folder_without_write_permission_exits_4(tmp_path, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root ignores the mode bits: provoke the error the OS would give
        deny_writes_below(locked, monkeypatch, errno.EACCES)
    else:
        locked.chmod(0o500)
    try:
        assert main(train_args(locked / "run")) == EXIT_STORAGE
    finally:
        locked.chmod(0o700)
    err = one_error_line(capsys, "train")
    assert "permission denied" in err and str(locked / "run") in err


def test_a_read_only_file_system_exits_4(tmp_path, monkeypatch, capsys):
    deny_writes_below(tmp_path, monkeypatch, errno.EROFS)
    assert main(train_args(tmp_path / "run")) == EXIT_STORAGE
    err = one_error_line(capsys, "train")
    assert "read-only" in err and str(tmp_path / "run") in err


def test_another_os_error_with_a_file_exits_4_naming_it(monkeypatch, capsys):
    params_raising(monkeypatch, raiser(OSError(errno.EIO, os.strerror(errno.EIO), "/x/disk.bin")))
    assert main(PARAMS) == EXIT_STORAGE
    assert "/x/disk.bin" in one_error_line(capsys, "params")


# -- interrupts -------------------------------------------------------------------------------
def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys):
    params_raising(monkeypatch, raiser(KeyboardInterrupt()))
    assert main(PARAMS) == EXIT_INTERRUPTED
    assert "interrupted" in one_error_line(capsys, "params")


def test_an_interrupted_error_keeps_its_message(monkeypatch, capsys):
    message = "interrupted at step 3; resume with --resume"
    params_raising(monkeypatch, raiser(Interrupted(message)))
    assert main(PARAMS) == EXIT_INTERRUPTED
    assert one_error_line(capsys, "params").endswith(message)


# -- our own error classes ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "code"),
    [
        (DataError("annotations/x.json: image 7 has two labels; fix the file"), EXIT_DATA),
        (StorageError("checkpoint damaged; resume falls back to the previous one"), EXIT_STORAGE),
        (TrainingDiverged("loss is nan at step 4; lower optim.lr"), EXIT_DIVERGED),
    ],
)
def test_each_error_class_exits_with_its_code(monkeypatch, capsys, error, code):
    params_raising(monkeypatch, raiser(error))
    assert main(PARAMS) == code
    assert one_error_line(capsys, "params").endswith(str(error))


def test_a_corrupt_image_keeps_the_skip_bad_hint_and_exits_3(monkeypatch, capsys):
    from multidomain.data.images import CorruptImageError

    params_raising(monkeypatch, raiser(CorruptImageError("cannot decode data/animals/x.jpg")))
    assert main(PARAMS) == EXIT_DATA
    err = one_error_line(capsys, "params")
    assert "x.jpg" in err and "--skip-bad" in err


# -- usage errors of our code versus bugs ---------------------------------------------------------
def test_a_value_error_raised_by_our_code_is_a_usage_error(capsys):
    assert main(["params", "--domains", "svhn:x"]) == EXIT_USAGE
    assert "'svhn:x'" in one_error_line(capsys, "params")


def test_a_builtin_failing_on_user_input_in_our_frame_is_a_usage_error(monkeypatch, capsys):
    params_raising(monkeypatch, in_package_frame("float('high')"))
    assert main(PARAMS) == EXIT_USAGE
    assert "high" in one_error_line(capsys, "params")


def in_package_frame(statement: str):
    """A function whose frame belongs to the ``multidomain`` package (module ``multidomain.x``)."""
    namespace = {"__name__": "multidomain.x"}
    exec(f"def run():\n    {statement}", namespace)
    return namespace["run"]


def test_a_key_error_of_our_code_is_a_usage_error_printed_unquoted(monkeypatch, capsys):
    params_raising(monkeypatch, in_package_frame("return {}['snapshot']"))
    assert main(PARAMS) == EXIT_USAGE
    assert one_error_line(capsys, "params").endswith("error: snapshot")


def test_a_file_not_found_of_our_code_is_a_usage_error(monkeypatch, capsys):
    params_raising(monkeypatch, in_package_frame("raise FileNotFoundError('no run at x/y')"))
    assert main(PARAMS) == EXIT_USAGE
    assert one_error_line(capsys, "params").endswith("error: no run at x/y")


def assert_reported_as_bug(capsys, command: str, kind: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "Traceback (most recent call last)" in err
    assert kind in err
    last = err.splitlines()[-1]
    assert last.startswith(f"multidomain {command}: internal error:"), last
    assert "bug in multidomain" in last and "report" in last and "traceback" in last


@pytest.mark.parametrize(
    "error", [TypeError("unsupported operand"), IndexError("list index out of range")]
)
def test_a_type_or_index_error_is_a_bug_with_its_traceback(monkeypatch, capsys, error):
    params_raising(monkeypatch, raiser(error))
    assert main(PARAMS) == EXIT_BUG
    assert_reported_as_bug(capsys, "params", type(error).__name__)


def test_a_value_error_raised_inside_torch_is_a_bug(monkeypatch, capsys):
    params_raising(monkeypatch, lambda: torch.optim.SGD([], lr=0.1))  # ValueError in torch.optim
    assert main(PARAMS) == EXIT_BUG
    assert_reported_as_bug(capsys, "params", "ValueError")


def test_a_value_error_raised_inside_the_standard_library_is_a_bug(monkeypatch, capsys):
    params_raising(monkeypatch, lambda: json.loads("{"))  # JSONDecodeError in json.decoder
    assert main(PARAMS) == EXIT_BUG
    assert_reported_as_bug(capsys, "params", "JSONDecodeError")


def test_a_value_error_raised_outside_the_package_is_a_bug(monkeypatch, capsys):
    params_raising(monkeypatch, raiser(ValueError("raised by a test helper, not multidomain")))
    assert main(PARAMS) == EXIT_BUG
    assert_reported_as_bug(capsys, "params", "ValueError")


def test_verbose_shows_the_traceback_of_a_usage_error_and_keeps_the_code(capsys):
    assert main(["-v", "params", "--domains", "svhn:x"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("multidomain params: error: ")


def test_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    table = [(0, "success"), (1, "bug"), (2, "config"), (3, "data")]
    table += [(4, "disk full"), (5, "diverged"), (130, "interrupted")]
    for code, word in table:
        assert re.search(rf"^ *{code} +.*{word}", out, re.MULTILINE | re.IGNORECASE), (code, out)


def test_no_message_suggests_unsafe_unpickling():
    package = Path(multidomain.__file__).parent
    offenders = [
        path.relative_to(package).as_posix()
        for path in sorted(package.rglob("*.py"))
        if "weights_only=False" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
