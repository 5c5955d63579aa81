"""The batch-norm collapse guard: detection, and re-estimation of one domain's statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

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


# our model; converted ones: torchvision's BatchNorm2d, timm's BatchNormAct2d
MODELS = ["resnet26_dw", "torchvision:mobilenet_v3_small", "timm:mobilenetv3_small_100"]


def model_case(name: str):
    """``(model, the domain re-estimated, the domain left alone, its count of BN layers)``."""
    if name == "resnet26_dw":
        return tiny_model(), "beta", "alpha", 26  # stem, 24 in the blocks, final
    pytest.importorskip("timm")  # convert_helpers needs it (the `convert` extra)
    from convert_helpers import original, two_domains

    norms = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in original(name).modules())
    return two_domains(name)[1], "b", "a", norms


def batch_moments(model, domain: str, images: torch.Tensor) -> dict:
    """``{BN layer: (mean, unbiased variance)}`` of the input of each of ``domain``'s BN layers
    in a train-mode pass over ``images``: what re-estimating on that one batch must store."""
    moments = {}

    def record(norm, args):
        x = args[0].transpose(0, 1).flatten(1)  # channels first
        moments[norm] = (x.mean(1), x.var(1))

    hooks = [norm.register_forward_pre_hook(record) for norm in domain_norms(model, domain)]
    with torch.no_grad():
        model.train()
        model(images, domain)
    for hook in hooks:
        hook.remove()
    return moments


@pytest.mark.parametrize("name", MODELS)
def test_reestimation_repairs_one_domain_and_leaves_the_others(name):
    model, domain, other, norm_count = model_case(name)
    images = torch.randn(16, 3, 32, 32) * 3 + 2  # far from the initial running statistics
    samples = SeededSamples({domain: Images(images)})
    batches = DomainBatches(samples)
    plan = eval_plan(samples, batch_size=16)  # one batch holding every image
    moments = batch_moments(model, domain, images)
    with torch.no_grad():
        model.train()
        batch_statistics = model(images, domain)
        model.eval()
        stale = model(images, domain)
    assert not torch.allclose(stale, batch_statistics, atol=1e-2)
    other_before = {k: v.clone() for k, v in domain_state_dict(model, other).items()}
    norms = domain_norms(model, domain)
    momenta = [norm.momentum for norm in norms]

    used = reestimate_bn(model, domain, batches, plan, torch.device("cpu"))

    assert used == 16
    assert len(norms) == len(moments) == norm_count
    for norm in norms:  # one batch: running statistics = that batch's
        mean, var = moments[norm]
        torch.testing.assert_close(norm.running_mean, mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(norm.running_var, var, rtol=1e-4, atol=1e-5)
    assert not model.training
    assert [norm.momentum for norm in norms] == momenta
    for key, value in domain_state_dict(model, other).items():
        assert torch.equal(value, other_before[key]), key
