"""Issue 9, "Fixes found in review": each fix with the test that failed before it.

- a partial evaluation prints no Decathlon score, and names the domains it lacks;
- the mini-decathlon's image ids are the devkit's (with the 200,000 offset), and an old build of
  ours is rebuilt with them, foreign files kept, shipped baselines kept;
- only full batches train: the steps per epoch and the images dropped (a different few each epoch);
- a command whose stdout pipe was closed exits quietly.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_helpers import run_cli
from engine_helpers import adapted_run, mini_root, pretrained_run
from multidomain.data.benchmark import BENCHMARK_FILE, FORMAT_VERSION, set_baseline_accuracies
from multidomain.data.check import check_tree
from multidomain.data.devkit import ID_STRIDE, domain_index_of_id, image_id, read_json
from multidomain.data.offline import baselines, builder
from multidomain.data.offline.builder import COMPLETE_MARKER, prepare_offline
from multidomain.engine.batches import SeededSamples, epoch_plan
from multidomain.engine.eval_run import evaluate_run
from multidomain.engine.report import format_eval_table, write_report
from multidomain.errors import EXIT_STORAGE, DataError

SRC = Path(__file__).resolve().parents[1] / "src"


# -- 1. a score only when every domain of the benchmark has points ------------------------------
@pytest.fixture(scope="module")
def scored_root(tmp_path_factory):
    """The tiny mini-decathlon with a baseline for each of its three domains."""
    root = shutil.copytree(mini_root(tmp_path_factory), tmp_path_factory.mktemp("s") / "root")
    accuracies = {"animals": 50.0, "digits": 60.0, "textures": 40.0}
    set_baseline_accuracies(root / BENCHMARK_FILE, accuracies)
    return root


def _copy_run(run_dir: Path, tmp_path: Path) -> Path:
    return shutil.copytree(run_dir, tmp_path / "run")


@pytest.mark.usefixtures("one_thread")
def test_eval_of_some_domains_prints_no_score_and_names_the_missing(
    scored_root, tmp_path, tmp_path_factory
):
    run_dir = _copy_run(adapted_run(tmp_path_factory), tmp_path)
    report = evaluate_run(run_dir, "val", data_root=scored_root, domains=["textures"])

    assert report["domains"]["textures"]["points"] is not None  # the domain itself has points
    assert report["score"] is None
    assert "animals" in report["score_note"] and "digits" in report["score_note"]
    assert "textures" not in report["score_note"]
    assert read_json(run_dir / "eval.json")["score"] is None
    table = format_eval_table(report)
    score_line = next(line for line in table.splitlines() if "Decathlon score" in line)
    assert "animals, digits" in score_line
    points = round(report["domains"]["textures"]["points"])
    assert f"S: {points}" not in score_line and "max" not in score_line

    write_report(tmp_path, report, {})
    markdown = (tmp_path / "report.md").read_text()
    assert "not computed" in markdown and "animals, digits" in markdown


@pytest.mark.usefixtures("one_thread")
def test_eval_of_every_domain_prints_the_score(scored_root, tmp_path, tmp_path_factory):
    run_dir = _copy_run(adapted_run(tmp_path_factory), tmp_path)
    report = evaluate_run(run_dir, "val", data_root=scored_root)

    points = [entry["points"] for entry in report["domains"].values()]
    assert sorted(report["domains"]) == ["animals", "digits", "textures"]
    assert report["score"] == sum(points) and report["score_note"] is None
    assert f"Decathlon score S: {sum(points):.0f} (max 3000)" in format_eval_table(report)


@pytest.mark.usefixtures("one_thread")
def test_a_model_without_some_benchmark_domains_gets_no_score(
    scored_root, tmp_path, tmp_path_factory
):
    # the pretrained model has animals only: evaluated on all it has, still a part of the score
    run_dir = _copy_run(pretrained_run(tmp_path_factory), tmp_path)
    report = evaluate_run(run_dir, "val", data_root=scored_root)
    assert list(report["domains"]) == ["animals"]
    assert report["score"] is None
    assert "digits, textures" in report["score_note"]


# -- 2. devkit image ids ----------------------------------------------------------------------
def test_image_ids_are_the_devkits():
    # PAPER.md section 5: aircraft's first test image is 10,206,668
    assert image_id(0, 3_334 + 3_333 + 1) == 10_206_668
    assert image_id(9, 1) == 100_200_001
    for d in (0, 5, 9):
        for n in (1, 1_329_405, ID_STRIDE - 200_001):  # imagenet12 has 1,329,405 images
            assert domain_index_of_id(image_id(d, n)) == d
    with pytest.raises(ValueError, match="9799999"):
        image_id(0, ID_STRIDE - 200_000)


BUILD = {"image_size": 20, "domains": ["faces"]}  # a full faces build: 200 images, ~3 s


def _old_image_id(domain_index: int, running_index: int) -> int:
    """The mini-decathlon's ids before format 2: no 200,000 offset."""
    return ID_STRIDE * (domain_index + 1) + running_index


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """Shipped baselines for :data:`BUILD` (the real file has them for 36 px builds only)."""
    path = tmp_path / "baselines.json"
    entry = {"data_version": 1, "image_size": 20, "seed": 0, "baseline_accuracy": {"faces": 77.0}}
    path.write_text(json.dumps({"builds": [entry]}))
    monkeypatch.setattr(baselines, "SHIPPED", path)


def _build_as_format_1(out: Path, monkeypatch, legacy_marker: bool) -> Path:
    """A build of the previous version: ids without the offset, format_version 1 in its params;
    ``legacy_marker``: a ``.complete.json`` without a ``files`` list (the version before the
    build record)."""
    with monkeypatch.context() as patch:
        patch.setattr(builder, "FORMAT_VERSION", 1)
        patch.setattr(builder, "image_id", _old_image_id)
        prepare_offline(out, **BUILD)
    if legacy_marker:
        params = read_json(out / COMPLETE_MARKER)["params"]
        (out / COMPLETE_MARKER).write_text(json.dumps({"params": params}, indent=2))
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


FOREIGN = {
    "notes.txt": b"root note",
    "annotations/mine.json": b"{}",
    "data/faces/train/extra.jpg": b"my own image",
    "data/mine/a.jpg": b"another",
}


@pytest.mark.parametrize("legacy_marker", [True, False], ids=["no-files-list", "files-list"])
def test_an_old_build_is_rebuilt_with_devkit_ids_keeping_foreign_files(
    tmp_path, monkeypatch, shipped, legacy_marker
):
    old = _build_as_format_1(tmp_path / "old", monkeypatch, legacy_marker)
    first = read_json(old / "annotations" / "faces_train.json")["images"][0]["id"]
    assert first == ID_STRIDE + 1  # the previous ids
    assert read_json(old / COMPLETE_MARKER)["params"]["format_version"] == 1
    for name, content in FOREIGN.items():
        (old / name).parent.mkdir(parents=True, exist_ok=True)
        (old / name).write_bytes(content)

    prepare_offline(old, **BUILD)  # not forced: the format alone makes it stale

    fresh = prepare_offline(tmp_path / "fresh", **BUILD)
    after = _files(old)
    for name, content in FOREIGN.items():
        assert after.pop(name) == content
    assert after == _files(fresh)  # byte-identical to a new build, record included
    images = read_json(old / "annotations" / "faces_train.json")["images"]
    assert images[0]["id"] == ID_STRIDE + 200_001
    assert read_json(old / COMPLETE_MARKER)["params"]["format_version"] == FORMAT_VERSION
    assert read_json(old / BENCHMARK_FILE)["domains"]["faces"]["baseline_accuracy"] == 77.0
    assert check_tree(old).ok


def test_an_old_marker_without_files_list_names_only_its_annotated_images(tmp_path, monkeypatch):
    """The old marker's proof covers benchmark.json, its domains' annotation files and the
    images they list: an image nobody lists (here edited too) is not deleted, and where the new
    build would write it, the build is refused."""
    old = _build_as_format_1(tmp_path / "old", monkeypatch, legacy_marker=True)
    train = old / "annotations" / "faces_train.json"
    doc = read_json(train)
    unlisted = doc["images"].pop(0)["file_name"]
    doc["annotations"].pop(0)
    train.write_text(json.dumps(doc))
    (old / unlisted).write_bytes(b"edited by its user")
    before = _files(old)
    with pytest.raises(DataError, match="in the way") as caught:
        prepare_offline(old, **BUILD)
    assert unlisted in str(caught.value)
    assert (old / unlisted).read_bytes() == before[unlisted]


def test_a_foreign_tree_with_an_old_style_marker_of_another_tool_is_refused(tmp_path):
    tree = tmp_path / "tree"
    (tree / "data" / "x").mkdir(parents=True)
    (tree / "data" / "x" / "1.jpg").write_bytes(b"theirs")
    (tree / BENCHMARK_FILE).write_text(json.dumps({"name": "theirs", "domains": {}}))
    (tree / COMPLETE_MARKER).write_text(json.dumps({"params": {"format_version": 1}}))
    before = _files(tree)
    with pytest.raises(DataError):
        prepare_offline(tree, **BUILD)
    assert _files(tree) == before


def test_the_shipped_baselines_do_not_depend_on_the_build_format():
    # the demo's score needs them: ids change no image and no label, so the measured values hold
    values = baselines.shipped_baselines(1, 36, 0, None)
    assert {"animals", "digits", "textures"} <= set(values)


# -- 3. only full batches train ---------------------------------------------------------------
def _samples(sizes: dict[str, int]) -> SeededSamples:
    return SeededSamples({name: np.zeros(n) for name, n in sizes.items()})


@pytest.mark.parametrize("world", [1, 2])
def test_an_epoch_has_floor_n_over_batch_steps_and_drops_different_images(world):
    # vgg-flowers: 1,020 training images; 7 steps of 128 (124 images dropped each epoch)
    sizes = {"vgg-flowers": 1020, "dtd": 1880}
    batch = 128 // world  # per rank: the global batch is 128 either way
    samples = _samples(sizes)
    seen = {name: set() for name in sizes}
    dropped = []
    for epoch in range(12):
        plans = [epoch_plan(samples, batch, 0, epoch, rank=r, world=world) for r in range(world)]
        for plan in plans:
            steps = {name: sum(domain == name for domain, _ in plan) for name in sizes}
            assert steps == {name: n // 128 for name, n in sizes.items()}  # 7 and 14
        epoch_seen = {name: set() for name in sizes}
        for plan in plans:
            for domain, indices in plan:
                assert len(indices) == batch
                epoch_seen[domain] |= set(indices)
        for name, n in sizes.items():
            assert len(epoch_seen[name]) == n // 128 * 128
            seen[name] |= epoch_seen[name]
        flowers = samples.domain_range("vgg-flowers")
        dropped.append(set(flowers) - epoch_seen["vgg-flowers"])
    assert all(len(d) == 1020 - 7 * 128 == 124 for d in dropped)
    assert len({frozenset(d) for d in dropped}) == len(dropped)  # a different 124 each epoch
    for name in sizes:
        assert seen[name] == set(samples.domain_range(name))  # every image trains


# -- 4. a closed stdout pipe ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "unbuffered"),
    [(["params"], False), (["params"], True), (["params", "--help"], False)],
    ids=["table", "table-unbuffered", "help"],
)
def test_output_into_a_closed_pipe_exits_quietly(argv, unbuffered):
    """``multidomain params | head -1``: head exits once it has its line, and what the command
    writes after meets a pipe without a reader. The table is one write that fits in the pipe's
    buffer, so reading a line first would race with it; the reader here closes its end before
    the command writes (importing torch takes seconds), which is the same closed pipe.

    Buffered, the failure shows in the last flush; unbuffered (``PYTHONUNBUFFERED``), in the
    command's ``print``. (Unbuffered, argparse's ``--help`` swallows the error itself.)"""
    read_end, write_end = os.pipe()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = str(SRC)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "multidomain.cli", *argv],
        stdout=write_end,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(write_end)
    os.close(read_end)  # the reader is gone
    _, stderr = process.communicate(timeout=300)
    text = stderr.decode()
    assert text == ""  # no traceback, no "Exception ignored", no error line
    assert process.returncode == 141  # 128 + SIGPIPE, as `cat` and `yes` end


def test_a_broken_pipe_that_is_not_stdout_is_reported(monkeypatch, capsys):
    # e.g. a loader worker's pipe: a failure to report, not a reader that went away
    def broken(args):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr("multidomain.cli.score._score", broken)
    code = run_cli(["score", "--accuracies", "x.json"], monkeypatch)
    assert code == EXIT_STORAGE
    assert "multidomain score: error:" in capsys.readouterr().err
