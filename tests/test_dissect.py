"""Network dissection (issue 14, PAPER.md section 8): thresholds, IoU counting, probe sets,
the Broden reader and the report."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from multidomain.interpret.bootstrap import Spread
from multidomain.interpret.broden import BrodenProbe
from multidomain.interpret.counting import IoUCounter
from multidomain.interpret.dissect import DissectOptions, ImageInput, run_dissection
from multidomain.interpret.offline_probe import OfflineProbe
from multidomain.interpret.probe import Concepts, concept_coverage
from multidomain.interpret.quantile import TopQuantile, values_above
from multidomain.interpret.report import write_report
from multidomain.interpret.summary import GroupStats, answer
from multidomain.models import create_model

ONES = torch.ones(1, 1, dtype=torch.float64)


def _iou_of_maps(acts: torch.Tensor, labels: torch.Tensor, annotated, concepts, q=0.005):
    """IoU ``(K, C)`` of unit maps given at the mask size (one batch, no bootstrap)."""
    n, k, h, w = acts.shape
    quantile = TopQuantile(k, n * h * w, q)
    quantile.update(acts.transpose(0, 1).reshape(k, -1))
    limit = quantile.thresholds()
    counter = IoUCounter(k, concepts)
    masks = (acts > limit[None, :, None, None]).flatten(2)  # (N, K, P)
    image, unit = torch.meshgrid(torch.arange(n), torch.arange(k), indexing="ij")
    weights = torch.ones(1, n, dtype=torch.float64)
    counter.update(
        image.reshape(-1),
        unit.reshape(-1),
        masks.reshape(n * k, -1),
        labels.flatten(2),
        torch.as_tensor(annotated),
        weights,
    )
    counter.count_concepts(labels.flatten(2), weights)
    return counter.iou()[0]


def test_a_unit_ranking_a_concept_highest_gets_the_analytic_iou():
    """Tie rule: the mask is ``a > T_k`` with T_k the (m + 1)-th largest value, m = floor(0.005 n);
    with no ties it holds exactly m pixels, so IoU = min(cov, 0.005) / max(cov, 0.005), which is
    the issue's min(1, 0.005 / cov) for cov >= 0.5%."""
    rng = np.random.default_rng(0)
    n, h, w = 10, 40, 50  # 20,000 pixels: 0.5% is exactly 100
    concepts = Concepts(("wide", "narrow"), ("a", "a"), ("a",))
    labels = np.zeros((n, 1, h, w), dtype=np.int64)
    flat = labels.reshape(-1)
    pixels = rng.permutation(flat.size)
    flat[pixels[:400]] = 1  # coverage 2%
    flat[pixels[400:460]] = 2  # coverage 0.3%
    labels = torch.from_numpy(labels)
    noise = torch.from_numpy(rng.random((n, 1, h, w)))
    acts = torch.cat([(labels == c).double() + noise for c in (1, 2)], dim=1).float()
    iou = _iou_of_maps(acts, labels, np.ones((n, 1), bool), concepts)
    assert iou[0, 0].item() == pytest.approx(min(1.0, 0.005 / 0.02), abs=1e-6)
    assert iou[1, 1].item() == pytest.approx(0.003 / 0.005, abs=1e-6)


def test_ties_at_the_threshold_stay_outside_the_mask():
    values = torch.tensor([[3.0, 2.0, 2.0, 2.0] + [0.0] * 396])  # m = 2; T = 2 (third largest)
    quantile = TopQuantile(1, 400)
    quantile.update(values)
    limit = quantile.thresholds()
    assert limit.item() == 2.0 and int((values > limit).sum()) == 1


def test_a_unit_of_noise_finds_no_concept():
    probe = OfflineProbe(40, 32, seed=1, mask_step=1)
    batch = probe.batch(np.arange(40))
    labels = torch.from_numpy(batch.labels.astype(np.int64))
    acts = torch.rand(40, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    iou = _iou_of_maps(acts, labels, batch.annotated, probe.concepts)
    assert iou.max().item() < 0.04  # no detector (chance level is about 0.005)


@pytest.mark.parametrize("total,q", [(1000, 0.005), (7919, 0.01), (50, 0.005)])
def test_the_streamed_quantile_is_numpys_exactly(total, q):
    """Error bound 0: the threshold is the (m + 1)-th largest value, as numpy sorts it."""
    rng = np.random.default_rng(total)
    data = rng.standard_normal((3, total)).astype(np.float32)
    quantile = TopQuantile(3, total, q)
    for chunk in np.array_split(np.arange(total), 7):
        quantile.update(torch.from_numpy(data[:, chunk]))
    m = values_above(total, q)
    expected = np.sort(data, axis=1)[:, -(m + 1)]
    np.testing.assert_array_equal(quantile.thresholds().numpy(), expected)
    assert ((data > expected[:, None]).sum(axis=1) == m).all()


def test_the_union_counts_a_unit_only_where_the_concepts_category_is_annotated():
    concepts = Concepts(("red", "car"), ("colour", "object"), ("colour", "object"))
    labels = torch.zeros(2, 2, 4)  # (N, D, P): channel 0 colour, channel 1 object
    labels[0, 0, :2] = 1  # red on pixels 0-1 of image 0
    labels[1, 1, :1] = 2  # car on pixel 0 of image 1 (objects annotated only there)
    masks = torch.tensor([[True, True, True, False], [True, True, False, False]])  # unit 0
    counter = IoUCounter(1, concepts)
    weights = torch.ones(1, 2, dtype=torch.float64)
    annotated = torch.tensor([[True, False], [True, True]])
    counter.update(
        torch.tensor([0, 1]), torch.tensor([0, 0]), masks, labels.long(), annotated, weights
    )
    counter.count_concepts(labels.long(), weights)
    iou = counter.iou()[0, 0]
    assert iou[0].item() == pytest.approx(2 / (5 + 2 - 2))  # colour annotated in both images
    assert iou[1].item() == pytest.approx(1 / (2 + 1 - 1))  # image 0's 3 mask pixels left out


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _write_broden(root):
    """Two images 8x8, masks 4x4: colour and object masks, a scene label, label 300 (G > 0)."""
    rows = ["image,split,ih,iw,sh,sw,color,object,scene"]
    rows.append("a.jpg,train,8,8,4,4,a_color.png,a_object.png,")
    rows.append("b.jpg,train,8,8,4,4,b_color.png,,301")
    (root / "index.csv").parent.mkdir(parents=True, exist_ok=True)
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    (root / "label.csv").write_text(
        "number,name,category,frequency,coverage,syns\n"
        "0,-,,0,0,\n1,red,color(2),2,1.0,\n2,blue,color(1),1,1.0,\n"
        "300,car,object(1);part(0),1,0.2,\n301,street,scene(1),1,1.0,\n"
    )
    for cat, lines in {
        "color": ["1,1,red", "2,2,blue"],
        "object": ["1,300,car"],
        "scene": ["1,301,street"],
    }.items():
        (root / f"c_{cat}.csv").write_text(
            "code,number,name,frequency,coverage\n"
            + "\n".join(f"{line},1,1.0" for line in lines)
            + "\n"
        )
    for name in ("a", "b"):
        _png(root / "images" / f"{name}.jpg", np.full((8, 8, 3), 100, np.uint8))
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[:2, :, 0] = 1
    colour[2:, :, 0] = 2
    _png(root / "images" / "a_color.png", colour)
    _png(root / "images" / "b_color.png", np.where(colour == 2, 0, colour).astype(np.uint8))
    car = np.zeros((4, 4, 3), np.uint8)
    car[1:3, 1:3] = (300 % 256, 300 // 256, 0)
    _png(root / "images" / "a_object.png", car)


def test_a_broden_tree_is_read(tmp_path):
    _write_broden(tmp_path)
    probe = BrodenProbe(tmp_path)
    assert probe.concepts.names == ("red", "blue", "car", "street")
    assert probe.concepts.categories == ("color", "color", "object", "scene")
    assert probe.mask_size == (4, 4) and len(probe) == 2
    batch = probe.batch(np.arange(2))
    assert batch.images.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(batch.annotated, [[True, True, False], [True, False, True]])
    assert (batch.labels[0, 0, :2] == 1).all() and (batch.labels[0, 0, 2:] == 2).all()
    assert (batch.labels[0, 1, 1:3, 1:3] == 3).all() and batch.labels[0, 1].sum() == 12
    assert (batch.labels[1, 1] == 4).all()  # the scene label covers the whole image
    coverage = concept_coverage(probe)
    np.testing.assert_allclose(coverage, [16 / 32, 8 / 32, 4 / 16, 1.0])


def test_the_probe_build_is_deterministic_and_concepts_cover_at_most_5_percent():
    first, again = OfflineProbe(30, 32, seed=3), OfflineProbe(30, 32, seed=3)
    a, b = first.batch(np.arange(30)), again.batch(np.arange(30)[::-1])
    np.testing.assert_array_equal(a.images, b.images[::-1])
    np.testing.assert_array_equal(a.labels, b.labels[::-1])
    assert not np.array_equal(a.images, OfflineProbe(30, 32, seed=4).batch(np.arange(30)).images)
    coverage = concept_coverage(OfflineProbe(500, 32, seed=0, mask_step=1))
    assert coverage.max() <= 0.05 and (coverage > 0).all()


def test_the_report_lists_every_dissected_layer_of_every_network(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet26_dw", {"a": 3}, width=0.125)
    probe = OfflineProbe(8, 32, seed=0)
    options = DissectOptions(batch_size=8, replicates=3, top_images=2)
    result = run_dissection(
        model,
        "a",
        probe,
        ImageInput([0.5] * 3, [0.25] * 3),
        ["stem.*", "stages.0.0.conv1.*"],
        options,
        controls=True,
    )
    written = write_report(result, tmp_path, model, probe, ImageInput([0.5] * 3, [0.25] * 3))
    assert [p.name for p in written] == [
        "dissect.md",
        "dissect.csv",
        "detectors.png",
        "best_units.png",
    ]
    text = (tmp_path / "dissect.md").read_text()
    names = [r.name for r in result.variants["trained"]]
    assert len(names) == 4 and set(result.variants) == {"trained", "random-init", "rotated"}
    for variant in result.variants:
        for name in names:
            assert f"| {variant} | {name} |" in text
    assert "**Answer.** Depthwise layers hold" in text
    assert "Control random-init:" in text and "Control rotated:" in text
    with open(tmp_path / "dissect.csv") as handle:
        rows = list(csv.DictReader(handle))
    units = sum(r.units for r in result.variants["trained"])
    assert len(rows) == 3 * units
    assert {r["layer"] for r in rows} == set(names)


def test_the_dissect_command_reports_a_runs_domain(tmp_path_factory, tmp_path, capsys):
    from engine_helpers import pretrained_run
    from multidomain.cli import main

    run_dir = pretrained_run(tmp_path_factory)
    out = tmp_path / "dissect"
    argv = ["dissect", "--run", str(run_dir), "--domain", "animals", "--out", str(out)]
    argv += ["--images", "6", "--image-size", "32", "--layers", "stem.*", "--replicates", "2"]
    assert main(argv) == 0
    assert "| trained | stem.conv_dw | depthwise |" in (out / "dissect.md").read_text()
    assert main([*argv[:3], "--domain", "nowhere", *argv[5:]]) == 2
    assert "no domain 'nowhere'" in capsys.readouterr().err


def _type_stats(kind: str, unique_per_100: tuple[float, float], level: tuple[float, float]):
    def spread(value, sd):
        return Spread(value, sd, value - 2 * sd, value + 2 * sd)

    return GroupStats(
        kind,
        kind,
        100,
        spread(20.0, 1.0),
        spread(unique_per_100[0], unique_per_100[1]),
        spread(*unique_per_100),
        spread(*level),
        {},
    )


def test_the_answer_judges_each_difference_against_twice_the_bootstrap_spread():
    pointwise = _type_stats("pointwise", (1.0, 0.1), (1.0, 0.1))
    clear = answer([_type_stats("depthwise", (1.5, 0.1), (1.2, 0.1)), pointwise])
    assert "Concepts per unit: depthwise more (difference +0.50, 2 x spread 0.28)" in clear
    assert "Concept level: no difference beyond the spread (difference +0.20" in clear
    lower = answer([_type_stats("depthwise", (0.5, 0.1), (1.0, 0.1)), pointwise])
    assert "Concepts per unit: depthwise fewer (difference -0.50" in lower
    controls = {"random-init": [_type_stats("depthwise", (0.3, 0.1), (0.2, 0.1)), pointwise]}
    text = answer([_type_stats("depthwise", (1.5, 0.1), (1.2, 0.1)), pointwise], controls)
    assert "Control random-init: 0.30 (depthwise) and 1.00 (pointwise)" in text
