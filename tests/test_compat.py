"""Files written by earlier versions load unchanged and compute what they computed.

``tests/fixtures/models_0.1`` was written by the code of commit 72571ab (before the reliability
and redesign work): a model folder per backbone (no checksums, metadata in several safetensors
keys), a domain pack each, and the logits those models gave on a fixed input.
``tests/fixtures/runs_0.1`` holds run folders written by the same code (see its README)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from data_helpers import make_devkit
from engine_helpers import one_torch_thread, read_tensors
from multidomain import create_model
from multidomain.cli import main
from multidomain.engine.run_dir import load_run_config
from multidomain.models.packs import load_domain, load_model

FIXTURES = Path(__file__).parent / "fixtures" / "models_0.1"
BACKBONES = [("resnet26_dw", "pointwise"), ("resnet26_std", "all")]


@pytest.fixture(scope="module")
def expected():
    return load_file(FIXTURES / "expected.safetensors")


@pytest.mark.parametrize(("name", "share"), BACKBONES)
def test_an_old_model_folder_loads_and_gives_the_same_outputs(name, share, expected):
    model = load_model(FIXTURES / name).eval()
    assert (model.config.source, model.config.method) == (name, share)
    assert model.config.dropout == {"beta": 0.5}
    with torch.no_grad():
        for domain in ("alpha", "beta"):
            # the weights load exactly; the outputs agree to float rounding (the fixture was
            # computed at 2 threads, and another thread count sums in another order)
            torch.testing.assert_close(
                model(expected["input"], domain), expected[f"{name}/{domain}"], rtol=0, atol=1e-6
            )


@pytest.mark.parametrize(("name", "share"), BACKBONES)
def test_an_old_domain_pack_loads_under_another_name(name, share, expected):
    model = load_model(FIXTURES / name).eval()
    fresh = create_model(name, {"alpha": 3}, width=0.125, share=share).eval()
    fresh.load_state_dict(model.state_dict(), strict=False)  # alpha and the shared weights
    assert load_domain(fresh, FIXTURES / f"{name}-beta.safetensors", name="gamma") == "gamma"
    with torch.no_grad():
        torch.testing.assert_close(
            fresh(expected["input"], "gamma"), expected[f"{name}/beta"], rtol=0, atol=1e-6
        )


def test_a_head_added_to_a_model_in_eval_mode_is_in_eval_mode():
    model = create_model("resnet26_dw", {"alpha": 3}, width=0.125).eval()
    model.add_domain("beta", 2, dropout=0.5)  # dropout active here made predictions random
    assert not model.head["beta"].training
    x = torch.randn(2, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(model(x, "beta"), model(x, "beta"))


# -- run folders -------------------------------------------------------------------------------
RUNS = Path(__file__).parent / "fixtures" / "runs_0.1"


@pytest.fixture
def old_data(tmp_path):
    """The data the fixture runs were trained on, rebuilt (the same bytes: seeded images)."""
    return make_devkit(tmp_path / "devkit", {"svhn": (3, (72, 72))})


def test_an_old_stopped_run_resumes_to_the_weights_of_the_old_uninterrupted_run(tmp_path, old_data):
    """The old code saved ``run.max_steps``: read back, every resume would stop again."""
    run = shutil.copytree(RUNS / "stopped", tmp_path / "run")
    with one_torch_thread():
        code = main(["train", "--resume", "--out", str(run), "--set", f"data.root={old_data}"])
    assert code == 0
    resumed = read_tensors(run / "model")
    finished = read_tensors(RUNS / "finished" / "model")
    assert resumed.keys() == finished.keys()
    for key, value in finished.items():  # the same machine gives equal bits; allow another CPU
        torch.testing.assert_close(resumed[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_an_old_finished_run_evaluates_and_seeds_an_adaptation(tmp_path, old_data, capsys):
    run = shutil.copytree(RUNS / "finished", tmp_path / "run")
    assert main(["eval", "--run", str(run), "--data", str(old_data), "--split", "val"]) == 0
    assert "svhn" in capsys.readouterr().out
    config = load_run_config(run)
    assert (config.model.source, config.model.method) == ("resnet26_dw", None)
    adapted = tmp_path / "adapted"
    args = ["train", "--config", "mini/adapt", "--out", str(adapted)]
    for setting in [
        f"model.init={run}",
        f"data.root={old_data}",
        "data.domains=[svhn]",
        "model.width=0.125",
        "data.batch_size=2",
        "optim.epochs=1",
        "optim.lr_milestones=[]",
        "run.progress=false",
        "run.bn_guard=false",
    ]:
        args += ["--set", setting]
    assert main(args) == 0
    assert load_model(adapted / "model").config.method == "pointwise"
