"""The Decathlon numbers published for the table's rows (PAPER.md sections 6 and 7): scores on
the Visual Decathlon (ten domains, full-size data), shown beside ours as published on other
data, never mixed with them. None: PAPER.md gives no number."""

from __future__ import annotations

# row -> (published Decathlon score, published #par relative to one ResNet-26)
PUBLISHED: dict[str, tuple[float | None, float | None]] = {
    "scratch": (None, 10.0),
    "finetune": (2500.0, 10.0),  # the score's baseline: 250 a domain by definition
    "feature": (None, 1.0),
    "series": (3159.0, None),
    "parallel": (3412.0, 2.0),
    "pointwise": (3234.0, None),  # "about half the parameters of the parallel adapters"
    "soft": (3507.0, None),
}
SOURCE = "PAPER.md sections 6-7 (Guo et al. AAAI 2019; Rebuffi et al. 2017, 2018)"
