"""The batch-norm collapse guard: detection, and re-estimation of one domain's statistics."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model
from multidomain.engine.batches import DomainBatches, SeededSamples, eval_plan
from multidomain.engine.bn_guard import domain_norms, is_collapsed, reestimate_bn
from multidomain.models.packs import domain_state_dict


@pytest.mark.parametrize(
    ("train", "evaluated", "classes", "collapsed"),
    [
        (95.0, 50.0, 2, True),  # daimlerpedcls in the official log: chance in eval mode
        (95.0, 90.0, 2, False),
        (60.0, 11.0, 10, True),
        (60.0, 40.0, 10, False),
        (30.0, 10.0, 10, False),  # has not learned enough to tell
    ],
)
def test_collapse_detection(train, evaluated, classes, collapsed):
    assert is_collapsed(train, evaluated, classes) is collapsed


class Images(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], 0


def test_reestimation_repairs_one_domain_and_leaves_the_others():
    model = tiny_model()
    images = torch.randn(16, 3, 32, 32) * 3 + 2  # far from the initial running statistics
    samples = SeededSamples({"beta": Images(images)})
    batches = DomainBatches(samples)
    plan = eval_plan(samples, batch_size=16)  # one batch holding every image
    with torch.no_grad():
        model.train()
        batch_statistics = model(images, "beta")
        model.eval()
        stale = model(images, "beta")
    assert not torch.allclose(stale, batch_statistics, atol=1e-2)
    alpha_before = {k: v.clone() for k, v in domain_state_dict(model, "alpha").items()}
    momenta = [norm.momentum for norm in domain_norms(model, "beta")]

    used = reestimate_bn(model, "beta", batches, plan, torch.device("cpu"))

    assert used == 16
    with torch.no_grad():
        repaired = model(images, "beta")
    # one batch: running statistics = that batch's (up to the unbiased variance)
    torch.testing.assert_close(repaired, batch_statistics, atol=5e-2, rtol=5e-2)
    assert not model.training
    assert [norm.momentum for norm in domain_norms(model, "beta")] == momenta
    for key, value in domain_state_dict(model, "alpha").items():
        assert torch.equal(value, alpha_before[key]), key
    assert len(domain_norms(model, "beta")) == 26  # stem, 24 in the blocks, final
