"""Domain packs and model folders never lose or accept bad weights silently (issue 8, section 4).

- ``load_domain`` refuses to overwrite a domain that holds weights of its own (trained or loaded)
  unless ``replace=True``; a domain just built from the config holds only its initialisation.
- Non-float tensors, NaN/inf weights and names that cannot be file names are refused.
- Equal weights give byte-identical files (in one process and across processes); files written
  before (one metadata key per field) still load.
- ``save_model`` records checksums; ``load_model`` refuses a damaged folder (exit code 4).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest import images, tiny_model
from multidomain.errors import ConfigError, DataError, StorageError
from multidomain.io import CHECKSUMS_FILE
from multidomain.models import ModelConfig, create_model
from multidomain.models.packs import (
    domain_state_dict,
    load_domain,
    load_model,
    load_shared,
    save_domain,
    save_model,
    save_shared,
    shared_state_dict,
)

SRC = Path(__file__).resolve().parents[1] / "src"


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


def _unchanged(model, before: dict[str, torch.Tensor]) -> bool:
    state = model.state_dict()
    return state.keys() == before.keys() and all(torch.equal(before[k], state[k]) for k in state)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Training steps on one torch thread (fast on the shared 2-core machine)."""


def _train_step(model, domain: str) -> None:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(images(), domain).sum().backward()
    optimizer.step()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rewrite_pack(path: Path, target: Path, change) -> None:
    """Copy a pack with ``change(tensors)`` applied, keeping its metadata."""
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    change(tensors)
    save_file(tensors, str(target), metadata=metadata)


def _with_shared_of(model, source):
    """``model`` with ``source``'s shared weights: packs of ``source`` are made for it."""
    model.load_state_dict(shared_state_dict(source), strict=False)
    return model


# -- no silent overwrite ---------------------------------------------------------------------
def test_loading_over_a_trained_domain_is_refused_without_replace(tmp_path):
    save_domain(tiny_model(seed=1), "alpha", tmp_path / "alpha.safetensors")
    model = tiny_model(seed=0)
    _train_step(model, "alpha")
    before = _snapshot(model)
    with pytest.raises(ConfigError, match=r"'alpha'.*replace=True.*another name") as info:
        load_domain(model, tmp_path / "alpha.safetensors")
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    assert _unchanged(model, before)


def test_loading_over_an_existing_domain_needs_replace(tmp_path):
    source = tiny_model(seed=1)
    save_domain(source, "beta", tmp_path / "beta.safetensors")
    # just built: its beta is still an existing domain
    model = _with_shared_of(tiny_model(seed=0), source)
    before = _snapshot(model)
    with pytest.raises(ConfigError, match="'beta'.*replace=True"):
        load_domain(model, tmp_path / "beta.safetensors")
    assert _unchanged(model, before)
    assert load_domain(model, tmp_path / "beta.safetensors", replace=True) == "beta"
    expected = domain_state_dict(source, "beta")
    assert all(torch.equal(v, expected[k]) for k, v in domain_state_dict(model, "beta").items())
    assert load_domain(model, tmp_path / "beta.safetensors", name="extra") == "extra"  # new name


# -- bad tensors -----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, bad):
    save_domain(tiny_model(), "beta", tmp_path / "beta.safetensors")

    def poison(tensors):
        tensors["stages.0.0.bn1.weight"][0] = bad

    _rewrite_pack(tmp_path / "beta.safetensors", tmp_path / "bad.safetensors", poison)
    model = _with_shared_of(tiny_model(seed=5), tiny_model())
    before = _snapshot(model)
    with pytest.raises(DataError, match=r"stages\.0\.0\.bn1\.weight.*(nan|inf)") as info:
        load_domain(model, tmp_path / "bad.safetensors", name="fresh")
    assert info.value.exit_code == 3
    assert "fresh" not in model.domains and _unchanged(model, before)


def test_non_finite_shared_weights_are_refused(tmp_path):
    save_shared(tiny_model(), tmp_path / "shared.safetensors")

    def poison(tensors):
        key = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
        tensors[key].view(-1)[0] = float("nan")

    _rewrite_pack(tmp_path / "shared.safetensors", tmp_path / "bad.safetensors", poison)
    with pytest.raises(DataError, match="nan"):
        load_shared(tiny_model(), tmp_path / "bad.safetensors")


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.uint8])
def test_non_float_weights_are_refused_naming_the_tensor(tmp_path, dtype):
    save_domain(tiny_model(), "beta", tmp_path / "beta.safetensors")

    def retype(tensors):
        tensors["stages.0.0.bn1.weight"] = tensors["stages.0.0.bn1.weight"].to(dtype)

    _rewrite_pack(tmp_path / "beta.safetensors", tmp_path / "bad.safetensors", retype)
    model = _with_shared_of(tiny_model(seed=5), tiny_model())
    with pytest.raises(DataError, match=r"stages\.0\.0\.bn1\.weight.*not a floating"):
        load_domain(model, tmp_path / "bad.safetensors", name="fresh")
    assert "fresh" not in model.domains


def test_integer_buffers_must_stay_integers(tmp_path):
    save_domain(tiny_model(), "beta", tmp_path / "beta.safetensors")
    key = "stages.0.0.bn1.num_batches_tracked"

    def retype(tensors):
        tensors[key] = tensors[key].to(torch.float32) + 0.5

    _rewrite_pack(tmp_path / "beta.safetensors", tmp_path / "bad.safetensors", retype)
    with pytest.raises(DataError, match=rf"{key}.*integer"):
        load_domain(tiny_model(), tmp_path / "bad.safetensors", name="fresh")


# -- names -----------------------------------------------------------------------------------
BAD_NAMES = ["", ".", "..", "a/b", "a\\b", "a\0b", "a\n", "x" * 201, "../escape"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_names_that_cannot_be_file_names_are_refused_everywhere(tmp_path, name):
    save_domain(tiny_model(), "beta", tmp_path / "beta.safetensors")
    model = tiny_model()
    with pytest.raises(ConfigError, match="invalid domain name"):
        model.add_domain(name, 3)
    with pytest.raises(ConfigError, match="invalid domain name"):
        create_model("resnet26_dw", {name: 3}, width=0.125)
    with pytest.raises(ConfigError, match="invalid domain name"):
        load_domain(model, tmp_path / "beta.safetensors", name=name)
    assert list(model.domains) == ["alpha", "beta", "gamma"]


def test_a_pack_naming_a_bad_domain_is_refused(tmp_path):
    save_domain(tiny_model(), "beta", tmp_path / "beta.safetensors")

    def rename(metadata):
        metadata["domain"] = "../../etc/evil"

    _rewrite_metadata(tmp_path / "beta.safetensors", rename)
    model = tiny_model()
    with pytest.raises(ConfigError, match="invalid domain name '../../etc/evil'"):
        load_domain(model, tmp_path / "beta.safetensors")
    assert list(model.domains) == ["alpha", "beta", "gamma"]


def test_the_longest_name_round_trips_through_a_model_folder(tmp_path):
    name = "n" * 200
    model = tiny_model()
    model.add_domain(name, 4)
    save_model(model, tmp_path / "model")
    assert (tmp_path / "model" / "domains" / f"{name}.safetensors").is_file()
    assert load_model(tmp_path / "model").domains[name] == 4


def test_model_config_refuses_too_long_names():
    with pytest.raises(ConfigError, match=r"201 bytes.*at most 200"):
        ModelConfig(source="resnet26_dw", domains={"x" * 201: 3})


# -- deterministic files ---------------------------------------------------------------------
def test_equal_weights_give_identical_files_in_one_process(tmp_path):
    model = tiny_model()
    digests = set()
    for i in range(8):
        save_domain(model, "alpha", tmp_path / f"alpha{i}.safetensors")
        save_shared(model, tmp_path / f"shared{i}.safetensors")
        files = (tmp_path / f"alpha{i}.safetensors", tmp_path / f"shared{i}.safetensors")
        digests.add(tuple(map(_sha256, files)))
    assert len(digests) == 1


_SAVE_IN_A_FRESH_PROCESS = """
    import sys, torch
    torch.set_num_threads(1)
    from multidomain.models import create_model
    from multidomain.models.packs import save_model
    torch.manual_seed(0)
    model = create_model("resnet26_dw", {"alpha": 5, "beta": 3}, width=0.125, dropout={"beta": 0.1})
    save_model(model, sys.argv[1])
"""


def test_equal_weights_give_identical_files_across_processes(tmp_path):
    folders = [tmp_path / "one", tmp_path / "two"]
    code = textwrap.dedent(_SAVE_IN_A_FRESH_PROCESS)
    savers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(folder)],
            env={**os.environ, "PYTHONPATH": str(SRC), "PYTHONHASHSEED": seed},
        )
        for folder, seed in zip(folders, ("1", "2"), strict=True)
    ]
    assert [saver.wait(timeout=120) for saver in savers] == [0, 0]
    names = sorted(p.relative_to(folders[0]).as_posix() for p in folders[0].rglob("*.*"))
    assert "domains/beta.safetensors" in names and CHECKSUMS_FILE in names
    for name in names:
        assert _sha256(folders[0] / name) == _sha256(folders[1] / name), name


def test_metadata_is_one_key_of_sorted_json(tmp_path):
    save_domain(tiny_model(dropout={"beta": 0.25}), "beta", tmp_path / "beta.safetensors")
    with safe_open(str(tmp_path / "beta.safetensors"), "pt") as handle:
        metadata = handle.metadata()
    assert list(metadata) == ["multidomain"]
    fields = json.loads(metadata["multidomain"])
    assert metadata["multidomain"] == json.dumps(fields, sort_keys=True)
    assert fields["format"] == "multidomain.domain-pack/1"
    assert (fields["domain"], fields["num_classes"], fields["dropout"]) == ("beta", 3, 0.25)


def _rewrite_metadata(path: Path, change) -> None:
    """Rewrite a pack with ``change(fields)`` applied to its metadata fields, in the old
    layout (one metadata key per field, as files were written before)."""
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as handle:
        stored = handle.metadata()
    fields = json.loads(stored["multidomain"]) if "multidomain" in stored else dict(stored)
    change(fields)
    save_file(tensors, str(path), metadata=_legacy_metadata(fields))


def _legacy_metadata(fields: dict) -> dict[str, str]:
    """The metadata layout written before: each field a key, numbers and JSON as strings."""
    legacy = {"format": fields["format"]}
    architecture = fields["architecture"]
    legacy["architecture"] = (
        architecture if isinstance(architecture, str) else json.dumps(architecture, sort_keys=True)
    )
    for key in ("domain", "num_classes", "dropout"):
        if key in fields:
            legacy[key] = str(fields[key])
    return legacy


def test_files_written_before_still_load(tmp_path):
    source = tiny_model(seed=1, dropout={"beta": 0.25})
    save_model(source, tmp_path / "model")
    for path in (tmp_path / "model").rglob("*.safetensors"):
        _rewrite_metadata(path, lambda fields: None)
    (tmp_path / "model" / CHECKSUMS_FILE).unlink()  # folders written before had none
    pack = tmp_path / "model" / "domains" / "beta.safetensors"
    with safe_open(str(pack), "pt") as handle:
        assert set(handle.metadata()) == {
            "format",
            "architecture",
            "domain",
            "num_classes",
            "dropout",
        }
    loaded = load_model(tmp_path / "model")
    assert loaded.config.dropout == {"beta": 0.25}
    expected = source.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())
    target = tiny_model(seed=0)
    assert load_domain(target, pack, "copy") == "copy"
    assert target.config.dropout["copy"] == 0.25


# -- checksums of model folders --------------------------------------------------------------
def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # in the tensor data: the file still parses
    path.write_bytes(bytes(data))


def test_save_model_records_a_checksum_of_every_file(tmp_path):
    save_model(tiny_model(), tmp_path / "model")
    recorded = json.loads((tmp_path / "model" / CHECKSUMS_FILE).read_text())["files"]
    assert sorted(recorded) == [
        "config.json",
        "domains/alpha.safetensors",
        "domains/beta.safetensors",
        "domains/gamma.safetensors",
        "shared.safetensors",
    ]
    assert recorded["shared.safetensors"] == _sha256(tmp_path / "model" / "shared.safetensors")


@pytest.mark.parametrize("damaged", ["domains/beta.safetensors", "shared.safetensors"])
def test_load_model_refuses_a_flipped_byte_naming_the_file(tmp_path, damaged):
    save_model(tiny_model(), tmp_path / "model")
    _flip_a_byte(tmp_path / "model" / damaged)
    with pytest.raises(StorageError, match=rf"damaged .*{damaged} does not match") as info:
        load_model(tmp_path / "model")
    assert info.value.exit_code == 4 and "\n" not in str(info.value)


def test_load_model_refuses_a_missing_domain_file(tmp_path):
    save_model(tiny_model(), tmp_path / "model")
    (tmp_path / "model" / "domains" / "gamma.safetensors").unlink()
    with pytest.raises(StorageError, match=r"domains/gamma\.safetensors is missing"):
        load_model(tmp_path / "model")


def test_a_model_folder_without_checksums_still_loads(tmp_path):
    model = tiny_model(seed=4)
    save_model(model, tmp_path / "model")
    (tmp_path / "model" / CHECKSUMS_FILE).unlink()
    loaded = load_model(tmp_path / "model")
    expected = model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda fields: fields.pop("num_classes"), "no num_classes"),
        (lambda fields: fields.update(num_classes=0), "num_classes = 0"),
        (lambda fields: fields.pop("domain"), "no domain"),
    ],
)
def test_a_pack_with_incomplete_metadata_is_refused(tmp_path, change, problem):
    path = tmp_path / "beta.safetensors"
    save_domain(tiny_model(), "beta", path)
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as handle:
        fields = json.loads(handle.metadata()["multidomain"])
    change(fields)
    save_file(tensors, str(path), metadata={"multidomain": json.dumps(fields)})
    with pytest.raises(DataError, match=f"incomplete metadata \\({problem}\\)"):
        load_domain(tiny_model(), path, name="fresh")
