"""``multidomain compare`` (issue 10): the plan of stages, the resumable run, the tables and the
rule that says whether a difference exceeds the spread over seeds.

The end-to-end compare runs 2 rows x 2 seeds on a tiny tree once per session (width 1/8, 20 px,
4 images a class, one epoch a stage); it is interrupted after its first run, continued, and run a
third time, which must retrain nothing and give the same tables."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from engine_helpers import TINY, once
from multidomain.cli import main
from multidomain.data.offline.builder import prepare_offline
from multidomain.engine import demo
from multidomain.engine.compare import run_compare
from multidomain.engine.compare.plan import Settings, build_plan, row_folder
from multidomain.engine.compare.questions import rq2, rq3
from multidomain.engine.compare.results import Results, RowResult, score_scale
from multidomain.engine.compare.sources import pretrain_folder
from multidomain.engine.compare.stats import difference, summarize
from multidomain.engine.config import ModelSection
from multidomain.engine.rows import get_row, list_rows, select_rows
from multidomain.io import read_json

pytestmark = pytest.mark.usefixtures("one_thread")

V1_DOMAINS = ["animals", "characters", "digits", "faces", "letters", "lowres-digits", "textures"]
SETTINGS = [*TINY, "data.batch_size=4", "optim.epochs=1", "data.prepare_offline=false"]
ROWS, SEEDS = "finetune,bn", 2


def tiny_tree(tmp_path_factory) -> Path:
    """Every domain of the v1 recipes, 4 images a class (2 train, 1 val, 1 test)."""
    return once(
        "compare-tree",
        lambda: prepare_offline(
            tmp_path_factory.mktemp("compare-tree"), image_size=20, max_per_class=4,
            domains=V1_DOMAINS,
        ),
    )  # fmt: skip


def settings(out: Path, root: Path | None = None, version: int = 1) -> Settings:
    return Settings(out, version, root, extra=tuple(SETTINGS))


# -- the plan ---------------------------------------------------------------------------------
def test_the_plan_pretrains_once_per_backbone_method_and_seed(tmp_path):
    stages = build_plan(select_rows("paper"), 2, settings(tmp_path))
    pretrain = [s.folder for s in stages if s.row is None]
    assert sorted(pretrain) == sorted(
        pretrain_folder(tmp_path, backbone, method, seed)
        for seed in (0, 1)
        for backbone, method in [("resnet26_std", "all"), ("resnet26_std", "series"),
                                 ("resnet26_dw", "pointwise")]
    )  # fmt: skip
    assert len(stages) == len(pretrain) + 2 * len(list_rows())
    order = [s.folder for s in stages]
    for stage in stages:
        if stage.row is None:
            continue
        init = stage.config.model.init
        assert stage.config.run.seed == stage.seed
        if init is not None:  # what it starts from runs before it, with the same seed
            assert order.index(Path(init)) < order.index(stage.folder)
            assert Path(init).name.endswith(f"s{stage.seed}")
    soft = next(s for s in stages if s.row == "soft" and s.seed == 1)
    assert soft.config.model.init == str(row_folder(tmp_path, "pointwise", 1))


def test_each_row_trains_what_its_row_says(tmp_path):
    stages = {s.row: s.config for s in build_plan(select_rows("paper"), 1, settings(tmp_path))}
    trains = {
        "scratch": ["depthwise", "pointwise", "conv", "norm", "head", "other"],
        "finetune": ["depthwise", "pointwise", "conv", "norm", "head", "other"],
        "feature": ["head"], "bn": ["norm", "head"], "series": ["adapter", "norm", "head"],
        "parallel": ["adapter", "norm", "head"],
        "pointwise": ["depthwise", "pointwise", "conv", "norm", "head", "other"],
        "depthwise": ["depthwise", "pointwise", "conv", "norm", "head", "other"],
        "soft": ["gate", "norm", "pointwise", "head"],
        "finetune-dw": ["depthwise", "pointwise", "conv", "norm", "head", "other"],
    }  # fmt: skip
    for name, config in stages.items():
        if name is None:
            continue
        row = get_row(name)
        assert (config.model.source, config.model.method) == (row.source, row.method), name
        assert config.optim.train == trains[name], name
    scratch, finetune = stages["scratch"], stages["finetune"]
    assert scratch.model.new_domains == "random" and finetune.model.new_domains == "source"
    assert scratch.model.init == finetune.model.init  # the source's network trained from scratch
    assert "animals" not in scratch.data.domains  # the targets train, from random init
    series_init = Path(stages["series"].model.init)
    assert series_init == pretrain_folder(tmp_path, "resnet26_std", "series", 0)


def test_version_2_rows_use_the_mini2_recipes(tmp_path):
    for stage in build_plan(select_rows("paper"), 1, settings(tmp_path, version=2)):
        data = stage.config.data
        assert data.offline_version == 2 and "v2" in data.root, stage.label
        assert "lowres-digits" not in data.domains and "animals" not in data.domains


def test_version_2_starts_from_the_shipped_source_weights(tmp_path):
    stages = build_plan(select_rows("paper"), 2, settings(tmp_path, version=2))
    assert [s.label for s in stages if s.row is None] == []  # every pretraining ships
    init = {(s.row, s.seed): s.config.model.init for s in stages if s.row}
    for seed in (0, 1):  # every seed adapts the same shipped weights
        assert init["pointwise", seed] == "shipped:mini2-resnet26_dw"
        assert init["finetune", seed] == init["bn", seed] == "shipped:mini2-resnet26_std"
        assert init["series", seed] == "shipped:mini2-resnet26_std-series"
    quick = Settings(tmp_path, 2, None, quick=True, extra=tuple(SETTINGS))
    assert len([s for s in build_plan(select_rows("paper"), 1, quick) if s.row is None]) == 3


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("quick", [False, True])
def test_the_scratch_row_trains_its_targets_from_random_init(tmp_path, version, quick):
    """Scratch shares the plain pretraining with finetune (the source's network trained from
    scratch, as on the Decathlon) and starts every target from random init."""
    plan = build_plan(select_rows("scratch,finetune"), 1, Settings(tmp_path, version, quick=quick))
    configs = {s.row: s.config for s in plan}
    scratch, finetune = configs["scratch"], configs["finetune"]
    assert scratch.model.init == finetune.model.init and scratch.model.init is not None
    assert (scratch.model.new_domains, finetune.model.new_domains) == ("random", "source")
    assert scratch.data.domains == finetune.data.domains
    assert ("emoji" if version == 2 else "animals") not in scratch.data.domains


def test_new_domains_random_starts_targets_fresh_and_keeps_the_source(tmp_path):
    """``model.new_domains=random``: a domain the pretrained model lacks starts from fresh
    weights, not from a copy of the source's; the source's own weights are kept."""
    from conftest import tiny_model
    from multidomain.engine.builders import build_model as build_run_model
    from multidomain.models.packs import save_model

    pretrained = tiny_model(method="none")
    save_model(pretrained, tmp_path / "pre")

    def start(new_domains: str):
        config = SimpleNamespace(
            data=SimpleNamespace(domains=["alpha", "delta"]),
            optim=SimpleNamespace(dropout_per_domain={}),
            model=ModelSection(
                source=pretrained.config.source,
                width=pretrained.config.width,
                method="none",
                init=str(tmp_path / "pre"),
                new_domains=new_domains,
            ),
        )
        benchmark = SimpleNamespace(
            domain=lambda d: SimpleNamespace(num_classes=4 if d == "delta" else 5)
        )
        torch.manual_seed(0)
        return build_run_model(config, benchmark)

    copied, fresh = start("source"), start("random")

    def weight(model, domain):
        return next(
            p
            for n, p in model.named_parameters()
            if n.endswith(f".{domain}.weight") and p.dim() == 4
        )

    assert torch.equal(weight(copied, "delta"), weight(copied, "alpha"))
    assert not torch.equal(weight(fresh, "delta"), weight(fresh, "alpha"))
    assert torch.equal(weight(fresh, "alpha"), weight(pretrained, "alpha"))


def test_quick_on_version_2_trains_on_a_fixed_subset_of_every_domain(tmp_path):
    """--quick on version 2: the first 2 training images of each emoji class and at least 5 of
    each target class, and at least one batch a domain, in every stage (the same subset for
    every row and seed); not without --quick, nor on version 1."""
    from multidomain.data.offline import version_specs

    classes = {"emoji": 1406, "characters": 148, "symbols": 146, "letters": 26, "digits": 10}
    classes |= {"photos": 8, "textures": 3, "faces": 2}  # version 2's (BENCHMARKS.md)
    assert sorted(classes) == sorted(spec.name for spec in version_specs(2))
    for stage in build_plan(select_rows("paper"), 2, Settings(tmp_path, 2, quick=True)):
        caps = stage.config.data.train_per_class
        assert caps.keys() == classes.keys() and caps["emoji"] == 2, stage.label
        for name, cap in caps.items():
            assert cap >= 2 if name == "emoji" else cap >= 5
            assert cap * classes[name] >= stage.config.data.batch_size, name
    for version, quick in [(2, False), (1, True)]:
        plan = build_plan(select_rows("paper"), 1, Settings(tmp_path, version, quick=quick))
        assert all(s.config.data.train_per_class == {} for s in plan)


@pytest.mark.parametrize("version", [1, 2])
def test_every_stage_builds_its_rows_backbone_and_method(tmp_path, version):
    """The recipes differ between versions (mini2/finetune is resnet26_std): a row says its
    backbone itself (finetune-dw trained a resnet26_std from resnet26_dw weights, and failed)."""
    for stage in build_plan(select_rows("paper"), 1, settings(tmp_path, version=version)):
        if stage.row is not None:
            row = get_row(stage.row)
            assert (stage.config.model.source, stage.config.model.method) == (
                row.source, row.method,
            ), stage.label  # fmt: skip


# -- the rule of the sentences ----------------------------------------------------------------
def test_a_difference_exceeds_the_spread_only_beyond_two_pooled_stds():
    a, b = summarize([10.0, 12.0, 14.0]), summarize([5.0, 6.0, 7.0])  # std 2 and 1
    pooled = ((2 * 4 + 2 * 1) / 4) ** 0.5  # sqrt(2.5) = 1.58; 2 x = 3.16
    result = difference(a, b)
    assert result.value == pytest.approx(6.0) and result.pooled == pytest.approx(pooled)
    assert result.exceeds is True and "exceeds the spread" in result.verdict()
    close = difference(summarize([10.0, 12.0, 14.0]), summarize([8.0, 9.0, 10.0]))
    assert close.value == pytest.approx(3.0) and close.exceeds is False  # 3 < 3.16
    assert "does not exceed" in close.verdict()
    one = difference(summarize([10.0]), summarize([1.0]))
    assert one.exceeds is None and "spread is unknown with one seed" in one.verdict()


def _result(name: str, scores: list[float], relative: float) -> RowResult:
    return RowResult(get_row(name), list(range(len(scores))), {}, [50.0] * len(scores), scores,
                     relative)  # fmt: skip


def test_the_sentences_give_the_numbers_and_the_verdict():
    rows = {"pointwise": _result("pointwise", [3000, 3100, 3200], 1.4),
            "depthwise": _result("depthwise", [2000, 2100, 2200], 5.0)}  # fmt: skip
    results = Results(rows, [], "", None, None, {})
    sentence = rq2(results)
    assert "3100.0 ± 100.0" in sentence and "2100.0 ± 100.0" in sentence
    assert "+1000.0" in sentence and "exceeds the spread" in sentence and "1.40x" in sentence
    assert "not answered" in rq3(results) and "soft" in rq3(results)


def test_without_finetune_the_score_uses_the_data_trees_baselines():
    report = {"domains": {"a": {"baseline_accuracy": 80.0}, "b": {"baseline_accuracy": 60.0}}}
    baselines, note = score_scale({}, {("bn", 0): report}, ["a", "b"])
    assert baselines == {"a": 80.0, "b": 60.0} and "data tree's baselines" in note
    report["domains"]["b"]["baseline_accuracy"] = None
    baselines, note = score_scale({}, {("bn", 0): report}, ["a", "b"])
    assert baselines is None and "no baseline for b" in note and "multidomain baseline" in note
    finetune = RowResult(get_row("finetune"), [0, 1], {"a": [70.0, 80.0], "b": [50.0, 60.0]})
    baselines, note = score_scale({"finetune": finetune}, {("bn", 0): report}, ["a", "b"])
    assert baselines == {"a": 75.0, "b": 55.0} and "mean over its 2 seed(s)" in note


# -- the compare end to end -------------------------------------------------------------------
class Counter:
    """``run_training`` that counts its calls and can stop the compare after ``stop_after``."""

    def __init__(self, monkeypatch, stop_after: int | None = None):
        self.calls, self.stop_after, self.real = 0, stop_after, demo.run_training
        monkeypatch.setattr(demo, "run_training", self)

    def __call__(self, *args, **kwargs):
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt  # as a user's Ctrl-C
        self.calls += 1
        return self.real(*args, **kwargs)


def model_times(out: Path) -> dict[str, int]:
    """The finish time of every stage's final model (``*/STAGE/model``), by stage."""
    finished = out.glob("*/*/model/config.json")
    return {str(p.parent.parent.relative_to(out)): p.stat().st_mtime_ns for p in finished}


def test_an_interrupted_compare_continues_and_a_finished_one_retrains_nothing(
    tmp_path_factory, monkeypatch, capsys
):
    root, out = tiny_tree(tmp_path_factory), tmp_path_factory.mktemp("compare") / "out"
    stages = len(build_plan(select_rows(ROWS), SEEDS, settings(out, root)))
    assert stages == 6  # one pretraining per seed, shared by both rows

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        Counter(patch, stop_after=1)
        run_compare(ROWS, SEEDS, settings(out, root))
    first = model_times(out)
    assert list(first) == ["pretrain/resnet26_std-all-s0"]

    with monkeypatch.context() as patch:
        counter = Counter(patch)
        run_compare(ROWS, SEEDS, settings(out, root))
    assert counter.calls == stages - 1  # the finished first run was not trained again
    printed = capsys.readouterr().out
    assert "run 1/6: pretrain resnet26_std (all) seed 0: finished, reused" in printed
    assert "run 2/6: finetune seed 0 ... ETA" in printed
    assert re.search(r"run 2/6: finetune seed 0: trained in \d+\.\d min", printed)
    done, tables = model_times(out), _tables(out)
    assert done[next(iter(first))] == first[next(iter(first))]

    with monkeypatch.context() as patch:
        counter = Counter(patch)
        run_compare(ROWS, SEEDS, settings(out, root))
    assert counter.calls == 0 and model_times(out) == done
    assert _tables(out) == tables
    _check_tables(out)


def _tables(out: Path):
    content = read_json(out / "compare.json")
    return (out / "compare.csv").read_text(), content["rows"], content["runs"]


def _check_tables(out: Path) -> None:
    with open(out / "compare.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["row"] for r in rows] == ["finetune", "bn"]
    for row in rows:
        assert row["seeds"] == "2" and float(row["relative_params"]) > 0
        for domain in V1_DOMAINS:
            assert 0 <= float(row[f"{domain}_mean"]) <= 100 and row[f"{domain}_std"] != ""
        assert float(row["score_mean"]) >= 0
    content = read_json(out / "compare.json")
    assert "finetune" in content["score_scale"]
    finetune = content["runs"]["finetune"]
    assert sorted(finetune) == ["0", "1"] and sorted(finetune["0"]["accuracy"]) == V1_DOMAINS
    md = (out / "compare.md").read_text()
    for text in ("`finetune`", "`bn`", "published on other data", "RQ1", "RQ2", "RQ3", "RQ5",
                 "the `finetune` row's test errors", "tradeoff.png"):  # fmt: skip
        assert text.lower() in md.lower(), text
    for plot in ("tradeoff.png", "domains.png"):
        assert (out / plot).stat().st_size > 0


def test_an_unknown_row_exits_2_and_lists_the_rows(tmp_path, capsys):
    assert main(["compare", "--methods", "pointwise,nope", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and all(row in err for row in list_rows())
    assert not (tmp_path / "c" / "runs").exists()
    assert main(["compare", "--seeds", "0", "--out", str(tmp_path / "c")]) == 2
    assert "--seeds 0" in capsys.readouterr().err
