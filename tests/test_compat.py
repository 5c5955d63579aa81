"""Files written by earlier versions load unchanged and compute what they computed.

``tests/fixtures/models_0.1`` was written by the code of commit 72571ab (before the reliability
and redesign work): a model folder per backbone (no checksums, metadata in several safetensors
keys), a domain pack each, and the logits those models gave on a fixed input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from multidomain import create_model
from multidomain.models.packs import load_domain, load_model

FIXTURES = Path(__file__).parent / "fixtures" / "models_0.1"
BACKBONES = [("resnet26_dw", "pointwise"), ("resnet26_std", "all")]


@pytest.fixture(scope="module")
def expected():
    return load_file(FIXTURES / "expected.safetensors")


@pytest.mark.parametrize(("name", "share"), BACKBONES)
def test_an_old_model_folder_loads_and_gives_the_same_outputs(name, share, expected):
    model = load_model(FIXTURES / name).eval()
    assert (model.config.name, model.config.share) == (name, share)
    assert model.config.dropout == {"beta": 0.5}
    with torch.no_grad():
        for domain in ("alpha", "beta"):
            assert torch.equal(model(expected["input"], domain), expected[f"{name}/{domain}"])


@pytest.mark.parametrize(("name", "share"), BACKBONES)
def test_an_old_domain_pack_loads_under_another_name(name, share, expected):
    model = load_model(FIXTURES / name).eval()
    fresh = create_model(name, {"alpha": 3}, width=0.125, share=share).eval()
    fresh.load_state_dict(model.state_dict(), strict=False)  # alpha and the shared weights
    assert load_domain(fresh, FIXTURES / f"{name}-beta.safetensors", name="gamma") == "gamma"
    with torch.no_grad():
        assert torch.equal(fresh(expected["input"], "gamma"), expected[f"{name}/beta"])


def test_a_head_added_to_a_model_in_eval_mode_is_in_eval_mode():
    model = create_model("resnet26_dw", {"alpha": 3}, width=0.125).eval()
    model.add_domain("beta", 2, dropout=0.5)  # dropout active here made predictions random
    assert not model.head["beta"].training
    x = torch.randn(2, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(model(x, "beta"), model(x, "beta"))
