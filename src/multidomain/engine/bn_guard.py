"""The batch-norm collapse guard (PAPER.md section 4).

In an official fine-tuning log, daimlerpedcls trained to high accuracy but evaluated at chance in
eval mode: its BN running statistics did not describe its data. We detect that pattern after each
validation and re-estimate the domain's running statistics from training images.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from multidomain.engine.batches import DomainBatches, Plan
from multidomain.models.roles import owned_modules

logger = logging.getLogger(__name__)


def is_collapsed(train_accuracy: float, eval_accuracy: float, num_classes: int) -> bool:
    """Training accuracy well above chance while eval-mode accuracy stays near chance."""
    chance = 100.0 / num_classes
    learned = train_accuracy - chance
    return learned >= 30.0 and (eval_accuracy - chance) <= 0.1 * learned


def domain_norms(model: nn.Module, domain: str) -> list[nn.modules.batchnorm._BatchNorm]:
    """The domain's own batch-norm layers, at any depth (one inside an adapter too)."""
    return [
        module
        for module in owned_modules(model, domain)
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
    ]


@torch.no_grad()
def reestimate_bn(
    model: nn.Module,
    domain: str,
    batches: DomainBatches,
    plan: Plan,
    device: torch.device,
) -> int:
    """Recompute ``domain``'s BN running statistics as exact averages over ``plan``'s batches.

    Returns:
        The number of images used.
    """
    norms = domain_norms(model, domain)
    saved = [norm.momentum for norm in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over all batches
        norm.train()
    images_seen = 0
    for batch_domain, images, _ in batches.iterate(plan):
        model(images.to(device), batch_domain)
        images_seen += images.shape[0]
    for norm, momentum in zip(norms, saved, strict=True):
        norm.momentum = momentum
    model.eval()
    return images_seen
