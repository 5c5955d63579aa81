"""Per-domain classifier heads (PAPER.md section 2: optional dropout 0.5, then linear)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from multidomain.layers.per_domain import PerDomain, Route, current_route, declare_role


class ClassifierHead(nn.Module):
    """Dropout (``p`` may be 0) followed by ``Linear(in_features, num_classes)``."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = nn.Dropout(dropout)
        self.fc = declare_role(nn.Linear(in_features, num_classes), "head")

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(x))


class DomainHeads(PerDomain):
    """One head per domain. A mixed batch gets logits padded with ``-inf`` to the widest head.

    Padding with ``-inf`` keeps ``argmax``, ``softmax`` and ``cross_entropy`` correct per sample.
    """

    def forward(self, x: torch.Tensor, route: Route | None = None) -> torch.Tensor:
        route = route or current_route()
        domain = route.single
        if domain is not None:
            return self[domain](x)
        width = max(self[name].num_classes for name, _, _ in route.segments)
        parts = []
        for (name, _, _), part in zip(route.segments, x.split(route.sizes), strict=True):
            logits = self[name](part)
            padding = logits.new_full((part.shape[0], width - logits.shape[1]), float("-inf"))
            parts.append(torch.cat([logits, padding], dim=1))
        return torch.cat(parts)

    def add_domain(self, name: str, init_from: str | None = None, **domain: Any) -> None:
        """A new head (always freshly initialised: class counts differ between domains) with
        ``domain["num_classes"]`` outputs and ``domain.get("dropout", 0)``."""
        in_features = next(iter(self.values())).fc.in_features
        head = ClassifierHead(in_features, domain["num_classes"], domain.get("dropout", 0))
        self[name] = head.train(self.training)  # a model in eval mode gets an eval-mode head
