"""The crash-safe file helpers (``multidomain.io``) and folder locks (``multidomain.locks``).

Issue 8, section 4: outputs honour the umask, a crash leaves the old file and no temporary,
checksums catch damage, crash leftovers are removed without touching a user's files, and a
folder is held by one process at a time (released when the holder dies, even by SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import multidomain
from multidomain.errors import StorageError
from multidomain.io import (
    CHECKSUMS_FILE,
    atomic_path,
    checksum_problems,
    remove_temporaries,
    verify_checksums,
    write_checksums,
    write_json,
)
from multidomain.locks import folder_lock

PACKAGE = Path(multidomain.__file__).parent

# Subprocesses import ``multidomain.io``/``locks`` without the package's ``__init__`` (which
# imports torch, seconds per process): the helpers under test need only the standard library.
_PREAMBLE = f"""
import sys, types
package = types.ModuleType("multidomain")
package.__path__ = [{str(PACKAGE)!r}]
sys.modules["multidomain"] = package
"""


def _run_python(code: str, *args: object, **popen) -> subprocess.Popen:
    argv = [sys.executable, "-c", _PREAMBLE + textwrap.dedent(code), *map(str, args)]
    return subprocess.Popen(argv, **popen)


# -- permissions -----------------------------------------------------------------------------
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    # ``process_umask`` is read once per process: each umask gets its own interpreter
    code = f"""
        import os, sys
        os.umask({umask})
        from multidomain.io import atomic_path, write_json
        write_json(sys.argv[1] + "/a.json", {{"x": 1}})
        with atomic_path(sys.argv[1] + "/b.bin") as tmp:
            tmp.write_bytes(b"payload")
    """
    assert _run_python(code, tmp_path).wait(timeout=60) == 0
    for name in ("a.json", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


# -- atomic writes ---------------------------------------------------------------------------
def test_a_crash_inside_atomic_path_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    write_json(target, {"step": 1})
    with pytest.raises(RuntimeError, match="crash"), atomic_path(target) as tmp:
        tmp.write_text('{"step": 2, "half-writ')
        raise RuntimeError("crash while writing")
    assert json.loads(target.read_text()) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_atomic_path_replaces_the_file_only_on_success(tmp_path):
    target = tmp_path / "state.json"
    write_json(target, {"step": 1})
    write_json(target, {"step": 2})
    assert json.loads(target.read_text()) == {"step": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


# -- checksums -------------------------------------------------------------------------------
def _folder_with_files(folder: Path) -> Path:
    (folder / "domains").mkdir(parents=True)
    (folder / "shared.bin").write_bytes(bytes(range(256)))
    (folder / "domains" / "alpha.bin").write_bytes(b"alpha weights")
    (folder / ".lock").write_text("123\n")  # hidden files are not covered
    return folder


def test_checksums_of_an_intact_folder(tmp_path):
    folder = _folder_with_files(tmp_path / "model")
    files = write_checksums(folder)
    assert sorted(files) == ["domains/alpha.bin", "shared.bin"]
    assert checksum_problems(folder) == []
    verify_checksums(folder, "model folder")  # no error


def test_checksums_detect_a_flipped_byte(tmp_path):
    folder = _folder_with_files(tmp_path / "model")
    write_checksums(folder)
    data = bytearray((folder / "shared.bin").read_bytes())
    data[100] ^= 0x01
    (folder / "shared.bin").write_bytes(bytes(data))
    assert checksum_problems(folder) == ["shared.bin does not match its checksum"]
    with pytest.raises(StorageError, match=r"model folder .* damaged .*shared\.bin") as info:
        verify_checksums(folder, "model folder")
    assert info.value.exit_code == 4 and "\n" not in str(info.value)


def test_checksums_detect_a_missing_file(tmp_path):
    folder = _folder_with_files(tmp_path / "model")
    write_checksums(folder)
    (folder / "domains" / "alpha.bin").unlink()
    assert checksum_problems(folder) == ["domains/alpha.bin is missing"]
    with pytest.raises(StorageError, match=r"domains/alpha\.bin is missing"):
        verify_checksums(folder)


def test_a_folder_without_checksums_has_nothing_to_verify(tmp_path):
    folder = _folder_with_files(tmp_path / "model")
    assert checksum_problems(folder) is None
    verify_checksums(folder)  # written before checksums existed: accepted


def test_an_unreadable_checksum_list_is_a_problem(tmp_path):
    folder = _folder_with_files(tmp_path / "model")
    (folder / CHECKSUMS_FILE).write_text("{not json")
    assert checksum_problems(folder) == [f"{CHECKSUMS_FILE} is unreadable"]


# -- crash leftovers -------------------------------------------------------------------------
def test_remove_temporaries_removes_only_what_our_writers_make(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    ours = [".x.json.abc.tmp", ".latest.json.k3j2_.tmp", ".model.abc123", ".step-00000004.xyz"]
    for name in ours[:3]:
        (folder / name).write_text("partial")
    (folder / ours[3]).mkdir()
    (folder / ours[3] / "state.json").write_text("{}")
    users = ["notes.tmp", ".bashrc", "model.json", "summary.json"]
    for name in users:
        (folder / name).write_text("keep")
    outside = tmp_path / "elsewhere.tmp"
    outside.write_text("keep")
    (folder / ".link.tmp").symlink_to(outside)
    (folder / ".model.link").symlink_to(outside)
    users += [".link.tmp", ".model.link"]

    removed = remove_temporaries(folder, prefixes=(".model.", ".step-"))

    assert sorted(removed) == sorted(ours)
    assert sorted(p.name for p in folder.iterdir()) == sorted(users)
    assert all((folder / name).read_text() == "keep" for name in users)
    assert outside.read_text() == "keep"


def test_remove_temporaries_of_a_missing_folder_does_nothing(tmp_path):
    assert remove_temporaries(tmp_path / "absent", prefixes=(".model.",)) == []


# -- locks -----------------------------------------------------------------------------------
_HOLDER = """
    import sys, time
    from multidomain.locks import folder_lock
    with folder_lock(sys.argv[1], "run folder"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
"""


def _start_holder(folder: Path, seconds: float) -> subprocess.Popen:
    holder = _run_python(_HOLDER, folder, seconds, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_is_refused_while_the_first_holds_the_folder(tmp_path):
    folder = tmp_path / "run"
    holder = _start_holder(folder, 60)
    try:
        refused = pytest.raises(StorageError, match=rf"in use .*pid {holder.pid}")
        with refused as info, folder_lock(folder, "run folder"):
            pass
        assert info.value.exit_code == 4
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_free_once_the_holder_exits(tmp_path):
    folder = tmp_path / "run"
    holder = _start_holder(folder, 0)
    assert holder.wait(timeout=60) == 0
    with folder_lock(folder, "run folder") as held:
        assert held == folder


def test_the_lock_is_free_after_the_holder_is_killed(tmp_path):
    folder = tmp_path / "run"
    holder = _start_holder(folder, 60)
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait(timeout=60) == -signal.SIGKILL
    with folder_lock(folder, "run folder"):
        assert (folder / ".lock").read_text().strip() == str(os.getpid())


def test_the_lock_is_reentrant_after_release_in_one_process(tmp_path):
    with folder_lock(tmp_path / "run"):
        pass
    with folder_lock(tmp_path / "run"):
        pass
