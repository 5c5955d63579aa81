"""The training loop: determinism, exact resume (clean stop, crash, loader workers), NaN loss,
the adapt recipe's frozen shared weights, and the seeded one-domain-per-batch schedule."""

from __future__ import annotations

import json

import pytest
import torch

from engine_helpers import (
    STEPS_PER_EPOCH,
    adapted_run,
    assert_same_run_weights,
    assert_same_tensors,
    leftovers,
    mini_root,
    once,
    pretrained_run,
    read_tensors,
    snapshot_files,
    tiny_config,
)
from multidomain.data.benchmark import load_benchmark
from multidomain.engine import data_setup
from multidomain.engine import train as train_module
from multidomain.engine.batches import DomainBatches, SeededSamples, epoch_plan, eval_plan
from multidomain.engine.checkpoint import latest_checkpoint, load_optimizer_state
from multidomain.engine.train import Trainer, TrainingDiverged, run_training
from multidomain.io import read_json

JOINT = ("animals", "textures")  # 10 + 3 steps an epoch


def domains_of(plan) -> list[str]:
    return [domain for domain, _ in plan]


pytestmark = pytest.mark.usefixtures("one_thread")


def reference_run(tmp_path_factory, recipe: str):
    """The uninterrupted run each resumed run must reproduce bit for bit."""
    if recipe == "pretrain":
        return pretrained_run(tmp_path_factory)

    def build():
        run_dir = tmp_path_factory.mktemp("joint") / "run"
        run_training(joint_config(mini_root(tmp_path_factory)), run_dir)
        return run_dir

    return once("joint", build)


def joint_config(root, *overrides):
    return tiny_config(root, "run.bn_guard=false", *overrides, recipe="joint", domains=JOINT)


def config_for(recipe: str, root, *overrides):
    if recipe == "joint":
        return joint_config(root, *overrides)
    return tiny_config(root, "run.bn_guard=false", *overrides)


def global_step(checkpoint) -> int:
    return read_json(checkpoint / "state.json")["global_step"]


# -- determinism and exact resume ------------------------------------------------------------
def test_same_config_twice_trains_bit_identical_weights(root, tmp_path, tmp_path_factory):
    # The model's initialisation must come from run.seed, not from whatever ran before.
    torch.manual_seed(12345)
    run_training(tiny_config(root, "run.bn_guard=false"), tmp_path / "again")
    assert_same_run_weights(pretrained_run(tmp_path_factory), tmp_path / "again")


def test_another_seed_trains_other_weights(root, tmp_path, tmp_path_factory):
    run_training(tiny_config(root, "run.bn_guard=false", "run.seed=1"), tmp_path / "seed1")
    reference = read_tensors(pretrained_run(tmp_path_factory) / "model")
    other = read_tensors(tmp_path / "seed1" / "model")
    assert sorted(reference) == sorted(other)
    assert any(not torch.equal(reference[k], other[k]) for k in reference)


def test_the_image_cache_changes_no_weight(root, tmp_path, tmp_path_factory):
    # the reference run caches (tiny data, in-process loading); this one decodes every epoch
    reference = pretrained_run(tmp_path_factory)
    assert Trainer(tiny_config(root, "run.bn_guard=false"), tmp_path / "probe").caches_images
    run_training(tiny_config(root, "run.bn_guard=false", "data.cache_images=false"), tmp_path / "r")
    assert_same_run_weights(reference, tmp_path / "r")
    assert read_json(tmp_path / "r" / "summary.json") == read_json(reference / "summary.json")


@pytest.mark.parametrize(
    ("setting", "workers", "expected"),
    [
        ("auto", 0, True),
        ("auto", 1, False),  # each worker process would hold its own copy
        ("auto", 0, False),  # over data.cache_limit_gb (set below)
        ("true", 2, True),
        ("false", 0, False),
    ],
)
def test_cache_images_setting(setting, workers, expected, root):
    over_limit = expected is False and setting == "auto" and workers == 0
    limit = "0.00001" if over_limit else "2"  # the tiny data takes about 0.1 MB decoded
    config = tiny_config(root, f"data.cache_images={setting}", f"data.cache_limit_gb={limit}")
    samples = data_setup.build_samples(root, config.data, load_benchmark(root), 0)
    assert data_setup.cache_images(config.data, workers, list(samples)) is expected


@pytest.mark.parametrize(
    ("recipe", "stop"),
    [
        ("pretrain", 7),  # mid first epoch
        ("pretrain", 13),  # mid last epoch
        ("pretrain", 10),  # the last step of an epoch, before its validation
        ("joint", 5),
    ],
)
def test_resume_after_max_steps_is_bit_identical(recipe, stop, root, tmp_path, tmp_path_factory):
    run_dir = tmp_path / "run"
    run_training(config_for(recipe, root, f"run.max_steps={stop}"), run_dir)
    assert not (run_dir / "model").exists()  # stopped early: nothing published
    assert global_step(latest_checkpoint(run_dir)) == stop

    run_training(config_for(recipe, root, "run.max_steps=null"), run_dir, resume=True)

    reference = reference_run(tmp_path_factory, recipe)
    assert_same_run_weights(reference, run_dir)
    # the summary (best scores, their epochs, the last epoch's training accuracy) too
    assert read_json(run_dir / "summary.json") == read_json(reference / "summary.json")


@pytest.mark.parametrize(
    ("recipe", "crash_at", "workers"),
    [("pretrain", 7, 0), ("joint", 17, 1)],
    ids=["pretrain-workers0", "joint-workers1"],
)
def test_resume_after_crash_is_bit_identical(
    recipe, crash_at, workers, root, tmp_path, tmp_path_factory, monkeypatch
):
    """A crash at step ``crash_at`` (checkpoints every 2 steps) then ``--resume`` gives the
    uninterrupted run's weights; with a loader worker, so neither depends on the workers."""
    real_step = Trainer.train_step

    def crashing_step(self, *args):
        if self.state.global_step == crash_at:
            raise RuntimeError("simulated crash")
        return real_step(self, *args)

    monkeypatch.setattr(Trainer, "train_step", crashing_step)
    run_dir = tmp_path / "run"
    overrides = ["run.checkpoint_every=2", f"data.workers={workers}"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(config_for(recipe, root, *overrides), run_dir)
    monkeypatch.undo()
    assert global_step(latest_checkpoint(run_dir)) == crash_at - crash_at % 2
    assert leftovers(run_dir) == []

    run_training(None, run_dir, resume=True)  # the saved config, workers included

    assert_same_run_weights(reference_run(tmp_path_factory, recipe), run_dir)


# -- divergence --------------------------------------------------------------------------------
class NanLossAt:
    """Stands in for ``torch.nn.functional`` in the training loop: the loss of the ``at``-th
    training step is NaN."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def cross_entropy(self, logits, labels, **options):
        self.calls += 1
        loss = torch.nn.functional.cross_entropy(logits, labels, **options)
        return loss * float("nan") if self.calls == self.at else loss


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(root, tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    run_training(tiny_config(root, "run.max_steps=4"), clean)

    monkeypatch.setattr(train_module, "F", NanLossAt(5))
    run_dir = tmp_path / "diverged"
    with pytest.raises(TrainingDiverged) as raised:
        run_training(tiny_config(root, "run.checkpoint_every=2"), run_dir)

    message = str(raised.value)
    assert "nan" in message and "epoch 1, step 5" in message
    assert "last good checkpoint" in message and "intact" in message
    assert str(run_dir) in message
    # the checkpoint of step 4 is the last one, and it is what a clean stop at step 4 saves
    checkpoint = latest_checkpoint(run_dir)
    assert global_step(checkpoint) == 4
    assert_same_tensors(
        read_tensors(checkpoint / "model"), read_tensors(latest_checkpoint(clean) / "model")
    )
    saved = load_optimizer_state(checkpoint)["optimizer"]["state"]
    expected = load_optimizer_state(latest_checkpoint(clean))["optimizer"]["state"]
    assert saved.keys() == expected.keys()
    assert all(
        torch.equal(saved[k]["momentum_buffer"], expected[k]["momentum_buffer"]) for k in saved
    )
    assert not (run_dir / "model").exists()
    assert leftovers(run_dir) == []


def test_huge_learning_rate_diverges_and_leaves_the_checkpoint_intact(root, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="intact") as raised:
        run_training(tiny_config(root, "optim.lr=1.0e6", "run.checkpoint_every=1"), run_dir)
    checkpoint = latest_checkpoint(run_dir)
    before = snapshot_files(checkpoint)
    state = read_json(checkpoint / "state.json")
    assert f"step {state['step'] + 1}" in str(raised.value)
    # every saved weight is finite: nothing was written after the bad step
    assert all(torch.isfinite(t.float()).all() for t in read_tensors(checkpoint / "model").values())
    assert snapshot_files(latest_checkpoint(run_dir)) == before


# -- adapt -------------------------------------------------------------------------------------
def test_adapt_leaves_the_pretrained_weights_bit_identical(tmp_path_factory):
    pretrain, run_dir = pretrained_run(tmp_path_factory), adapted_run(tmp_path_factory)
    before = read_tensors(pretrain / "model")
    source_keys = {k for k in before if not k.startswith("domains/")} | {
        k for k in before if k.startswith("domains/animals.")
    }
    assert source_keys == set(before)  # the pretrained model is shared weights plus animals
    for folder in (run_dir / "model", latest_checkpoint(run_dir) / "model"):
        after = read_tensors(folder)
        assert_same_tensors(before, {k: after[k] for k in before})
        source = {k.split(":")[1]: v for k, v in after.items() if k.startswith("domains/animals.")}
        for target in ("digits", "textures"):
            pack = {
                k.split(":")[1]: v for k, v in after.items() if k.startswith(f"domains/{target}.")
            }
            assert pack, f"no pack for {target}"
            # the target started as a copy of animals (plus a new head) and every tensor moved
            copied = [k for k in pack if not k.startswith("head.")]
            assert copied and all(source[k].shape == pack[k].shape for k in copied)
            unchanged = [k for k in copied if torch.equal(source[k], pack[k])]
            assert unchanged == [], f"{target}: {unchanged} still equal the source's"


# -- the seeded schedule -----------------------------------------------------------------------
def fake_samples() -> SeededSamples:
    return SeededSamples({"big": range(50), "small": range(17), "mid": range(30)})


def test_epoch_plan_is_a_function_of_seed_and_epoch():
    samples = fake_samples()
    assert epoch_plan(samples, 4, seed=3, epoch=1) == epoch_plan(samples, 4, seed=3, epoch=1)
    assert epoch_plan(samples, 4, seed=3, epoch=1) != epoch_plan(samples, 4, seed=3, epoch=2)
    assert epoch_plan(samples, 4, seed=3, epoch=1) != epoch_plan(samples, 4, seed=4, epoch=1)


@pytest.mark.parametrize("schedule", ["proportional", "round_robin"])
def test_every_batch_holds_one_domain(schedule):
    samples = fake_samples()
    plan = epoch_plan(samples, 4, seed=0, epoch=0, schedule=schedule)
    assert plan
    for domain, indices in plan:
        assert len(indices) == 4
        assert set(indices) <= set(samples.domain_range(domain))


def test_proportional_sees_each_image_at_most_once_an_epoch():
    samples = fake_samples()
    for epoch in range(3):
        plan = epoch_plan(samples, 4, seed=0, epoch=epoch)
        seen = [i for _, indices in plan for i in indices]
        assert len(seen) == len(set(seen))
        steps = domains_of(plan)
        # every full batch of every domain once: 50 // 4, 17 // 4, 30 // 4
        assert (steps.count("big"), steps.count("small"), steps.count("mid")) == (12, 4, 7)
        # an interleaving, not one domain after the other
        assert steps != sorted(steps, key=samples.domains.index)


def test_eval_plan_of_one_domain_is_that_domains_part_of_the_whole():
    samples = fake_samples()
    whole = eval_plan(samples, 8, rank=1, world=2)
    assert eval_plan(samples, 8, rank=1, world=2, domain="small") == [
        step for step in whole if step[0] == "small"
    ]
    assert sorted(i for _, indices in eval_plan(samples, 8, domain="mid") for i in indices) == list(
        samples.domain_range("mid")
    )


def test_round_robin_alternates_domains_and_cycles_the_small_ones():
    samples = fake_samples()
    plan = epoch_plan(samples, 4, seed=0, epoch=0, schedule="round_robin")
    assert domains_of(plan) == ["big", "small", "mid"] * 12
    small = [tuple(indices) for domain, indices in plan if domain == "small"]
    assert len(set(small)) == 12 and len({i for b in small for i in b}) == 17


@pytest.mark.parametrize("schedule", ["proportional", "round_robin"])
def test_ranks_share_the_schedule_with_disjoint_samples(schedule):
    samples = fake_samples()
    single = epoch_plan(samples, 8, seed=5, epoch=2, schedule=schedule)
    ranks = [
        epoch_plan(samples, 4, seed=5, epoch=2, schedule=schedule, rank=r, world=2) for r in (0, 1)
    ]
    assert domains_of(ranks[0]) == domains_of(ranks[1]) == domains_of(single)
    for (domain, zero), (_, one), (_, whole) in zip(*ranks, single, strict=True):
        assert len(zero) == len(one) == 4
        assert not set(zero) & set(one)
        assert set(zero) | set(one) == set(whole)
        assert set(zero) <= set(samples.domain_range(domain))


def test_tiny_tree_has_the_expected_steps_per_epoch(root):
    # the resume tests above stop at chosen steps: check the arithmetic they rely on
    benchmark = json.loads((root / "benchmark.json").read_text())
    for domain, steps in STEPS_PER_EPOCH.items():
        assert benchmark["domains"][domain]["images"]["train"] // 8 == steps


def test_a_batch_carries_its_domain_in_plan_order_from_any_start():
    """``DomainBatches.iterate`` yields (domain, images, labels) following the plan, and a
    start step skips exactly the steps before it (what exact resumption relies on)."""

    class Tagged(torch.utils.data.Dataset):
        def __init__(self, tag, n):
            self.tag, self.n = tag, n

        def __len__(self):
            return self.n

        def __getitem__(self, index):
            return torch.tensor([self.tag, index]), self.tag

    samples = SeededSamples({"small": Tagged(0, 8), "large": Tagged(1, 24)})
    plan = epoch_plan(samples, 4, seed=0, epoch=0)
    batches = DomainBatches(samples)
    seen = list(batches.iterate(plan, epoch=0))
    assert [domain for domain, _, _ in seen] == [domain for domain, _ in plan]
    for (domain, images, labels), (_, indices) in zip(seen, plan, strict=True):
        assert set(labels.tolist()) == {samples.domains.index(domain)}
        offset = samples.domain_range(domain).start
        assert [offset + int(i) for i in images[:, 1]] == indices
    resumed = list(batches.iterate(plan, epoch=0, start=3))
    assert [d for d, _, _ in resumed] == [d for d, _, _ in seen[3:]]
    assert all(torch.equal(a[1], b[1]) for a, b in zip(resumed, seen[3:], strict=True))
