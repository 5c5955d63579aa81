"""``torch.compile`` for multi-domain models, without falling back to eager past 8 domains.

The domain is a Python string argument of ``forward``: dynamo specialises each graph on it, so
every domain, in train and in eval mode, is a graph of its own (two frames each where the
forward has a graph break). torch's default recompile limit is 8 per code object, after which
it silently runs the function eagerly: the limit is raised to cover every domain in both modes.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)


def recompile_limit_for(domains: int) -> int:
    """Graphs one code object may need: every domain in train and in eval mode, plus slack."""
    return 2 * domains + 2


def compile_model(model: nn.Module, domains: int, **options: Any) -> nn.Module:
    """``torch.compile(model, **options)`` with dynamo's recompile limit raised for ``domains``."""
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    needed = recompile_limit_for(domains)
    if getattr(config, name) < needed:
        logger.info(
            "torch.compile: dynamo's %s raised from %d to %d (%d domains, train and eval)",
            name,
            getattr(config, name),
            needed,
            domains,
        )
        setattr(config, name, needed)
    return torch.compile(model, **options)
