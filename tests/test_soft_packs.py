"""A soft domain's pack records the banks its gates mix, with a fingerprint of each (issue 10):
it round-trips, and loading it where a bank has changed or is missing is refused by name."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest import images
from multidomain.cli import main
from multidomain.errors import ConfigError, DataError
from multidomain.models.packs import (
    METADATA_KEY,
    domain_state_dict,
    load_domain,
    load_domains,
    load_model,
    read_pack_fields,
    save_domain,
    save_model,
)
from test_soft_sharing import soft_from_pointwise

pytestmark = pytest.mark.usefixtures("one_thread")

LAYER = "stages.1.2.conv1"  # a soft-sharing layer in the middle of the network


@pytest.fixture
def soft_pack(tmp_path):
    """A soft model (source alpha; targets beta, gamma) and beta's pack."""
    _, model = soft_from_pointwise()
    model.eval()
    path = tmp_path / "beta.safetensors"
    save_domain(model, "beta", path)
    return model, path


def perturbed_gates(model, domain: str):
    other = copy.deepcopy(model)
    with torch.no_grad():
        for name, param in other.named_parameters():
            if f".gate.{domain}." in name or name.startswith(f"head.{domain}."):
                param.add_(0.5)
    return other


def with_foreign_banks(model):
    """A copy of ``model`` whose beta and gamma gates and banks differ: one of their packs
    alone is refused there, since its gates mix the other's bank."""
    other = perturbed_gates(perturbed_gates(model, "beta"), "gamma")
    with torch.no_grad():
        for name in ("beta", "gamma"):
            other.get_submodule(LAYER).conv_dw[name].weight.mul_(1.01)
    return other


def test_a_soft_pack_records_its_banks_and_round_trips(soft_pack):
    model, path = soft_pack
    record = read_pack_fields(path)["soft_banks"]
    assert record["own"] == "beta" and len(record["layers"]) == 25  # every conv, the stem too
    banks = dict(record["layers"][LAYER])
    assert list(banks) == ["alpha", "beta", "gamma"]
    assert banks["beta"] is None  # its own bank travels in the pack
    assert len(banks["alpha"]) == 64 and banks["alpha"] != banks["gamma"]  # SHA-256 each
    assert "soft_banks" not in _source_fields(model, path.parent)  # the source has no gate
    other = perturbed_gates(model, "beta")
    x = images(size=32)
    with torch.no_grad():
        assert not torch.equal(other(x, "beta"), model(x, "beta"))
        load_domain(other, path, replace=True)
        assert torch.equal(other(x, "beta"), model(x, "beta"))
        assert torch.equal(other(x, "gamma"), model(x, "gamma"))


def _source_fields(model, folder):
    save_domain(model, "alpha", folder / "alpha.safetensors")
    return read_pack_fields(folder / "alpha.safetensors")


def test_a_soft_pack_loads_into_a_model_with_its_banks_in_another_order(soft_pack):
    model, path = soft_pack
    other = copy.deepcopy(model)
    other.remove_domain("beta")  # banks alpha, gamma; beta comes back last
    load_domain(other, path)
    assert other.stages[1][2].conv1.gate.bank_names == ["alpha", "gamma", "beta"]
    x = images(size=32)
    with torch.no_grad():  # the same gate rows, by bank name (summed in another order)
        torch.testing.assert_close(other(x, "beta"), model(x, "beta"), atol=1e-5, rtol=0)


def test_loading_a_soft_pack_whose_bank_changed_is_refused(soft_pack):
    model, path = soft_pack
    other = perturbed_gates(model, "beta")
    with torch.no_grad():
        other.get_submodule(LAYER).conv_dw["gamma"].weight.mul_(1.01)
    before = {k: v.clone() for k, v in domain_state_dict(other, "beta").items()}
    with pytest.raises(ConfigError, match=rf"'gamma'.*layer {LAYER} \(fingerprint") as err:
        load_domain(other, path, replace=True)
    assert "retrain" in str(err.value) and "exported from" in str(err.value)
    after = domain_state_dict(other, "beta")
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing changed


def test_loading_a_soft_pack_whose_bank_is_missing_is_refused(soft_pack):
    model, path = soft_pack
    other = copy.deepcopy(model)
    other.remove_domain("gamma")
    with pytest.raises(
        ConfigError, match=r"bank of domain 'gamma' at layer \S+, which this model lacks"
    ) as err:
        load_domain(other, path, replace=True)
    assert "add domain 'gamma'" in str(err.value)
    other.remove_domain("beta")
    with pytest.raises(ConfigError, match="'gamma'"):
        load_domain(other, path)  # as a new domain too
    assert list(other.domains) == ["alpha"]  # refused before the domain was added


def test_packs_loaded_together_are_checked_against_each_others_banks(soft_pack, tmp_path):
    model, beta = soft_pack
    gamma = tmp_path / "gamma.safetensors"
    save_domain(model, "gamma", gamma)
    other = with_foreign_banks(model)
    with torch.no_grad():
        other.get_submodule(LAYER).conv_dw["alpha"].weight.mul_(1.01)
    with pytest.raises(ConfigError, match=rf"domain 'alpha' at layer {LAYER}"):
        load_domains(other, [beta, gamma], replace=True)  # alpha's bank is not in either
    with torch.no_grad():
        other.get_submodule(LAYER).conv_dw["alpha"].weight.copy_(
            model.get_submodule(LAYER).conv_dw["alpha"].weight
        )
    assert load_domains(other, [beta, gamma], replace=True) == ["beta", "gamma"]
    x = images(size=32)
    with torch.no_grad():
        for domain in ("beta", "gamma"):
            assert torch.equal(other(x, domain), model(x, domain))


def test_replacing_a_bank_that_other_gates_mix_is_refused(soft_pack, tmp_path):
    model, beta = soft_pack
    retrained = copy.deepcopy(model)
    with torch.no_grad():
        retrained.get_submodule(LAYER).conv_dw["gamma"].weight.mul_(1.01)
    gamma = tmp_path / "gamma.safetensors"
    save_domain(retrained, "gamma", gamma)
    x = images(size=32)
    with torch.no_grad():
        before = model(x, "beta")
    with pytest.raises(ConfigError, match=rf"bank of domain 'gamma' at layer {LAYER}.*of beta"):
        load_domain(model, gamma, replace=True)  # beta's gates mix gamma's bank
    with torch.no_grad():
        assert torch.equal(model(x, "beta"), before)
    with pytest.raises(ConfigError, match="'gamma'"):
        load_domains(model, [beta, gamma], replace=True)  # beta's pack was made on the old one


@pytest.mark.parametrize("entry", [["alpha"], [["alpha", 3]], "alpha", [[1, None]]])
def test_a_malformed_bank_record_is_a_data_error_naming_the_layer(soft_pack, entry):
    model, path = soft_pack
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    fields = json.loads(metadata[METADATA_KEY])
    fields["soft_banks"]["layers"][LAYER] = entry
    broken = path.with_name("broken.safetensors")
    save_file(load_file(str(path)), str(broken), {METADATA_KEY: json.dumps(fields)})
    other = copy.deepcopy(model)
    with pytest.raises(DataError, match=rf"soft_banks entry for layer '{LAYER}'.*re-export"):
        load_domain(other, broken, replace=True)


def test_domains_import_loads_soft_packs_that_mix_each_other_together(soft_pack, tmp_path, capsys):
    model, beta = soft_pack
    gamma = tmp_path / "gamma.safetensors"
    save_domain(model, "gamma", gamma)
    other = with_foreign_banks(model)
    folder = tmp_path / "model"
    save_model(other, folder)
    assert main(["domains", "import", "--model", str(folder), str(beta), "--replace"]) == 2
    assert "together, with `multidomain domains import PACK PACK" in capsys.readouterr().err
    pair = [str(beta), str(gamma)]
    assert main(["domains", "import", "--model", str(folder), *pair, "--as", "b"]) == 2
    assert "1 names (--as) for 2 packs" in capsys.readouterr().err
    assert main(["domains", "import", "--model", str(folder), *pair, "--replace"]) == 0
    loaded = load_model(folder).eval()
    x = images(size=32)
    with torch.no_grad():
        for domain in ("beta", "gamma"):
            assert torch.equal(loaded(x, domain), model(x, domain))
