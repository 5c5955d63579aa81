"""Parameter accounting against the analytic numbers of PAPER.md section 2."""

from __future__ import annotations

import json

import pytest
import torch

from multidomain.cli import main
from multidomain.decathlon import NUM_CLASSES
from multidomain.metrics.params import (
    count_parameters,
    independent_parameters,
    reference_parameters,
)
from multidomain.models import create_model

DEPTHWISE, POINTWISE, NORM = 60_507, 2_580_672, 15_488
LAST_POINTWISE = 512 * 512


def _meta_model(name="resnet26_dw", domains=None, **options):
    with torch.device("meta"):
        return create_model(name, domains or {"imagenet12": 1000}, **options)


def test_one_domain_imagenet_model_has_the_official_count():
    report = count_parameters(_meta_model())
    assert report.total == 3_169_667 == DEPTHWISE + POINTWISE + NORM + 513_000
    assert report.heads == {"imagenet12": 513_000}


def test_per_domain_parameters_of_the_paper():
    report = count_parameters(_meta_model(domains={"svhn": 10, "dtd": 47}))
    assert report.per_domain["svhn"] - report.heads["svhn"] == 338_139
    assert report.heads == {"svhn": 5_130, "dtd": 47 * 512 + 47}
    assert report.shared == POINTWISE - LAST_POINTWISE
    without_last = count_parameters(
        _meta_model(domains={"svhn": 10}, method_options={"own_last_pointwise": False})
    )
    assert without_last.per_domain["svhn"] - without_last.heads["svhn"] == 75_995


def test_reference_is_one_standard_resnet26_without_head():
    assert reference_parameters() == 5_814_688
    std = count_parameters(_meta_model("resnet26_std", share="none"))
    assert std.total - std.heads["imagenet12"] == 5_814_688
    assert std.relative == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("share", "shared", "own"),
    [
        ("pointwise", POINTWISE - LAST_POINTWISE, DEPTHWISE + NORM + LAST_POINTWISE),
        ("depthwise", DEPTHWISE, POINTWISE + NORM),
        ("none", 0, DEPTHWISE + POINTWISE + NORM),
        ("all", DEPTHWISE + POINTWISE, NORM),
    ],
)
def test_decathlon_accounting_per_policy(share, shared, own):
    report = count_parameters(_meta_model(domains=dict(NUM_CLASSES), share=share))
    heads = sum(report.heads.values())
    assert report.shared == shared
    assert all(n - report.heads[d] == own for d, n in report.per_domain.items())
    assert report.total == shared + 10 * own + heads
    assert report.relative == pytest.approx((shared + 10 * own) / 5_814_688)


def test_params_cli_json(capsys):
    assert main(["params", "--domains", "svhn:10,dtd:47", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"total", "shared", "per_domain", "heads", "relative"} <= data.keys()
    assert data["per_domain"]["svhn"] == 338_139 + 5_130
    assert data["total"] == data["shared"] + sum(data["per_domain"].values())


def test_params_cli_table_and_bad_domains(capsys):
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    assert "imagenet12" in out and "0.98x" in out
    assert main(["params", "--domains", "svhn=10"]) == 2
    assert "expected NAME:CLASSES" in capsys.readouterr().err


def _params_json(capsys, *args) -> dict:
    assert main(["params", "--domains", "decathlon", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_params_counts_every_row_and_method_on_its_backbone(capsys):
    from multidomain.engine.rows import get_row, list_rows
    from multidomain.models.methods import list_methods

    for name in list_rows() + list_methods():
        data = _params_json(capsys, "--method", name)
        assert {"total", "shared", "per_domain", "heads", "relative"} <= data.keys(), name
        assert data["total"] == data["shared"] + sum(data["per_domain"].values())
        if name in list_rows():
            assert (data["model"], data["method"]) == (get_row(name).source, get_row(name).method)
    assert _params_json(capsys, "--method", "finetune")["relative"] == pytest.approx(10.0)


def test_soft_sharing_counts_its_gates_under_their_owner(capsys):
    pointwise = _params_json(capsys, "--method", "pointwise")
    soft = _params_json(capsys, "--method", "soft")
    assert soft["shared"] == pointwise["shared"]
    assert soft["per_domain"]["imagenet12"] == pointwise["per_domain"]["imagenet12"]  # no gate
    inputs = [3, 64] + [128] * 8 + [256] * 8 + [512] * 7  # the 25 separable convs' inputs
    gates = sum(c * (c // 4 + 1) + (c // 4 + 1) + (c // 4 + 1) * 10 + 10 for c in inputs)
    assert soft["per_domain"]["svhn"] - pointwise["per_domain"]["svhn"] == gates


def test_a_row_on_another_backbone_is_refused(capsys):
    assert main(["params", "--model", "resnet26_dw", "--method", "feature"]) == 2
    assert "row 'feature' is on resnet26_std" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("source", "method", "width"),
    [("resnet26_dw", "pointwise", 1.0), ("resnet26_dw", "soft", 0.25),
     ("resnet26_std", "series", 0.5), ("resnet26_std", "parallel", 0.125),
     ("resnet26_std", "all", 1.0)],
)  # fmt: skip
def test_independent_and_reference_counts_equal_a_fully_built_model(source, method, width):
    """The counts read off a model built without initialisation (and remembered) equal those
    of a model built, and initialised, the ordinary way."""
    domains = {"a": 10, "b": 47, "c": 3}
    model = create_model(source, domains, method, width=width)
    independent = create_model(source, domains, "none", width=width)
    assert independent_parameters(model) == sum(p.numel() for p in independent.parameters())
    reference = create_model("resnet26_std", {"r": 1}, "none", width=width)
    heads = sum(p.numel() for p in reference.head.parameters())
    assert reference_parameters(width) == sum(p.numel() for p in reference.parameters()) - heads
    assert independent_parameters(model) == independent_parameters(model)  # remembered: same


def test_counting_leaves_the_random_state_and_later_initialisation_alone():
    """Counting skips init only inside its own build: a model built after a count (of a new
    configuration, so that it builds) is initialised exactly as without the count."""
    model = create_model("resnet26_dw", {"a": 5}, width=0.375)
    torch.manual_seed(3)
    expected = create_model("resnet26_dw", {"a": 5}, width=0.125).state_dict()
    torch.manual_seed(3)
    assert independent_parameters(model) > 0
    after = create_model("resnet26_dw", {"a": 5}, width=0.125).state_dict()
    assert all(torch.equal(expected[k], after[k]) for k in expected)
