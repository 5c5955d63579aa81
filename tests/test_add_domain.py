"""``multidomain add-domain``: a new domain trained on top of a run, old domains untouched."""

from __future__ import annotations

import pytest

from engine_helpers import pretrained_run, read_tensors
from multidomain.cli import main
from multidomain.io import verify_checksums
from multidomain.models.packs import load_model, read_pack_fields

pytestmark = pytest.mark.usefixtures("one_thread")

# the tiny settings of engine_helpers.TINY, less the model's (add-domain takes the run's)
TINY_RUN = [
    "data.batch_size=8",
    "data.eval_batch_size=32",
    "data.workers=0",
    "run.progress=false",
    "run.device=cpu",
    "run.bn_guard=false",
    "optim.lr_milestones=[]",
    "optim.epochs=1",
]


def add_domain_args(run, root, domain, out, *extra):
    args = ["add-domain", "--run", str(run), "--data", str(root), "--domain", domain]
    args += ["--out", str(out), *extra]
    for setting in TINY_RUN:
        args += ["--set", setting]
    return args


def test_old_domains_are_bit_identical_after_add_domain(root, tmp_path, tmp_path_factory):
    run = pretrained_run(tmp_path_factory)  # animals
    out = tmp_path / "run2"
    assert main(add_domain_args(run, root, "digits", out, "--init-from", "animals")) == 0
    before, after = read_tensors(run / "model"), read_tensors(out / "model")
    old = [k for k in before if not k.startswith("domains/digits")]
    assert old and all(k in after for k in old)
    assert all(before[k].dtype == after[k].dtype and before[k].equal(after[k]) for k in old)
    # the old pack files themselves are byte-identical (same weights, card and fingerprint)
    for name in ("shared.safetensors", "domains/animals.safetensors"):
        assert (run / "model" / name).read_bytes() == (out / "model" / name).read_bytes()
    verify_checksums(out / "model", "model folder")
    model = load_model(out / "model")
    assert list(model.domains) == ["animals", "digits"]
    fields = read_pack_fields(out / "model" / "domains" / "digits.safetensors")
    assert len(fields["classes"]) == 10 and fields["preprocess"]["crop"] in (
        "center_crop",
        "random_crop",
    )
    trained = read_tensors(out / "model")
    new = [k for k in trained if k.startswith("domains/digits")]
    assert new  # and it trained: its BN statistics moved away from the initial ones
    assert not trained["domains/digits.safetensors:stem_bn.running_mean"].equal(
        before["domains/animals.safetensors:stem_bn.running_mean"]
    )


def test_add_domain_refuses_an_existing_domain_and_shared_training(
    root, tmp_path, tmp_path_factory, capsys
):
    run = pretrained_run(tmp_path_factory)
    assert main(add_domain_args(run, root, "animals", tmp_path / "a")) == 2
    assert "already has a domain 'animals'" in capsys.readouterr().err
    assert (
        main(add_domain_args(run, root, "digits", tmp_path / "b", "--set", "optim.train=[all]"))
        == 2
    )
    assert "would train shared weights" in capsys.readouterr().err
    assert main(add_domain_args(run, root, "digits", tmp_path / "c", "--init-from", "nope")) == 2
    assert "'nope' is not a domain of the model" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abc")
