"""Save/load of the shared part and of domain packs (safetensors + JSON), strictly checked."""

from __future__ import annotations

import pytest
import torch

from conftest import images, tiny_model
from multidomain.errors import ConfigError
from multidomain.models.methods import get_method
from multidomain.models.packs import (
    load_domain,
    load_domains,
    load_model,
    load_shared,
    save_domain,
    save_model,
    save_shared,
)


def _outputs(model, x):
    model.eval()
    with torch.no_grad():
        return {d: model(x, d) for d in model.domains}


def test_round_trip_into_a_differently_seeded_model(tmp_path, model_policy):
    trained = tiny_model(*model_policy, seed=0)
    trained.train()
    trained(images(8), "alpha")  # move BN running statistics away from their defaults
    save_model(trained, tmp_path)
    other = tiny_model(*model_policy, seed=123)
    x = images()
    assert not torch.equal(_outputs(other, x)["alpha"], _outputs(trained, x)["alpha"])
    load_shared(other, tmp_path / "shared.safetensors")
    paths = [tmp_path / "domains" / f"{domain}.safetensors" for domain in trained.domains]
    if get_method(model_policy[1]).mixes_domains:
        # soft sharing: beta's gates mix gamma's bank and gamma's beta's, so one pack at a
        # time is refused (the other's bank is still the foreign one); together they load
        with pytest.raises(ConfigError, match="depthwise bank of domain"):
            for path in paths:
                load_domain(other, path, replace=True)
        load_domains(other, paths, replace=True)
    else:
        for path in paths:
            load_domain(other, path, replace=True)
    expected = _outputs(trained, x)
    for domain, out in _outputs(other, x).items():
        assert torch.equal(out, expected[domain])
    for domain, out in _outputs(load_model(tmp_path), x).items():
        assert torch.equal(out, expected[domain])


def test_domain_pack_loads_under_another_name(tmp_path):
    source = tiny_model(seed=0)
    save_domain(source, "beta", tmp_path / "beta.safetensors")
    target = tiny_model(seed=0)  # same shared weights
    assert load_domain(target, tmp_path / "beta.safetensors", name="renamed") == "renamed"
    assert target.domains["renamed"] == 3
    x = images()
    torch.testing.assert_close(_outputs(target, x)["renamed"], _outputs(source, x)["beta"])


def test_pack_keys_do_not_contain_the_domain_name(tmp_path):
    from safetensors import safe_open

    model = tiny_model()
    save_domain(model, "gamma", tmp_path / "g.safetensors")
    with safe_open(str(tmp_path / "g.safetensors"), "pt") as handle:
        keys = list(handle.keys())
    assert keys and not any("gamma" in k for k in keys)
    assert "stages.0.0.conv1.conv_dw.weight" in keys


def test_wrong_architecture_is_named(tmp_path):
    save_domain(tiny_model(), "beta", tmp_path / "beta.safetensors")
    wider = tiny_model(width=0.25)
    with pytest.raises(ValueError, match="wrong architecture.*width: pack 0.125, model 0.25"):
        load_domain(wider, tmp_path / "beta.safetensors")
    save_shared(tiny_model(), tmp_path / "shared.safetensors")
    with pytest.raises(
        ValueError, match="wrong architecture.*method: pack 'pointwise', model 'depthwise'"
    ):
        load_shared(tiny_model(share="depthwise"), tmp_path / "shared.safetensors")


def test_wrong_class_count_is_named_and_nothing_changes(tmp_path):
    save_domain(tiny_model(), "beta", tmp_path / "beta.safetensors")
    model = tiny_model(seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="wrong class count.*3-class.*'alpha' has 5"):
        load_domain(model, tmp_path / "beta.safetensors", name="alpha")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_unknown_domain_on_save_and_foreign_files(tmp_path):
    model = tiny_model()
    with pytest.raises(ValueError, match="unknown domain 'delta'"):
        save_domain(model, "delta", tmp_path / "x.safetensors")
    save_shared(model, tmp_path / "shared.safetensors")
    with pytest.raises(ValueError, match="expected 'multidomain.domain-pack/1'"):
        load_domain(model, tmp_path / "shared.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_domain(model, tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_domain(model, tmp_path / "missing.safetensors")


def test_mismatched_keys_are_listed_and_a_new_domain_is_rolled_back(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    model = tiny_model()
    save_domain(model, "beta", tmp_path / "beta.safetensors")
    tensors = load_file(str(tmp_path / "beta.safetensors"))
    with safe_open(str(tmp_path / "beta.safetensors"), "pt") as handle:
        metadata = handle.metadata()
    tensors.pop("stem_bn.weight")
    tensors["extra.weight"] = torch.zeros(2)
    save_file(tensors, str(tmp_path / "broken.safetensors"), metadata=metadata)
    with pytest.raises(ValueError, match=r"2 problems.*missing stem_bn.weight.*unexpected extra"):
        load_domain(model, tmp_path / "broken.safetensors", name="fresh")
    assert "fresh" not in model.domains
