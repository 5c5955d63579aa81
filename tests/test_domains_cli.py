"""``multidomain domains``: list, show, remove, import and export on a model folder."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import images, tiny_model
from engine_helpers import read_tensors
from multidomain.cli import main
from multidomain.io import verify_checksums
from multidomain.models.cards import DomainCard, Preprocess
from multidomain.models.packs import load_model, save_domain, save_model

CARD = DomainCard(("cat", "dog", "owl"), Preprocess("center_crop", (0.5,) * 3, (0.25,) * 3, 32, 28))


@pytest.fixture
def model_dir(tmp_path):
    model = tiny_model()
    model.cards["beta"] = CARD
    save_model(model, tmp_path / "model")
    return tmp_path / "model"


def domains(*args) -> int:
    return main(["domains", *[str(a) for a in args]])


def test_list_and_show(model_dir, capsys):
    assert domains("list", "--model", model_dir, "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["domain"] for r in rows] == ["alpha", "beta", "gamma"]
    assert [r["num_classes"] for r in rows] == [5, 3, 7]
    assert domains("show", "--model", model_dir, "beta") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["classes"] == ["cat", "dog", "owl"]
    assert shown["preprocess"]["crop"] == "center_crop" and shown["preprocess"]["image_size"] == 32
    assert domains("show", "--model", model_dir, "delta") == 2
    assert "no domain 'delta'; its domains: ['alpha', 'beta', 'gamma']" in capsys.readouterr().err


def test_export_then_import_under_another_name(model_dir, tmp_path):
    pack = tmp_path / "beta.safetensors"
    assert domains("export", "--model", model_dir, "beta", "--out", pack) == 0
    before = read_tensors(model_dir)
    assert domains("import", "--model", model_dir, pack, "--as", "beta2") == 0
    verify_checksums(model_dir, "model folder")  # the folder's checksums describe the change
    after = read_tensors(model_dir)
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing else changed
    model = load_model(model_dir).eval()
    assert model.domains["beta2"] == 3 and model.card("beta2") == CARD
    x = images(batch=2)
    with torch.no_grad():
        assert torch.equal(model(x, "beta2"), model(x, "beta"))


def test_import_refuses_a_pack_of_another_model_naming_the_difference(model_dir, tmp_path, capsys):
    save_domain(tiny_model(seed=7), "beta", tmp_path / "other.safetensors")  # other shared weights
    save_domain(tiny_model(width=0.25), "beta", tmp_path / "wide.safetensors")
    before = {p.name: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()}
    assert domains("import", "--model", model_dir, tmp_path / "other.safetensors", "--as", "x") == 2
    assert "made for other shared weights" in capsys.readouterr().err
    assert domains("import", "--model", model_dir, tmp_path / "wide.safetensors", "--as", "x") == 2
    assert "width: pack 0.25, model 0.125" in capsys.readouterr().err
    assert domains("import", "--model", model_dir, tmp_path / "other.safetensors") == 2
    assert "already has a domain 'beta'" in capsys.readouterr().err
    assert before == {p.name: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()}


def test_remove_rewrites_the_folder_and_keeps_the_others(model_dir, capsys):
    before = read_tensors(model_dir)
    assert domains("remove", "--model", model_dir, "gamma") == 0
    verify_checksums(model_dir, "model folder")
    assert not (model_dir / "domains" / "gamma.safetensors").exists()
    after = read_tensors(model_dir)
    assert sorted(after) == sorted(k for k in before if not k.startswith("domains/gamma"))
    assert all(torch.equal(before[k], after[k]) for k in after)
    assert list(load_model(model_dir).domains) == ["alpha", "beta"]
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".model.")]
    assert domains("remove", "--model", model_dir, "alpha") == 0
    assert domains("remove", "--model", model_dir, "beta") == 2
    assert "only domain" in capsys.readouterr().err
